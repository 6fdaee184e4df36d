//! Reading the outbox for the relay, and marking rows published once the broker has confirmed them.

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

/// The oldest `limit` unpublished rows, in `sequence` order.
pub async fn unpublished(pool: &PgPool, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                occurred_at
         from outbox where published_at is null order by sequence limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Marks the given rows published. Rows are never deleted: the outbox is the event log.
pub async fn mark_published(pool: &PgPool, sequences: &[i64]) -> Result<u64, StoreError> {
    let done = sqlx::query("update outbox set published_at = now() where sequence = any($1) and published_at is null")
        .bind(sequences)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
