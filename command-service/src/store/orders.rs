//! The write model in SQL: a new order's header and lines, an order read under a row lock for a command, and each
//! change written with its outbox event, in the caller's transaction. What a command changes is decided in
//! [`crate::domain::decide`]; nothing here decides.

use rust_decimal::Decimal;
use shared_events::{Customer, OrderLine, OrderState, OrderStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Change, Current};

/// What a command returns to its caller.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub order_id: Uuid,
    /// The order's version after the command.
    pub version: i64,
    /// The event's global position in the log.
    pub sequence: i64,
    pub state: OrderState,
}

/// Stores a new order and its `OrderPlaced` event (the [`Change`] that placing it decided) in the caller's
/// transaction.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn insert_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    change: &Change,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, StoreError> {
    let state = &change.state;
    sqlx::query(
        "insert into customer_order (id, customer_id, customer_segment, currency, status, total, version, placed_at,
                                     updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(order_id)
    .bind(&state.customer.id)
    .bind(&state.customer.segment)
    .bind(&state.currency)
    .bind(state.status.as_str())
    .bind(state.total)
    .bind(change.version)
    .bind(state.placed_at)
    .bind(state.updated_at)
    .execute(&mut *tx)
    .await?;

    let line_numbers: Vec<i32> = (1..).take(state.items.len()).collect();
    let skus: Vec<&str> = state.items.iter().map(|l| l.sku.as_str()).collect();
    let names: Vec<Option<&str>> = state.items.iter().map(|l| l.name.as_deref()).collect();
    let quantities: Vec<i32> = state.items.iter().map(|l| l.quantity as i32).collect();
    let prices: Vec<Decimal> = state.items.iter().map(|l| l.unit_price).collect();
    let totals: Vec<Decimal> = state.items.iter().map(|l| l.line_total).collect();
    sqlx::query(
        "insert into order_line (order_id, line_no, sku, name, quantity, unit_price, line_total)
         select $1, * from unnest($2::int4[], $3::text[], $4::text[], $5::int4[], $6::numeric[], $7::numeric[])",
    )
    .bind(order_id)
    .bind(&line_numbers)
    .bind(&skus)
    .bind(&names)
    .bind(&quantities)
    .bind(&prices)
    .bind(&totals)
    .execute(&mut *tx)
    .await?;
    append(tx, order_id, change, traceparent).await
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    customer_id: String,
    customer_segment: String,
    currency: String,
    status: String,
    total: Decimal,
    version: i64,
    placed_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    cancel_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    name: Option<String>,
    quantity: i32,
    unit_price: Decimal,
    line_total: Decimal,
}

/// Reads an order for a command in the caller's transaction, locking its row: concurrent commands on one order run
/// one after the other, and each sees the version the previous one wrote. `None` when there is no such order.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> Result<Option<Current>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(
        "select customer_id, customer_segment, currency, status, total, version, placed_at, updated_at, cancel_reason
         from customer_order where id = $1 for update",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status = OrderStatus::parse(&row.status)
        .ok_or_else(|| StoreError::Other(sqlx::Error::Decode(format!("unknown status {:?}", row.status).into())))?;
    let lines: Vec<LineRow> = sqlx::query_as(
        "select sku, name, quantity, unit_price, line_total from order_line where order_id = $1 order by line_no",
    )
    .bind(order_id)
    .fetch_all(&mut *tx)
    .await?;
    let state = OrderState {
        customer: Customer { id: row.customer_id, segment: row.customer_segment },
        currency: row.currency.trim_end().to_owned(),
        status,
        items: lines
            .into_iter()
            .map(|line| OrderLine {
                sku: line.sku,
                name: line.name,
                quantity: line.quantity.unsigned_abs(),
                unit_price: line.unit_price,
                line_total: line.line_total,
            })
            .collect(),
        total: row.total,
        placed_at: row.placed_at,
        updated_at: row.updated_at,
        cancel_reason: row.cancel_reason,
    };
    Ok(Some(Current { version: row.version, state }))
}

/// Writes a decided change of an existing order (read with [`lock_order`]) and its event, in the caller's
/// transaction.
#[tracing::instrument(skip_all, fields(order_id = %order_id, event = change.event_type.as_str()))]
pub async fn update_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    change: &Change,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, StoreError> {
    sqlx::query(
        "update customer_order set status = $2, version = $3, updated_at = $4, cancel_reason = $5 where id = $1",
    )
    .bind(order_id)
    .bind(change.state.status.as_str())
    .bind(change.version)
    .bind(change.state.updated_at)
    .bind(&change.state.cancel_reason)
    .execute(&mut *tx)
    .await?;
    append(tx, order_id, change, traceparent).await
}

/// Appends a change's event to the outbox (its global sequence allocated under the append barrier) and returns
/// what the command answers. The event occurred when the order was last updated.
async fn append(
    tx: &mut PgConnection,
    order_id: Uuid,
    change: &Change,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, StoreError> {
    let payload =
        serde_json::to_value(&change.state).map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
    super::outbox::hold_append_barrier(&mut *tx).await?;
    let sequence: i64 = sqlx::query_scalar(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning sequence",
    )
    .bind(Uuid::now_v7())
    .bind(change.event_type.as_str())
    .bind(change.event_type.current_schema_version() as i32)
    .bind(order_id)
    .bind(change.version)
    .bind(payload)
    .bind(traceparent)
    .bind(change.state.updated_at)
    .fetch_one(tx)
    .await?;
    Ok(PlacedOrder { order_id, version: change.version, sequence, state: change.state.clone() })
}
