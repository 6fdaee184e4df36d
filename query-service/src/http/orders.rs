//! `GET /queries/orders/{id}?minVersion=N&waitMs=T`: one order's view, waiting server-side for a version.
//!
//! Another customer's order is hidden from a customer token: the read answers as for an order that does not exist
//! (404; with `minVersion`, the 202 of a version not reached, after the same wait), so no answer tells which ids
//! exist. A waiting read holds one of the caller's read slots while it waits (429 when none is free).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use serde::Deserialize;
use service_runtime::auth::Caller;
use service_runtime::extract::{OrderId, Params};
use utoipa::IntoParams;

use super::params::{parse_min, parse_wait};
use super::responses::{BadRequest, NotFound, TooManyRequests, Unauthenticated, Unavailable, ViewProcessing, ViewRead};
use super::{ApiError, AppState};
use crate::store::StoredView;

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/orders/{id}", get(get_order))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ReadParams {
    /// Wait until the view is at least at this version (the `sequenceId` a command answered).
    #[param(value_type = Option<i64>, minimum = 0)]
    min_version: Option<String>,
    /// How long to wait for `minVersion`, in ms (default 2000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 30000)]
    wait_ms: Option<String>,
}

/// One order's view; with `minVersion`, waits (server-side, up to `waitMs`) until the view has caught up.
#[utoipa::path(get, path = "/queries/orders/{id}", tag = "queries",
    params(("id" = Uuid, Path, description = "The order id"), ReadParams),
    responses(
        (status = 200, description = "The view, at `minVersion` or later", body = ViewRead),
        (status = 202, description = "Not at `minVersion` within `waitMs`; retry after `Retry-After`",
            body = ViewProcessing, headers(("Retry-After" = i64))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all, fields(order_id))]
pub(super) async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    // The query string is read before the id, as it always was.
    Params(params): Params<ReadParams>,
    OrderId(id): OrderId,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let min_version = parse_min("minVersion", params.min_version.as_deref())?;
    let wait = parse_wait(params.wait_ms.as_deref())?;

    // Every view is at version 0 or later: `minVersion=0` asks for nothing to wait for, so it reads as without it
    // (an unknown order is 404, not a wait for a view that may never come).
    let Some(min_version) = min_version.filter(|&version| version > 0) else {
        return match state.reader.get(id).await.map_err(ApiError::Unavailable)? {
            Some(view) if caller.may_read(&view.customer_id) => Ok(ready(&view)),
            _ => Err(ApiError::NotFound(format!("No order {id} in the read model."))),
        };
    };

    let _slot = state.slots.take(caller.client()).map_err(ApiError::busy)?;
    // Hidden: waited for as an order that does not exist, the same reads and the whole wait (see `for_version`).
    let visible = |view: &StoredView| caller.may_read(&view.customer_id);
    let (view, waited) =
        state.waiting().for_version(id, min_version, wait, visible).await.map_err(ApiError::Unavailable)?;
    if let Some(waited) = waited {
        state.metrics.waited(waited.reached, waited.took);
    }
    Ok(match view {
        Some(view) if view.version >= min_version => ready(&view),
        view => processing(view.as_deref(), min_version),
    })
}

fn ready(view: &StoredView) -> Response {
    (StatusCode::OK, Json(ViewRead::of(view))).into_response()
}

fn processing(view: Option<&StoredView>, min_version: i64) -> Response {
    (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")], Json(ViewProcessing::of(view, min_version))).into_response()
}
