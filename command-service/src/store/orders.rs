//! Writing orders: header, lines and the `OrderPlaced` outbox row in one transaction.

use rust_decimal::Decimal;
use shared_events::{EventType, OrderLine, OrderState, OrderStatus};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::domain::NewOrder;

/// What the command returns to its caller.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub order_id: Uuid,
    /// The order's version after the command.
    pub version: i64,
    /// The event's global position in the log.
    pub sequence: i64,
    pub state: OrderState,
}

/// Stores a new order and its `OrderPlaced` event atomically.
#[tracing::instrument(skip_all, fields(order_id))]
pub async fn place_order(
    pool: &PgPool,
    order: &NewOrder,
    now: OffsetDateTime,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, StoreError> {
    let order_id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let version = 1_i64;
    let state = OrderState {
        customer_id: order.customer_id.as_str().to_owned(),
        currency: order.currency.as_str().to_owned(),
        status: OrderStatus::Placed,
        items: order
            .lines
            .iter()
            .map(|line| OrderLine {
                sku: line.sku.as_str().to_owned(),
                quantity: line.quantity.get(),
                unit_price: line.unit_price.get(),
                line_total: line.line_total(),
            })
            .collect(),
        total: order.total(),
        placed_at: now,
        updated_at: now,
    };

    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into customer_order (id, customer_id, currency, status, total, version, placed_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(order_id)
    .bind(&state.customer_id)
    .bind(&state.currency)
    .bind(state.status.as_str())
    .bind(state.total)
    .bind(version)
    .bind(now)
    .execute(&mut *tx)
    .await?;

    let line_numbers: Vec<i32> = (1..).take(state.items.len()).collect();
    let skus: Vec<&str> = state.items.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i32> = state.items.iter().map(|l| l.quantity as i32).collect();
    let prices: Vec<Decimal> = state.items.iter().map(|l| l.unit_price).collect();
    let totals: Vec<Decimal> = state.items.iter().map(|l| l.line_total).collect();
    sqlx::query(
        "insert into order_line (order_id, line_no, sku, quantity, unit_price, line_total)
         select $1, * from unnest($2::int4[], $3::text[], $4::int4[], $5::numeric[], $6::numeric[])",
    )
    .bind(order_id)
    .bind(&line_numbers)
    .bind(&skus)
    .bind(&quantities)
    .bind(&prices)
    .bind(&totals)
    .execute(&mut *tx)
    .await?;

    let sequence = insert_event(&mut tx, order_id, version, EventType::OrderPlaced, &state, now, traceparent).await?;
    tx.commit().await?;
    Ok(PlacedOrder { order_id, version, sequence, state })
}

/// Appends one event to the outbox inside the caller's transaction and returns its global sequence.
pub(crate) async fn insert_event(
    tx: &mut sqlx::PgConnection,
    order_id: Uuid,
    version: i64,
    event_type: EventType,
    state: &OrderState,
    occurred_at: OffsetDateTime,
    traceparent: Option<&str>,
) -> Result<i64, StoreError> {
    let payload = serde_json::to_value(state).map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
    let sequence: i64 = sqlx::query_scalar(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning sequence",
    )
    .bind(Uuid::now_v7())
    .bind(event_type.as_str())
    .bind(event_type.current_schema_version() as i32)
    .bind(order_id)
    .bind(version)
    .bind(payload)
    .bind(traceparent)
    .bind(occurred_at)
    .fetch_one(tx)
    .await?;
    Ok(sequence)
}
