//! `GET /events?after=<sequence>&limit=<n>[&orderId=<id>]`: the event log, in global `sequence` order, for replays
//! (and, with `orderId`, one order's events, for the read model's checks against the log).
//!
//! Each event is the same envelope the relay publishes. Read-only, and guarded by the admin token (in `AUTH_MODE=jwt`,
//! by the `events:read` scope). A page holds the
//! events committed when it is read; one that commits later with a lower sequence is not in the feed's later pages,
//! but the relay publishes it, so a replay that listens to the broker while it reads (as the rebuild does) sees it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_runtime::admin;
use service_runtime::auth::Caller;
use service_runtime::extract::{BadInput, Params};
use shared_events::{FeedMetadata, FeedPage};
use utoipa::IntoParams;

use super::schemas::{BadRequest, Forbidden, NotFound, Unauthorized, Unavailable};
use super::{ApiError, AppState};
use crate::store;

pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 5_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(feed))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedParams {
    /// Events after this sequence (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Most events in the page (default 500).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 5000)]
    limit: Option<String>,
    /// Only this order's events.
    #[param(value_type = Option<uuid::Uuid>)]
    #[serde(rename = "orderId")]
    order_id: Option<String>,
}

/// The event log in `sequence` order, for replays, or one order's events (admin token; `events:read` with
/// `AUTH_MODE=jwt`).
#[utoipa::path(get, path = "/events", tag = "events", params(FeedParams), security(("admin" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = FeedPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 503, response = Unavailable)))]
pub(super) async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Params<FeedParams>, BadInput>,
) -> Result<Json<FeedPage>, ApiError> {
    admin::access(&state.auth, &state.admin, &caller, &headers, Caller::may_read_events)?;
    let Params(params) = params?;
    let integer = |name, raw: &Option<String>, range| {
        service_runtime::params::integer_in(name, raw.as_deref(), range).map_err(ApiError::BadRequest)
    };
    let after = integer("after", &params.after, 0..=i64::MAX)?.unwrap_or(0);
    let limit = integer("limit", &params.limit, 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let order = match params.order_id.as_deref() {
        None => None,
        Some(raw) => {
            Some(uuid::Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("orderId must be a UUID".to_owned()))?)
        }
    };
    let head = store::head(&state.pool).await?;
    let rows = match order {
        None => store::events_after(&state.pool, after, limit).await?,
        Some(order) => store::order_events_after(&state.pool, order, after, limit).await?,
    };
    let next_after = rows.last().map_or(after, |row| row.sequence);
    let events = rows.into_iter().map(store::OutboxRow::into_envelope).collect();
    Ok(Json(FeedPage { events, metadata: FeedMetadata { next_after, head } }))
}
