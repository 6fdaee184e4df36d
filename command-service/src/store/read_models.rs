//! The read models the relay delivers to (`read_model_delivery`, one row each): which of them is still to be told
//! that its queue holds the whole log (decision 0019), and the checkpoint marker last routed to each (decision 0023).

use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

use super::StoreError;

/// Registers the read models `names` not registered yet — each with the whole log still to be told when no event
/// has been published yet (every event will be sent to it: every relay delivers to all of them) — and returns those
/// of `names` still to be told. Published means marked (`notify`) or handed to a replication slot (`wal`), which
/// may have published past what it recorded.
pub async fn register(pool: &PgPool, names: &[&str]) -> Result<BTreeSet<String>, StoreError> {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    sqlx::query(
        "insert into read_model_delivery (name, whole_log_pending)
         select name, not exists (select 1 from outbox where published_at is not null)
                      and (select slot is null and published_through = 0 from relay_progress)
         from unnest($1::text[]) as name
         on conflict (name) do nothing",
    )
    .bind(&names)
    .execute(pool)
    .await?;
    let pending: Vec<String> =
        sqlx::query_scalar("select name from read_model_delivery where whole_log_pending and name = any($1)")
            .bind(&names)
            .fetch_all(pool)
            .await?;
    Ok(pending.into_iter().collect())
}

/// Records that a checkpoint telling `name` it holds the whole log reached a queue of it.
pub async fn whole_log_told(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query("update read_model_delivery set whole_log_pending = false where name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// The `closed_through` of the checkpoint marker last routed to each read model that had one.
pub async fn last_markers(pool: &PgPool) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select name, last_marker from read_model_delivery where last_marker is not null")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Records that the checkpoint marker through `through` was routed to the read models `names`: the last one, even
/// when it is lower than one before it (a `wal` relay starting over from its slot publishes an older position again),
/// for the next marker names the one just before it.
pub async fn markers_routed(pool: &PgPool, names: &[String], through: i64) -> Result<(), StoreError> {
    sqlx::query("update read_model_delivery set last_marker = $2 where name = any($1)")
        .bind(names)
        .bind(through)
        .execute(pool)
        .await?;
    Ok(())
}
