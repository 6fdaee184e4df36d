//! Reading the outbox for the relay, marking rows published once the broker has confirmed them, and the append
//! barrier that tells the relay when every sequence up to a point is settled.
//!
//! # The append barrier
//! A command's transaction allocates its event's `sequence` when it inserts the outbox row, but transactions commit
//! in any order, and one that rolls back leaves a hole for good. To tell a late commit from a hole, every appender
//! first takes a *shared* transaction-scoped advisory lock (on [`APPEND_BARRIER_KEY`], inside its one statement: see
//! [`super::orders`]), which it keeps until it commits or rolls back. The relay reads the highest sequence allocated so far, then which transactions hold the
//! lock ([`Watermark::read`]); once none of those still holds it ([`Watermark::is_settled`]), every sequence up to
//! the one it read belongs to a committed row or to none. Appenders never wait on each other or on the relay: the
//! relay only looks at `pg_locks`, it never takes the lock itself.

use shared_events::Envelope;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// One outbox row, as the relay needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub sequence: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub order_id: Uuid,
    pub order_version: i64,
    pub payload: serde_json::Value,
    pub traceparent: Option<String>,
    pub occurred_at: OffsetDateTime,
}

impl OutboxRow {
    /// The envelope published for this row.
    pub fn into_envelope(self) -> Envelope {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: u32::try_from(self.schema_version).unwrap_or(0),
            order_id: self.order_id,
            version: self.order_version,
            sequence: self.sequence,
            occurred_at: self.occurred_at,
            traceparent: self.traceparent,
            payload: self.payload,
        }
    }
}

/// The oldest `limit` unpublished rows, in `sequence` order (neither marked published nor published in `wal` mode:
/// see [`super::progress`]).
pub async fn unpublished(pool: &PgPool, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                occurred_at
         from outbox_backlog order by sequence limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` events after `after`, in `sequence` order: a page of the event log, published or not.
pub async fn events_after(pool: &PgPool, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                occurred_at
         from outbox where sequence > $1 order by sequence limit $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` of one order's events after `after`, in `sequence` (so version) order.
pub async fn order_events_after(
    pool: &PgPool,
    order: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                occurred_at
         from outbox where order_id = $1 and sequence > $2 order by sequence limit $3",
    )
    .bind(order)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The sequence of the newest committed event (0 for an empty log).
pub async fn head(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox").fetch_one(pool).await?)
}

/// Marks the given rows published. Rows are never deleted: the outbox is the event log.
pub async fn mark_published(pool: &PgPool, sequences: &[i64]) -> Result<u64, StoreError> {
    let done = sqlx::query("update outbox set published_at = now() where sequence = any($1) and published_at is null")
        .bind(sequences)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Advisory lock key of the append barrier ("appd" in ASCII; below 2^31, so `pg_locks` shows it as `objid` with
/// `classid` 0). Locks are per database.
pub(super) const APPEND_BARRIER_KEY: i64 = 0x6170_7064;

/// Transactions inside the append barrier, by virtual transaction id.
const BARRIER_HOLDERS: &str = "select virtualtransaction from pg_locks
     where locktype = 'advisory' and granted and classid = 0 and objid::int8 = $1 and objsubid = 1
       and database = (select oid from pg_database where datname = current_database())";

/// A sequence, and the transactions that might still commit a row at or below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The highest sequence allocated when the watermark was read.
    pub through: i64,
    holders: Vec<String>,
}

impl Watermark {
    /// Reads the highest allocated sequence, *then* the appenders in flight: an appender that allocated a sequence
    /// up to `through` joined the barrier before, so it is either finished or among the holders. `None` when no
    /// sequence was ever allocated.
    pub async fn read(pool: &PgPool) -> Result<Option<Self>, StoreError> {
        let through: Option<i64> =
            sqlx::query_scalar("select pg_sequence_last_value(pg_get_serial_sequence('outbox', 'sequence')::regclass)")
                .fetch_one(pool)
                .await?;
        let Some(through) = through else { return Ok(None) };
        let holders = sqlx::query_scalar(BARRIER_HOLDERS).bind(APPEND_BARRIER_KEY).fetch_all(pool).await?;
        Ok(Some(Self { through, holders }))
    }

    /// Whether every appender that might own a sequence up to `through` has committed or rolled back.
    pub async fn is_settled(&self, pool: &PgPool) -> Result<bool, StoreError> {
        if self.holders.is_empty() {
            return Ok(true);
        }
        let still: Vec<String> = sqlx::query_scalar(BARRIER_HOLDERS).bind(APPEND_BARRIER_KEY).fetch_all(pool).await?;
        Ok(!still.iter().any(|holder| self.holders.contains(holder)))
    }
}
