//! What every command handler does around its own work, written once: count and time the command by how it ended,
//! hold the caller to its rate, take the request's trace context onto the current span, and run the work in one transaction behind the
//! `Idempotency-Key` (a replay answers the stored response; a new answer is stored with the command and committed).

use axum::http::HeaderMap;
use service_runtime::auth::Caller;
use sqlx::PgConnection;
use std::future::Future;
use std::time::Instant;

use super::idempotency::{self, Answer, Key};
use super::{trace_context, ApiError, AppState};
use crate::store::StoreError;

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

/// Runs `work` in one transaction, exactly once per `key` and `fingerprint`: a retry of the same request gets the
/// stored answer and runs nothing (`None` beside it); the first run's answer is stored under the key in the same
/// transaction, which then commits, and what the work returned beside its answer comes back with it.
pub async fn exactly_once<T>(
    state: &AppState,
    key: Option<&Key>,
    fingerprint: &str,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<(Answer, T), ApiError>,
) -> Result<(Answer, Option<T>), ApiError> {
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    if let Some(replay) = idempotency::begin(&mut tx, key, fingerprint).await? {
        return Ok((replay, None));
    }
    let (answer, done) = work(&mut tx).await?;
    Ok((idempotency::finish(tx, key, answer).await?, Some(done)))
}
