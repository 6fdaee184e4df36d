//! `POST /commands/orders/{id}/confirm`, `/ship`, `/cancel`: move an order through its life.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use utoipa::ToSchema;

use service_runtime::auth::{Caller, Changes};
use service_runtime::extract::{BadInput, OrderId};

use super::command::CommandAccepted;
use super::idempotency::{self, Answer, IdempotencyKey};
use super::json::{self, JsonBytes};
use super::schemas::{
    BadRequest, Conflict, KeyReused, NotFound, TooLarge, TooManyRequests, Unauthenticated, Unavailable, WrongMediaType,
};
use super::{command, ApiError, AppState};
use crate::domain::{self, parse_reason, ChangeRule, FieldError, JsonInteger, Refusal, Transition};
use crate::store::{self, LifecycleChange, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/commands/orders/{id}/confirm", post(confirm))
        .route("/commands/orders/{id}/ship", post(ship))
        .route("/commands/orders/{id}/cancel", post(cancel))
}

/// Body of `confirm` and `ship` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionBody {
    /// Apply only if the order is still at this version (optimistic concurrency); 409 otherwise.
    #[schema(value_type = Option<i64>, minimum = 1)]
    expected_version: Option<JsonInteger>,
}

/// Body of `cancel` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    /// Apply only if the order is still at this version (optimistic concurrency); 409 otherwise.
    #[schema(value_type = Option<i64>, minimum = 1)]
    expected_version: Option<JsonInteger>,
    /// Why the order was cancelled; kept on the order and its view.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// Declares the handler of one lifecycle command: its OpenAPI description (the same answers for each, but for the
/// body and what the 200 means) and a call of [`transition`].
macro_rules! lifecycle_command {
    ($(#[doc = $doc:literal])* $name:ident, $transition:expr, $path:literal, $body:ty, $done:literal) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, tag = "commands",
            params(("id" = Uuid, Path, description = "The order id"), IdempotencyKey),
            request_body(content = Option<$body>, content_type = "application/json"),
            responses(
                (status = 200, description = $done, body = CommandAccepted),
                (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
                (status = 404, response = NotFound), (status = 409, response = Conflict),
                (status = 413, response = TooLarge), (status = 415, response = WrongMediaType),
                (status = 422, response = KeyReused), (status = 429, response = TooManyRequests),
                (status = 503, response = Unavailable)),
            security((), ("bearer" = [])))]
        pub(super) async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            order: Result<OrderId, BadInput>,
            headers: HeaderMap,
            key: Result<IdempotencyKey, ApiError>,
            body: Result<JsonBytes, ApiError>,
        ) -> Result<Answer, ApiError> {
            transition(state, caller, $transition, order, headers, key, body).await
        }
    };
}

lifecycle_command!(
    /// Confirm a placed order.
    confirm,
    Transition::Confirm,
    "/commands/orders/{id}/confirm",
    TransitionBody,
    "Confirmed: the new version is the `minVersion` token"
);

lifecycle_command!(
    /// Ship a confirmed order.
    ship,
    Transition::Ship,
    "/commands/orders/{id}/ship",
    TransitionBody,
    "Shipped: the new version is the `minVersion` token"
);

lifecycle_command!(
    /// Cancel an order that has not shipped.
    cancel,
    Transition::Cancel,
    "/commands/orders/{id}/cancel",
    CancelBody,
    "Cancelled: the new version is the `minVersion` token"
);

#[tracing::instrument(skip_all, fields(trace_id))]
async fn transition(
    state: AppState,
    caller: Caller,
    transition: Transition,
    order: Result<OrderId, BadInput>,
    headers: HeaderMap,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBytes, ApiError>,
) -> Result<Answer, ApiError> {
    let applied = apply(&state, &caller, transition, order, &headers, key, body);
    command::measured(&state, transition.as_str(), applied).await
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    transition: Transition,
    order: Result<OrderId, BadInput>,
    headers: &HeaderMap,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBytes, ApiError>,
) -> Result<Answer, ApiError> {
    command::admit(state, caller)?;
    // `null` says "no body" as much as an empty body does. The body is judged before the id (415, 413).
    let JsonBytes(body) = body?;
    let OrderId(order_id) = order?;
    let body = body.filter(|bytes| bytes.trim_ascii() != b"null");
    let key = key?.key.map(|key| key.of(caller.idempotency_scope()));
    let (expected_version, reason) = match (&body, transition) {
        (None, _) => (None, None),
        (Some(bytes), Transition::Cancel) => {
            let body: CancelBody = json::parse_object(bytes)?;
            (body.expected_version.map(|v| v.0), body.reason)
        }
        (Some(bytes), _) => (json::parse_object::<TransitionBody>(bytes)?.expected_version.map(|v| v.0), None),
    };
    let mut errors = Vec::new();
    if expected_version.is_some_and(|v| v < 1) {
        errors.push(FieldError::new("expectedVersion", "must be a positive integer"));
    }
    let reason = parse_reason(reason).map_err(|m| errors.push(FieldError::new("reason", m))).ok().flatten();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // What the command asks, not how it was spelled: no body, `null` and `{}` ask the same.
    let canonical = serde_json::json!([expected_version, reason]).to_string();
    let fingerprint =
        idempotency::fingerprint(&format!("POST /commands/orders/{order_id}/{}", transition.as_str()), &canonical);
    let (traceparent, trace_id) = command::trace(headers);
    // Another customer's order is refused exactly as one that does not exist: 404.
    let owner = match caller.changes() {
        Changes::AnyOrder => None,
        Changes::OrdersOf(customer) => Some(customer),
        Changes::NoOrder => return Err(Refusal::NotFound.into()),
    };
    let rule = ChangeRule::new(transition, expected_version, reason, domain::now());
    let change = LifecycleChange { order_id, owner, rule: &rule };
    let key_use = key.as_ref().map(|key| key.used_for(&fingerprint, StatusCode::OK, None));
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let outcome = store::change(&mut conn, &change, Some(&traceparent), key_use).await?;
    let (answer, changed) = command::answer(outcome, &fingerprint, StatusCode::OK, None, |found| {
        let Some((version, status)) = found else { return Refusal::NotFound.into() };
        match rule.admit(version, status) {
            Err(refusal) => refusal.into(),
            Ok(_) => ApiError::Internal(anyhow::anyhow!("the store refused a change the order allows")),
        }
    })?;
    if let Some(changed) = changed {
        tracing::info!(order_id = %order_id, version = changed.version, transition = transition.as_str(), trace_id,
            "order changed");
    }
    Ok(answer)
}
