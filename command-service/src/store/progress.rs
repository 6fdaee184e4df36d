//! The relay's progress beside the per-row marks (`relay_progress`, one row): which replication slot continues the
//! published log, and up to which sequence the `wal` relay has published without marking rows. The `outbox_backlog`
//! view subtracts both from the outbox.

use sqlx::PgPool;

use super::StoreError;

/// The one row of `relay_progress`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Progress {
    /// The slot whose stream continues the published log; `None` while the notify relay publishes.
    pub slot: Option<String>,
    /// Every sequence up to it was published in `wal` mode, or never committed.
    pub published_through: i64,
}

pub async fn read(pool: &PgPool) -> Result<Progress, StoreError> {
    Ok(sqlx::query_as("select slot, published_through from relay_progress").fetch_one(pool).await?)
}

/// Names the slot that continues the log from now on (`None`: the notify relay publishes, marking rows).
pub async fn hand_to(pool: &PgPool, slot: Option<&str>) -> Result<(), StoreError> {
    sqlx::query("update relay_progress set slot = $1, updated_at = now()").bind(slot).execute(pool).await?;
    Ok(())
}

/// Records that `slot` has published every sequence up to `through`, while it still continues the log.
pub async fn published_through(pool: &PgPool, slot: &str, through: i64) -> Result<(), StoreError> {
    sqlx::query(
        "update relay_progress set published_through = greatest(published_through, $2), updated_at = now()
         where slot = $1",
    )
    .bind(slot)
    .bind(through)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many events and how old the oldest, of those not known published (`outbox_backlog`).
pub async fn backlog(pool: &PgPool) -> Result<(i64, f64), StoreError> {
    Ok(sqlx::query_as(
        "select count(*), coalesce(extract(epoch from now() - min(occurred_at))::float8, 0) from outbox_backlog",
    )
    .fetch_one(pool)
    .await?)
}

/// How many events are not known published, and the lowest sequence among them (`outbox_backlog`): the relay's
/// watchdog takes a new lowest one for progress.
pub async fn oldest_waiting(pool: &PgPool) -> Result<(i64, Option<i64>), StoreError> {
    Ok(sqlx::query_as("select count(*), min(sequence) from outbox_backlog").fetch_one(pool).await?)
}
