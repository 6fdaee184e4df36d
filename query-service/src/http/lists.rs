//! `GET /queries/orders?customerId=&status=&limit=&cursor=&minPosition=&waitMs=`: views newest first, in stable
//! pages. With `minPosition` (the `position` a command returned) the read first waits, server-side, until every
//! event up to that position has been applied, so the list shows the client's own writes; 202 when `waitMs` runs
//! out first, as for single reads.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared_events::OrderStatus;
use std::time::Duration;

use super::orders::view_json;
use super::params::{parse_min, parse_wait};
use super::{ApiError, AppState};
use crate::store::{ListCursor, ListFilter};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/orders", get(list_orders))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    customer_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    min_position: Option<String>,
    wait_ms: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list_orders(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    if let Some(status) = params.status.as_deref().filter(|s| OrderStatus::parse(s).is_none()) {
        return Err(ApiError::BadRequest(format!(
            "status {status:?} is not one of Placed, Confirmed, Shipped, Cancelled"
        )));
    }
    if params.customer_id.as_ref().is_some_and(|c| c.is_empty() || c.len() > 64) {
        return Err(ApiError::BadRequest("customerId must be 1 to 64 characters long".to_owned()));
    }
    let cursor = params
        .cursor
        .as_deref()
        .map(|raw| {
            ListCursor::decode(raw).ok_or_else(|| ApiError::BadRequest("cursor is not one this API issued".to_owned()))
        })
        .transpose()?;
    let min_position = parse_min("minPosition", params.min_position.as_deref())?;
    let wait = parse_wait(params.wait_ms.as_deref())?;
    let position = match min_position {
        Some(min_position) => Some((min_position, wait_for_position(&state, min_position, wait).await?)),
        None => None,
    };

    let filter = ListFilter { customer_id: params.customer_id, status: params.status };
    let views = state.views.list(&filter, cursor.as_ref(), limit).await.map_err(ApiError::Unavailable)?;
    let next_cursor =
        (views.len() as i64 == limit).then(|| views.last().map(|v| ListCursor::after(v).encode())).flatten();
    let data: Vec<Value> = views.iter().map(view_json).collect();
    Ok(match position {
        Some((min_position, position)) if position < min_position => {
            let metadata = json!({
                "nextCursor": next_cursor, "processing": true, "position": position, "minPosition": min_position,
            });
            (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")], Json(json!({ "data": data, "metadata": metadata })))
                .into_response()
        }
        Some((_, position)) => {
            let metadata = json!({ "nextCursor": next_cursor, "processing": false, "position": position });
            Json(json!({ "data": data, "metadata": metadata })).into_response()
        }
        None => Json(json!({ "data": data, "metadata": { "nextCursor": next_cursor } })).into_response(),
    })
}

/// Waits up to `wait` for the read model to reach `min_position`; returns the position it is at.
///
/// The board knows what this replica has been told; a replica that started after the last notice asks MongoDB.
async fn wait_for_position(state: &AppState, min_position: i64, wait: Duration) -> Result<i64, ApiError> {
    if state.waiters.position() < min_position {
        let stored = state.views.position().await.map_err(ApiError::Unavailable)?;
        state.waiters.announce_position(stored);
    }
    if state.waiters.position() < min_position && !wait.is_zero() {
        let started = std::time::Instant::now();
        let reached = tokio::time::timeout(wait, state.waiters.position_reached(min_position)).await.is_ok();
        state.metrics.waited(reached, started.elapsed());
    }
    Ok(state.waiters.position())
}
