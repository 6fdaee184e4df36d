//! `GET /queries/orders?customerId=&status=&limit=&cursor=`: views newest first, in stable pages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared_events::OrderStatus;

use super::orders::view_json;
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
}

#[tracing::instrument(skip_all)]
async fn list_orders(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let filter = ListFilter { customer_id: params.customer_id, status: params.status };
    let views = state.views.list(&filter, cursor.as_ref(), limit).await.map_err(ApiError::Unavailable)?;
    let next_cursor =
        (views.len() as i64 == limit).then(|| views.last().map(|v| ListCursor::after(v).encode())).flatten();
    Ok(Json(json!({
        "data": views.iter().map(view_json).collect::<Vec<_>>(),
        "metadata": { "nextCursor": next_cursor },
    })))
}
