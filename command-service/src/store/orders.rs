//! Writing orders: header, lines and the `OrderPlaced` outbox row in one transaction.

use rust_decimal::Decimal;
use shared_events::{Customer, EventType, OrderLine, OrderState, OrderStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{NewOrder, Transition};

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

/// Stores a new order and its `OrderPlaced` event in the caller's transaction.
#[tracing::instrument(skip_all, fields(order_id))]
pub async fn place_order(
    tx: &mut PgConnection,
    order: &NewOrder,
    now: OffsetDateTime,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, StoreError> {
    let order_id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let version = 1_i64;
    let state = OrderState {
        customer: Customer { id: order.customer_id.as_str().to_owned(), segment: order.segment.as_str().to_owned() },
        currency: order.currency.as_str().to_owned(),
        status: OrderStatus::Placed,
        items: order
            .lines
            .iter()
            .map(|line| OrderLine {
                sku: line.sku.as_str().to_owned(),
                name: line.name.as_ref().map(|name| name.as_str().to_owned()),
                quantity: line.quantity.get(),
                unit_price: line.unit_price.get(),
                line_total: line.line_total(),
            })
            .collect(),
        total: order.total(),
        placed_at: now,
        updated_at: now,
        cancel_reason: None,
    };

    sqlx::query(
        "insert into customer_order (id, customer_id, customer_segment, currency, status, total, version, placed_at,
                                     updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(order_id)
    .bind(&state.customer.id)
    .bind(&state.customer.segment)
    .bind(&state.currency)
    .bind(state.status.as_str())
    .bind(state.total)
    .bind(version)
    .bind(now)
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

    let sequence = insert_event(tx, order_id, version, EventType::OrderPlaced, &state, now, traceparent).await?;
    Ok(PlacedOrder { order_id, version, sequence, state })
}

/// Why a transition was not made.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no order {0}")]
    NotFound(Uuid),
    #[error("the order is at version {current_version}, not {expected}")]
    VersionConflict { expected: i64, current_version: i64, status: OrderStatus },
    #[error("{reason}")]
    NotAllowed { reason: String, current_version: i64, status: OrderStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TransitionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
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
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    name: Option<String>,
    quantity: i32,
    unit_price: Decimal,
    line_total: Decimal,
}

/// Moves an order through its life in the caller's transaction: locks the order row (so concurrent commands on one
/// order run one after the other and each sees the version the previous one wrote), checks `expected_version` and
/// the transition, writes the new status and version, and appends the event.
#[tracing::instrument(skip_all, fields(order_id = %order_id, transition = transition.as_str()))]
pub async fn transition_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    transition: Transition,
    expected_version: Option<i64>,
    cancel_reason: Option<String>,
    now: OffsetDateTime,
    traceparent: Option<&str>,
) -> Result<PlacedOrder, TransitionError> {
    let row: Option<OrderRow> = sqlx::query_as(
        "select customer_id, customer_segment, currency, status, total, version, placed_at
         from customer_order where id = $1 for update",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or(TransitionError::NotFound(order_id))?;
    let status = OrderStatus::parse(&row.status)
        .ok_or_else(|| StoreError::Other(sqlx::Error::Decode(format!("unknown status {:?}", row.status).into())))?;
    if let Some(expected) = expected_version.filter(|expected| *expected != row.version) {
        return Err(TransitionError::VersionConflict { expected, current_version: row.version, status });
    }
    let next = transition.apply(status).map_err(|reason| TransitionError::NotAllowed {
        reason,
        current_version: row.version,
        status,
    })?;
    let version = row.version + 1;
    let cancel_reason = if next == OrderStatus::Cancelled { cancel_reason } else { None };
    sqlx::query(
        "update customer_order set status = $2, version = $3, updated_at = $4, cancel_reason = $5 where id = $1",
    )
    .bind(order_id)
    .bind(next.as_str())
    .bind(version)
    .bind(now)
    .bind(&cancel_reason)
    .execute(&mut *tx)
    .await?;
    let lines: Vec<LineRow> = sqlx::query_as(
        "select sku, name, quantity, unit_price, line_total from order_line where order_id = $1 order by line_no",
    )
    .bind(order_id)
    .fetch_all(&mut *tx)
    .await?;
    let state = OrderState {
        customer: Customer { id: row.customer_id, segment: row.customer_segment },
        currency: row.currency.trim_end().to_owned(),
        status: next,
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
        updated_at: now,
        cancel_reason,
    };
    let sequence = insert_event(tx, order_id, version, transition.event_type(), &state, now, traceparent).await?;
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
    super::outbox::hold_append_barrier(&mut *tx).await?;
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
