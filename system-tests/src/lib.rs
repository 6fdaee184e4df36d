//! What the load and benchmark binaries share: synthetic events and a pre-filled event log.

use shared_events::OrderEvent;
use uuid::Uuid;

/// An `OrderPlaced` envelope (schema v2) for order number `n` of a run, at global position `sequence`.
pub fn sample_envelope(run: Uuid, n: usize, sequence: i64) -> serde_json::Value {
    let order_id = Uuid::from_u128(run.as_u128() ^ n as u128);
    serde_json::json!({
        "eventId": Uuid::new_v4(), "eventType": "OrderPlaced", "schemaVersion": 2, "orderId": order_id,
        "version": 1, "sequence": sequence, "occurredAt": "2026-11-27T10:00:00Z",
        "payload": {
            "customer": {"id": format!("cust-{}", n % 500), "segment": "standard"}, "currency": "EUR",
            "status": "Placed", "total": "39.98", "placedAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:00:00Z",
            "items": [{"sku": format!("SKU-{}", n % 50), "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"}],
        },
    })
}

/// The decoded event of [`sample_envelope`].
pub fn sample_event(run: Uuid, n: usize, sequence: i64) -> OrderEvent {
    let body = serde_json::to_vec(&sample_envelope(run, n, sequence)).unwrap_or_default();
    shared_events::decode(&body).expect("sample envelopes are valid events")
}

/// Appends `events` `OrderPlaced` events (one per order) to an outbox, in one statement.
pub async fn prefill_outbox(pool: &sqlx::PgPool, events: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, occurred_at)
         select gen_random_uuid(), 'OrderPlaced', 2, gen_random_uuid(), 1,
                jsonb_build_object(
                    'customer', jsonb_build_object('id', 'cust-' || (i % 500), 'segment', 'standard'),
                    'currency', 'EUR', 'status', 'Placed',
                    'items', jsonb_build_array(jsonb_build_object(
                        'sku', 'SKU-' || (i % 50), 'quantity', 2, 'unitPrice', '19.99', 'lineTotal', '39.98')),
                    'total', '39.98', 'placedAt', '2026-11-27T10:00:00Z', 'updatedAt', '2026-11-27T10:00:00Z'),
                now()
         from generate_series(1, $1) as i",
    )
    .bind(events)
    .execute(pool)
    .await
    .map(drop)
}

/// Drops a Postgres database (and its connections).
pub async fn drop_postgres(server: &str, database: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(&format!("{server}/postgres")).await {
        let _ = sqlx::query(&format!("drop database if exists {database} with (force)")).execute(&admin).await;
        admin.close().await;
    }
}
