//! `POST /commands/orders/{id}/confirm`, `/ship`, `/cancel`: move an order through its life.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use super::idempotency::{self, Answer};
use super::json::{self, JsonBytes};
use super::orders::CommandAccepted;
use super::{trace_context, ApiError, AppState};
use crate::domain::{self, parse_reason, FieldError, Transition};
use crate::store::{self, StoreError};

pub fn router() -> Router<AppState> {
    Router::new().route("/commands/orders/{id}/{action}", post(transition))
}

/// Body of `confirm` and `ship` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TransitionBody {
    expected_version: Option<i64>,
}

/// Body of `cancel` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelBody {
    expected_version: Option<i64>,
    reason: Option<String>,
}

#[tracing::instrument(skip_all, fields(trace_id))]
async fn transition(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<JsonBytes, ApiError>,
) -> Result<Answer, ApiError> {
    let started = std::time::Instant::now();
    let command = match &path {
        Ok(Path((_, action))) if matches!(action.as_str(), "confirm" | "ship" | "cancel") => action.clone(),
        _ => "unknown".to_owned(),
    };
    let result = apply(&state, path, &headers, body).await;
    state.metrics.command(&command, started, &result);
    result
}

async fn apply(
    state: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: &HeaderMap,
    body: Result<JsonBytes, ApiError>,
) -> Result<Answer, ApiError> {
    let Path((raw_id, action)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let JsonBytes(body) = body?;
    let transition = match action.as_str() {
        "confirm" => Transition::Confirm,
        "ship" => Transition::Ship,
        "cancel" => Transition::Cancel,
        _ => return Err(ApiError::NotFound("No such command.".to_owned())),
    };
    let order_id =
        Uuid::parse_str(&raw_id).map_err(|_| ApiError::BadRequest("the order id must be a UUID".to_owned()))?;
    let key = idempotency::key(headers)?;
    let (expected_version, reason) = match (&body, transition) {
        (None, _) => (None, None),
        (Some(bytes), Transition::Cancel) => {
            let body: CancelBody = json::parse_object(bytes)?;
            (body.expected_version, body.reason)
        }
        (Some(bytes), _) => (json::parse_object::<TransitionBody>(bytes)?.expected_version, None),
    };
    let mut errors = Vec::new();
    if expected_version.is_some_and(|v| v < 1) {
        errors.push(FieldError::new("expectedVersion", "must be a positive integer"));
    }
    let reason = parse_reason(reason).map_err(|m| errors.push(FieldError::new("reason", m))).ok().flatten();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let canonical = body.as_deref().map(json::canonical).transpose()?.unwrap_or_default();
    let fingerprint =
        idempotency::fingerprint(&format!("POST /commands/orders/{order_id}/{}", transition.as_str()), &canonical);
    let traceparent = trace_context::traceparent(headers);
    let trace_id = shared_events::trace_id(&traceparent).unwrap_or_default();
    tracing::Span::current().record("trace_id", trace_id);
    service_runtime::telemetry::continue_trace(&tracing::Span::current(), &traceparent);

    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    if let Some(replay) = idempotency::begin(&mut tx, key.as_ref(), &fingerprint).await? {
        return Ok(replay);
    }
    let changed = store::transition_order(
        &mut tx,
        order_id,
        transition,
        expected_version,
        reason,
        domain::now(),
        Some(&traceparent),
    )
    .await?;
    let answer = Answer::json(StatusCode::OK, None, &CommandAccepted::from(&changed))?;
    let answer = idempotency::finish(tx, key.as_ref(), answer).await?;
    tracing::info!(order_id = %order_id, version = changed.version, transition = transition.as_str(), trace_id,
        "order changed");
    Ok(answer)
}
