//! `POST /commands/orders`: place an order.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use uuid::Uuid;

use service_runtime::auth::Caller;

use super::command::CommandAccepted;
use super::idempotency::{self, Answer, IdempotencyKey};
use super::schemas::{
    BadRequest, Forbidden, KeyReused, TooLarge, TooManyRequests, Unauthenticated, Unavailable, WrongMediaType,
};
use super::{command, ApiError, AppState, JsonBody};
use crate::domain::{self, Command, NewOrder, PlaceOrder};
use crate::store::{self, StoreError};

pub fn router() -> Router<AppState> {
    Router::new().route("/commands/orders", post(place_order))
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
    let change = domain::decide(None, &Command::Place(order), domain::now())?;
    let order_id = Uuid::now_v7();
    let location = format!("/queries/orders/{order_id}");
    let key_use = key.as_ref().map(|key| key.used_for(&fingerprint, StatusCode::CREATED, Some(&location)));
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let outcome = store::place(&mut conn, order_id, &change, Some(&traceparent), key_use).await?;
    let (answer, placed) = command::answer(outcome, &fingerprint, StatusCode::CREATED, Some(location), |_| {
        ApiError::Internal(anyhow::anyhow!("placing an order changed nothing"))
    })?;
    if let Some(placed) = placed {
        tracing::info!(order_id = %placed.order_id, sequence = placed.sequence, trace_id, "order placed");
    }
    Ok(answer)
}
