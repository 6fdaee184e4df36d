//! Idempotency keys: each is recorded by the statement of the command it guards ([`super::orders`]), naming the event
//! the command appended, and a retry is answered from that event. A key belongs to the caller that sent it (`caller`:
//! the token's subject, `''` in `AUTH_MODE=none`) and expires after 24 hours.

use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::StoreError;

/// Deletes `caller`'s `key` if its use has expired, so that a command can claim it again.
pub async fn forget_expired(conn: &mut PgConnection, caller: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "delete from idempotency_key where caller = $1 and key = $2 and created_at < now() - interval '24 hours'",
    )
    .bind(caller)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes expired keys every `every` until shutdown.
pub async fn purge_expired(pool: PgPool, every: Duration, shutdown: CancellationToken) {
    loop {
        match sqlx::query("delete from idempotency_key where created_at < now() - interval '24 hours'")
            .execute(&pool)
            .await
        {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(purged = done.rows_affected(), "expired idempotency keys")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "purging idempotency keys failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
