//! `POST /commands/orders`: place an order.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use uuid::Uuid;

use super::{trace_context, ApiError, AppState, JsonBody};
use crate::domain::{self, NewOrder, PlaceOrder};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/commands/orders", post(place_order))
}

/// The answer to every successful command.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    pub order_id: Uuid,
    /// The order's version after the command: the `minVersion` token for reads.
    pub sequence_id: i64,
    /// The event's global position in the log: the `minPosition` token for list reads.
    pub position: i64,
    pub status: &'static str,
    pub total: String,
    pub currency: String,
}

#[tracing::instrument(skip_all)]
async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(command): JsonBody<PlaceOrder>,
) -> Result<impl IntoResponse, ApiError> {
    let order = NewOrder::parse(command).map_err(ApiError::Validation)?;
    let traceparent = trace_context::traceparent(&headers);
    let placed = store::place_order(&state.pool, &order, domain::now(), Some(&traceparent)).await?;
    tracing::info!(order_id = %placed.order_id, sequence = placed.sequence, "order placed");
    let location = format!("/queries/orders/{}", placed.order_id);
    let body = CommandAccepted {
        order_id: placed.order_id,
        sequence_id: placed.version,
        position: placed.sequence,
        status: placed.state.status.as_str(),
        total: placed.state.total.to_string(),
        currency: placed.state.currency,
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)))
}
