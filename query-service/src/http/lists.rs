//! `GET /queries/orders?customerId=&status=&limit=&cursor=&minPosition=&waitMs=`: views newest first, in stable
//! pages. With `minPosition` (the `position` a command returned) the read first waits, server-side, until every
//! event up to that position has been handled, so the list shows the client's own writes; 202 when `waitMs` runs
//! out first, as for single reads. An event up to that position that was dead-lettered is named in
//! `metadata.missingPositions` (empty when the list is complete): the read never claims completeness silently.
//!
//! A customer token lists its own customer's orders only (the filter is forced; asking for another's is 403).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_runtime::auth::Caller;
use service_runtime::extract::Params;
use shared_events::OrderStatus;
use utoipa::IntoParams;

use super::params::{parse_min, parse_wait};
use super::positioned::AtPosition;
use super::responses::{
    order_view, BadRequest, Forbidden, ListMetadata, ListPage, TooManyRequests, Unauthenticated, Unavailable,
};
use super::{ApiError, AppState};
use crate::store::{ListCursor, ListFilter};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/orders", get(list_orders))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Only this customer's orders (a customer token: its own, whether it says so or not).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    customer_id: Option<String>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Views per page (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
    /// Wait until every event up to this position (the `position` a command answered) is applied.
    #[param(value_type = Option<i64>, minimum = 0)]
    min_position: Option<String>,
    /// How long to wait for `minPosition`, in ms (default 2000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 30000)]
    wait_ms: Option<String>,
}

/// Views newest first, in stable pages; with `minPosition`, waits until the list includes the client's writes.
#[utoipa::path(get, path = "/queries/orders", tag = "queries", params(ListParams),
    responses(
        (status = 200, description = "A page", body = ListPage),
        (status = 202, description = "The read model is not at `minPosition` within `waitMs`", body = ListPage,
            headers(("Retry-After" = i64))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<ListParams>,
) -> Result<Response, ApiError> {
    let limit = service_runtime::params::integer_in("limit", params.limit.as_deref(), 1..=MAX_LIMIT)
        .map_err(ApiError::BadRequest)?
        .unwrap_or(DEFAULT_LIMIT);
    if let Some(status) = params.status.as_deref().filter(|s| OrderStatus::parse(s).is_none()) {
        return Err(ApiError::BadRequest(format!(
            "status {status:?} is not one of Placed, Confirmed, Shipped, Cancelled"
        )));
    }
    if let Some(customer_id) = &params.customer_id {
        shared_events::identifier::check(customer_id)
            .map_err(|why| ApiError::BadRequest(format!("customerId {why}")))?;
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
    // A customer lists its own orders, whatever it asked for; staff list whose they ask for.
    let customer_id = caller.list_filter(params.customer_id.as_deref())?;
    let at = AtPosition::wait(&state, &state.views, &caller, customer_id.as_deref(), min_position, wait).await?;

    let filter = ListFilter { customer_id, status: params.status };
    let views =
        state.views.list(&filter, cursor.as_ref(), limit, at.read_from()).await.map_err(ApiError::Unavailable)?;
    let next_cursor =
        (views.len() as i64 == limit).then(|| views.last().map(|v| ListCursor::after(v).encode())).flatten();
    let data = views.iter().map(order_view).collect();
    let behind = at.behind();
    let page = ListPage { data, metadata: ListMetadata::new(next_cursor, at.metadata()) };
    Ok(if behind {
        (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")], Json(page)).into_response()
    } else {
        Json(page).into_response()
    })
}
