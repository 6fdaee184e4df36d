//! What every command handler does around its own work, written once: count and time the command by how it ended,
//! hold the caller to its rate, take the request's trace context onto the current span, and turn the outcome of the
//! command's one statement into its answer (what it recorded, the replay of the key's first answer, or a refusal).

use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use service_runtime::auth::Caller;
use shared_events::OrderStatus;
use std::future::Future;
use std::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

use super::idempotency::Answer;
use super::{trace_context, ApiError, AppState};
use crate::store::{Outcome, Recorded};

/// Runs `command` and counts it under `name` (`place`, `confirm`, …) with its outcome and duration.
pub async fn measured(
    state: &AppState,
    name: &str,
    command: impl Future<Output = Result<Answer, ApiError>>,
) -> Result<Answer, ApiError> {
    let started = Instant::now();
    let result = command.await;
    state.metrics.command(name, started, &result);
    result
}

/// Whether `caller` may send one more command now: the per-client rate limit, when one is set (429 otherwise).
pub fn admit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    match &state.limiter {
        Some(limiter) => limiter.check(caller.client(), tokio::time::Instant::now()).map_err(ApiError::TooManyRequests),
        None => Ok(()),
    }
}

/// The request's trace context: its `traceparent` (or a new one), recorded on the current span as `trace_id` and
/// continued by the exported trace. Returns the `traceparent` and its trace id.
pub fn trace(headers: &HeaderMap) -> (String, String) {
    let traceparent = trace_context::traceparent(headers);
    let trace_id = shared_events::trace_id(&traceparent).unwrap_or_default().to_owned();
    tracing::Span::current().record("trace_id", trace_id.as_str());
    service_runtime::telemetry::continue_trace(&tracing::Span::current(), &traceparent);
    (traceparent, trace_id)
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

impl From<&Recorded> for CommandAccepted {
    fn from(recorded: &Recorded) -> Self {
        Self {
            order_id: recorded.order_id,
            sequence_id: recorded.version,
            position: recorded.sequence,
            status: recorded.status.as_str(),
            total: recorded.total.clone(),
            currency: recorded.currency.clone(),
        }
    }
}

/// The answer to a command's statement: `status` and `location` with what it recorded, or the first answer again
/// for a retry with the same key and request (422 for the key reused with another request), or `refused` for a
/// change that changed nothing. What was recorded comes back beside the answer the first time only.
pub fn answer(
    outcome: Outcome,
    fingerprint: &str,
    status: StatusCode,
    location: Option<String>,
    refused: impl FnOnce(Option<(i64, OrderStatus)>) -> ApiError,
) -> Result<(Answer, Option<Recorded>), ApiError> {
    match outcome {
        Outcome::Recorded(recorded) => {
            Ok((Answer::json(status, location, &CommandAccepted::from(&recorded))?, Some(recorded)))
        }
        Outcome::KeyUsed(earlier) if earlier.fingerprint != fingerprint => Err(ApiError::IdempotencyMismatch),
        Outcome::KeyUsed(earlier) => {
            let status = u16::try_from(earlier.status_code)
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored status {}", earlier.status_code)))?;
            let replay = match earlier.recorded {
                Some(recorded) => Answer::json(status, earlier.location, &CommandAccepted::from(&recorded))?,
                None if !earlier.response_body.is_empty() => {
                    Answer { status, location: earlier.location, body: earlier.response_body }
                }
                None => return Err(ApiError::Internal(anyhow::anyhow!("a stored answer without its event"))),
            };
            Ok((replay, None))
        }
        Outcome::Unchanged(found) => Err(refused(found)),
    }
}
