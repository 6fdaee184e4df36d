//! `GET /queries/customers/{customerId}/summary?minPosition=&waitMs=`: a customer's orders summed up — by status,
//! spent per currency (exact; cancelled orders not counted), first and last order, the newest order ids — from the
//! customer summary read model. `minPosition` waits as list reads do (202 + `processing` while behind). A customer
//! with no orders is 404 once the read is not behind (an empty summary would look like an answer about a customer
//! this service knows) — unless events up to the position are missing from the read model (`missingPositions`): one
//! of them may be the customer's, so the empty summary is answered with them named. A customer token reads its own
//! summary only (403 otherwise).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_runtime::auth::Caller;
use service_runtime::extract::{Params, Segment};
use shared_events::OrderStatus;
use utoipa::IntoParams;

use super::params::{parse_min, parse_wait};
use super::positioned::AtPosition;
use super::responses::{
    rfc3339, BadRequest, CustomerSummary, Forbidden, NotFound, SummaryRead, TooManyRequests, Unauthenticated,
    Unavailable,
};
use super::{ApiError, AppState};
use crate::store::customers::{self, Summary};
use crate::store::models::CUSTOMER_SUMMARY;

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/customers/{customer_id}/summary", get(customer_summary))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct SummaryParams {
    /// Wait until every event up to this position (the `position` a command answered) is applied.
    #[param(value_type = Option<i64>, minimum = 0)]
    min_position: Option<String>,
    /// How long to wait for `minPosition`, in ms (default 2000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 30000)]
    wait_ms: Option<String>,
}

/// A customer's orders summed up; with `minPosition`, waits until the summary includes the client's writes.
#[utoipa::path(get, path = "/queries/customers/{customerId}/summary", tag = "queries",
    params(("customerId" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$"), SummaryParams),
    responses(
        (status = 200, description = "The summary", body = SummaryRead),
        (status = 202, description = "The read model is not at `minPosition` within `waitMs`: the summary so far",
            body = SummaryRead, headers(("Retry-After" = i64))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests), (status = 503, response = Unavailable)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn customer_summary(
    State(state): State<AppState>,
    caller: Caller,
    Segment(customer_id): Segment,
    Params(params): Params<SummaryParams>,
) -> Result<Response, ApiError> {
    shared_events::identifier::check(&customer_id).map_err(|why| ApiError::BadRequest(format!("customerId {why}")))?;
    let min_position = parse_min("minPosition", params.min_position.as_deref())?;
    let wait = parse_wait(params.wait_ms.as_deref())?;
    // A customer reads its own summary only; staff read anyone's.
    caller.list_filter(Some(&customer_id))?;
    let views = state.read_model(&CUSTOMER_SUMMARY);
    let at = AtPosition::wait(&state, &views, &caller, Some(&customer_id), min_position, wait).await?;
    let contributions =
        customers::contributions(&views, &customer_id, at.read_from()).await.map_err(ApiError::Unavailable)?;
    let behind = at.behind();
    // "No orders" only when the read can vouch for it: a gap in its range may be this customer's order.
    if contributions.is_empty() && !behind && at.missing().is_empty() {
        return Err(ApiError::NotFound(format!("Customer {customer_id:?} has no orders in the read model.")));
    }
    let read = SummaryRead { data: summary_json(customer_id, Summary::of(&contributions)), metadata: at.metadata() };
    Ok(if behind {
        (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")], Json(read)).into_response()
    } else {
        Json(read).into_response()
    })
}

/// The public JSON of a summary.
fn summary_json(customer_id: String, summary: Summary) -> CustomerSummary {
    let statuses = [OrderStatus::Placed, OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Cancelled];
    CustomerSummary {
        customer_id,
        orders: summary.orders,
        by_status: statuses
            .into_iter()
            .map(|status| (status.as_str(), summary.by_status.get(status.as_str()).copied().unwrap_or(0)))
            .collect(),
        spent: summary
            .spent
            .into_iter()
            .map(|(currency, amount)| (currency, super::responses::money(amount)))
            .collect(),
        first_order_at: summary.first_order_at.map(rfc3339),
        last_order_at: summary.last_order_at.map(rfc3339),
        recent_order_ids: summary.recent_order_ids,
    }
}
