//! The logical replication slot and the publication the `wal` relay reads the outbox through, and what a slot
//! keeps: the write-ahead log from its restart position on, however long nobody reads it.

use sqlx::PgPool;

use super::StoreError;

/// The publication of outbox inserts (per database): updates (the notify relay's marks) are not streamed.
pub const PUBLICATION: &str = "orders_outbox";

/// The slot name derived from a database name: `orders_relay_<database>`, lower case, `[a-z0-9_]`, at most 63 bytes.
pub fn default_name(database: &str) -> String {
    let name: String = format!("orders_relay_{database}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    name.chars().take(63).collect()
}

/// Creates the publication unless it exists.
pub async fn ensure_publication(pool: &PgPool) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar("select exists (select from pg_publication where pubname = $1)")
        .bind(PUBLICATION)
        .fetch_one(pool)
        .await?;
    if !exists {
        let created =
            sqlx::query(&format!("create publication {PUBLICATION} for table outbox with (publish = 'insert')"))
                .execute(pool)
                .await;
        match created {
            // Another relay created it meanwhile.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42710") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// A slot of this database as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Slot {
    pub name: String,
    /// The backend streaming from it, if one is.
    pub active_pid: Option<i32>,
    /// Write-ahead log the slot keeps the server from removing, in bytes.
    pub retained_bytes: Option<i64>,
    /// Write-ahead log written since the slot's consumer last confirmed, in bytes.
    pub lag_bytes: Option<i64>,
    /// `reserved`, `extended`, `unreserved`, or `lost`: invalidated by `max_slot_wal_keep_size`, never readable again.
    pub wal_status: Option<String>,
}

impl Slot {
    /// Whether the server has given the slot up (`wal_status = 'lost'`): it can never be read again.
    pub fn is_lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
    }
}

const SLOTS: &str = "select slot_name::text as name, active_pid,
        pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 as retained_bytes,
        pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 as lag_bytes,
        wal_status::text
     from pg_replication_slots
     where database = current_database() and plugin = 'pgoutput'";

/// The `pgoutput` slots of this database (the relay's, and any left behind by an earlier name).
pub async fn all(pool: &PgPool) -> Result<Vec<Slot>, StoreError> {
    Ok(sqlx::query_as(&format!("{SLOTS} order by slot_name")).fetch_all(pool).await?)
}

pub async fn find(pool: &PgPool, name: &str) -> Result<Option<Slot>, StoreError> {
    Ok(sqlx::query_as(&format!("{SLOTS} and slot_name = $1")).bind(name).fetch_optional(pool).await?)
}

/// Creates a `pgoutput` slot; it streams what commits after this call.
pub async fn create(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query("select pg_create_logical_replication_slot($1, 'pgoutput')").bind(name).execute(pool).await?;
    Ok(())
}

/// Drops a slot, ending the backend that streams from it first when `force` (a relay that lost its leadership
/// but not yet its stream). `false` when there was no such slot.
pub async fn remove(pool: &PgPool, name: &str, force: bool) -> Result<bool, StoreError> {
    let Some(slot) = find(pool, name).await? else { return Ok(false) };
    if let (Some(pid), true) = (slot.active_pid, force) {
        end_stream(pool, pid).await?;
    }
    sqlx::query("select pg_drop_replication_slot($1)").bind(name).execute(pool).await?;
    Ok(true)
}

/// Ends the backend streaming from a slot and waits (up to 10 s) until the slot is free.
pub async fn end_stream(pool: &PgPool, pid: i32) -> Result<(), StoreError> {
    sqlx::query("select pg_terminate_backend($1)").bind(pid).execute(pool).await?;
    for _ in 0..200 {
        let held: bool = sqlx::query_scalar("select exists (select from pg_replication_slots where active_pid = $1)")
            .bind(pid)
            .fetch_one(pool)
            .await?;
        if !held {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Writes a marker into the log at commit, after every transaction committed before it: the `wal` relay reads
/// `content` when its stream reaches that point.
pub async fn emit_marker(pool: &PgPool, prefix: &str, content: &str) -> Result<(), StoreError> {
    sqlx::query("select pg_logical_emit_message(true, $1, $2)").bind(prefix).bind(content).execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_name;

    #[test]
    fn the_default_slot_name_is_a_valid_slot_name_of_the_database() {
        assert_eq!(default_name("orders"), "orders_relay_orders");
        assert_eq!(default_name("Test-DB.1"), "orders_relay_test_db_1");
        let long = default_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(long.starts_with("orders_relay_xxx"));
    }
}
