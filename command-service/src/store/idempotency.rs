//! Idempotency keys: a command's response, stored in the command's own transaction and replayed on retry. A key
//! belongs to the caller that sent it (`caller`: the token's subject, `''` in `AUTH_MODE=none`).

use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::StoreError;

/// A response as it was first sent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredResponse {
    pub status_code: i32,
    pub location: Option<String>,
    pub response_body: String,
}

/// What a key says about the request that carries it.
#[derive(Debug)]
pub enum Claim {
    /// First use (or the earlier use expired): run the command, then [`complete`] in the same transaction.
    New,
    /// The same request ran before: send its response again.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `caller`'s `key` for the request with `fingerprint`. If another transaction holds the same key uncommitted, this
/// waits for it to finish (the unique index makes it), then replays its response — or claims the key if it rolled
/// back. So two concurrent requests with one key never both execute.
pub async fn claim(tx: &mut PgConnection, caller: &str, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
    let claimed: Option<String> = sqlx::query_scalar(
        "insert into idempotency_key (caller, key, fingerprint, status_code, response_body) values ($3, $1, $2, 0, '')
         on conflict (caller, key) do update
             set fingerprint = excluded.fingerprint, status_code = 0, location = null, response_body = '',
                 created_at = now()
             where idempotency_key.created_at < now() - interval '24 hours'
         returning key",
    )
    .bind(key)
    .bind(fingerprint)
    .bind(caller)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_some() {
        return Ok(Claim::New);
    }
    let (stored_fingerprint, response): (String, StoredResponse) = {
        let row: (String, i32, Option<String>, String) = sqlx::query_as(
            "select fingerprint, status_code, location, response_body from idempotency_key
             where caller = $2 and key = $1",
        )
        .bind(key)
        .bind(caller)
        .fetch_one(&mut *tx)
        .await?;
        (row.0, StoredResponse { status_code: row.1, location: row.2, response_body: row.3 })
    };
    Ok(if stored_fingerprint == fingerprint { Claim::Replay(response) } else { Claim::Mismatch })
}

/// Records the response of a claimed key, in the command's transaction.
pub async fn complete(
    tx: &mut PgConnection,
    caller: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    sqlx::query(
        "update idempotency_key set status_code = $2, location = $3, response_body = $4 where caller = $5 and key = $1",
    )
    .bind(key)
    .bind(response.status_code)
    .bind(&response.location)
    .bind(&response.response_body)
    .bind(caller)
    .execute(tx)
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
