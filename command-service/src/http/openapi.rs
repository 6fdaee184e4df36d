//! `GET /openapi.json`: the OpenAPI 3.1 description of this service, generated from the handlers' annotations and
//! the request and answer types. `schemathesis` checks the running service against it (scripts/fuzz).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use service_runtime::auth::AuthMode;
use service_runtime::openapi::BearerSchemes;
use service_runtime::problem::Problem;
use utoipa::openapi::{RefOr, Schema};
use utoipa::OpenApi;

use super::schemas::{
    BadRequest, Conflict, Forbidden, KeyReused, NotFound, TooLarge, TooManyRequests, Unauthenticated, Unauthorized,
    Unavailable, WrongMediaType,
};
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "command-service", description = "Order commands: each accepted command answers the version to \
        read it at (`sequenceId`, the `minVersion` of the query-service) and its position in the event log."),
    paths(
        super::orders::place_order,
        super::lifecycle::confirm,
        super::lifecycle::ship,
        super::lifecycle::cancel,
        super::events::feed,
        service_runtime::health::live,
        service_runtime::health::ready,
        super::operations::metrics,
    ),
    components(schemas(Problem), responses(
        BadRequest, NotFound, Conflict, TooLarge, WrongMediaType, KeyReused, Unavailable, Unauthorized,
        Unauthenticated, Forbidden, TooManyRequests
    )),
    modifiers(&BearerSchemes),
)]
struct CommandApi;

/// The document, built once per request (it is small and rarely read), for the service as it runs.
async fn document(State(state): State<AppState>) -> Response {
    let mut document = CommandApi::openapi();
    if state.auth.mode() == AuthMode::Jwt {
        customer_from_token(&mut document);
    }
    Json(document).into_response()
}

/// With `AUTH_MODE=jwt` a customer token places orders for its own customer: the body may leave `customerId` out.
fn customer_from_token(document: &mut utoipa::openapi::OpenApi) {
    let schemas = document.components.as_mut().map(|components| &mut components.schemas);
    if let Some(RefOr::T(Schema::Object(place))) = schemas.and_then(|schemas| schemas.get_mut("PlaceOrder")) {
        place.required.retain(|field| field != "customerId");
    }
}
