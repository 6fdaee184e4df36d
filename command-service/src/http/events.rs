//! `GET /events?after=<sequence>&limit=<n>`: the event log, in global `sequence` order, for replays.
//!
//! Each event is the same envelope the relay publishes. Read-only, and guarded by the admin token. A page holds the
//! events committed when it is read; one that commits later with a lower sequence is not in the feed's later pages,
//! but the relay publishes it, so a replay that listens to the broker while it reads (as the rebuild does) sees it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::store;

pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 5_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(feed))
}

#[derive(Debug, Deserialize)]
struct FeedParams {
    after: Option<String>,
    limit: Option<String>,
}

async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    ApiError::admin(state.admin.check(headers.get(header::AUTHORIZATION)))?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = match params.after.as_deref() {
        None => 0,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::BadRequest("after must be a non-negative integer".to_owned()))?,
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    let head = store::head(&state.pool).await?;
    let rows = store::events_after(&state.pool, after, limit).await?;
    let next_after = rows.last().map_or(after, |row| row.sequence);
    let events: Vec<_> = rows.into_iter().map(store::OutboxRow::into_envelope).collect();
    Ok(Json(json!({ "data": events, "metadata": { "nextAfter": next_after, "head": head } })))
}
