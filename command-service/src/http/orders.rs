//! `POST /commands/orders`: place an order.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use service_runtime::auth::Caller;

use super::idempotency::{self, Answer, IdempotencyKey};
use super::schemas::{
    BadRequest, Forbidden, KeyReused, TooLarge, TooManyRequests, Unauthenticated, Unavailable, WrongMediaType,
};
use super::{command, ApiError, AppState, JsonBody};
use crate::domain::{self, Command, NewOrder, PlaceOrder};
use crate::store::{self, PlacedOrder};

pub fn router() -> Router<AppState> {
    Router::new().route("/commands/orders", post(place_order))
}

/// The answer to every successful command.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    pub order_id: Uuid,
    /// The order's version after the command: the `minVersion` token for reads.
    pub sequence_id: i64,
    /// The event's global position in the log: the `minPosition` token for list reads.
    pub position: i64,
    /// The order's status after the command.
    #[schema(value_type = String, example = "Placed")]
    pub status: &'static str,
    /// Decimal, as a string.
    pub total: String,
    pub currency: String,
}

impl From<&PlacedOrder> for CommandAccepted {
    fn from(placed: &PlacedOrder) -> Self {
        Self {
            order_id: placed.order_id,
            sequence_id: placed.version,
            position: placed.sequence,
            status: placed.state.status.as_str(),
            total: placed.state.total.to_string(),
            currency: placed.state.currency.clone(),
        }
    }
}

/// Place an order.
#[utoipa::path(post, path = "/commands/orders", tag = "commands",
    params(IdempotencyKey),
    request_body(content = PlaceOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "Placed: `sequenceId` is the `minVersion` to read it at", body = CommandAccepted,
            headers(("Location" = String, description = "Where the order's view will be"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden), (status = 413, response = TooLarge),
        (status = 415, response = WrongMediaType), (status = 422, response = KeyReused),
        (status = 429, response = TooManyRequests), (status = 503, response = Unavailable)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all, fields(trace_id))]
pub(super) async fn place_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBody<PlaceOrder>, ApiError>,
) -> Result<Answer, ApiError> {
    command::measured(&state, "place", place(&state, &caller, &headers, key, body)).await
}

async fn place(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBody<PlaceOrder>, ApiError>,
) -> Result<Answer, ApiError> {
    command::admit(state, caller)?;
    let JsonBody(mut command) = body?;
    let key = key?.key.map(|key| key.of(caller.idempotency_scope()));
    // A customer places for itself: the body may leave its id out, and may not name another.
    command.customer_id = caller.customer_for_new_order(command.customer_id.as_deref())?;
    let order = NewOrder::parse(command).map_err(ApiError::Validation)?;
    let (traceparent, trace_id) = command::trace(headers);
    let fingerprint = idempotency::fingerprint("POST /commands/orders", &order.canonical());
    let (answer, placed) = command::exactly_once(state, key.as_ref(), &fingerprint, async |tx| {
        let change = domain::decide(None, &Command::Place(order), domain::now())?;
        let placed = store::insert_order(tx, Uuid::now_v7(), &change, Some(&traceparent)).await?;
        let location = format!("/queries/orders/{}", placed.order_id);
        Ok((Answer::json(StatusCode::CREATED, Some(location), &CommandAccepted::from(&placed))?, placed))
    })
    .await?;
    if let Some(placed) = placed {
        tracing::info!(order_id = %placed.order_id, sequence = placed.sequence, trace_id, "order placed");
    }
    Ok(answer)
}
