//! `GET /openapi.json`: the OpenAPI 3.1 description of this service, generated from the handlers' annotations and
//! the documented answer shapes below. `schemathesis` checks the running service against it (scripts/fuzz).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use service_runtime::openapi::BearerSchemes;
use service_runtime::problem::Problem;
use utoipa::OpenApi;

use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthenticated, Unauthorized, Unavailable,
};
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "query-service", description = "Read models of the orders — order views, customer summaries, a \
        daily sales dashboard — eventually consistent with the commands: a read with `minVersion` (single order) or \
        `minPosition` (lists, summaries, the dashboard) waits, server-side, until the read model has caught up."),
    paths(
        super::orders::get_order,
        super::lists::list_orders,
        super::customers::customer_summary,
        super::dashboard::daily_dashboard,
        super::stream::stream_order,
        super::stream::stream_ticket,
        super::admin::status,
        super::admin::rebuild,
        super::admin::rollback,
        super::admin::slowdown,
        super::admin::slow_down,
        service_runtime::health::live,
        service_runtime::health::ready,
        super::operations::metrics,
        super::operations::status,
    ),
    components(schemas(Problem), responses(
        BadRequest, NotFound, Conflict, Unavailable, Unauthorized, Unauthenticated, Forbidden, TooManyRequests
    )),
    modifiers(&BearerSchemes),
)]
struct QueryApi;

async fn document() -> Response {
    Json(QueryApi::openapi()).into_response()
}
