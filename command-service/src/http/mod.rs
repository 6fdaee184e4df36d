//! The HTTP surface of the command side: routes, shared state and the layers around them.

mod command;
mod events;
mod idempotency;
mod json;
mod lifecycle;
mod openapi;
mod operations;
mod orders;
mod problem;
mod schemas;
mod trace_context;

pub use json::{JsonBody, JsonBytes, MAX_BODY_BYTES};
pub use operations::Readiness;
pub use problem::ApiError;

use crate::metrics::CommandMetrics;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use service_runtime::admin::AdminToken;
use service_runtime::auth::{self, Auth};
use service_runtime::limits::RateLimiter;
use service_runtime::problem::{problem_for_bare_errors, Problem};
use sqlx::PgPool;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// How long a request may take, body upload included, before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Who is asking (`AUTH_MODE`).
    pub auth: Auth,
    /// The per-client limit of commands; `None`: no limit.
    pub limiter: Option<RateLimiter>,
    /// Guards the admin endpoints (the event feed).
    pub admin: AdminToken,
    pub metrics: CommandMetrics,
    pub readiness: Readiness,
}

/// The whole application, ready to be served; binding is the caller's business (tests serve it on port 0).
pub fn build_app(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    // Everything but health, metrics and the OpenAPI document needs to know who is asking.
    let authenticated = Router::new()
        .merge(orders::router())
        .merge(lifecycle::router())
        .merge(events::router())
        .route_layer(middleware::from_fn_with_state(state.auth.clone(), auth::authenticate));
    Router::new()
        .merge(authenticated)
        .merge(operations::router(&state))
        .merge(openapi::router())
        .route_layer(middleware::from_fn_with_state(http_metrics, service_runtime::metrics::track_http))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Outside the timeout, so that its 408 gets a problem body too.
        .layer(middleware::map_response(problem_for_bare_errors))
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
        ))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such resource.".to_owned())
}

async fn method_not_allowed() -> Response {
    let detail = "This method is not allowed on this resource.";
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail).into_response()
}
