//! The HTTP surface of the read side: routes, shared state and the layers around them.

mod admin;
mod customers;
mod dashboard;
mod demo;
mod lists;
mod openapi;
mod operations;
mod orders;
mod params;
mod positioned;
mod problem;
mod responses;
mod stream;

pub use demo::{DemoPage, InvalidCommandUrl};
pub use operations::{Readiness, Sampling};
pub use problem::ApiError;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::{middleware, Router};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::metrics::QueryMetrics;
use crate::projection::Slowdown;
use crate::read::{Boards, VersionWaiters, ViewReader, Waiting};
use crate::rebuild::Rebuilder;
use crate::store::ReadModelStore;
use service_runtime::admin::AdminToken;
use service_runtime::auth::{self, Auth};
use service_runtime::limits::Slots;

/// Longest a request may take; above the longest allowed `waitMs` (30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The order views.
    pub views: ReadModelStore,
    /// Reads of single views, shared between readers of the same order.
    pub reader: ViewReader,
    /// The order views' board.
    pub waiters: VersionWaiters,
    /// Every read model's board (where reads wait for its position).
    pub boards: Boards,
    /// Cancelled when the service stops: long-lived responses (event streams) end on it.
    pub shutdown: CancellationToken,
    /// Guards the admin endpoints.
    pub admin: AdminToken,
    /// One per projection, the order views' first.
    pub rebuilders: Vec<Rebuilder>,
    pub metrics: QueryMetrics,
    pub readiness: Readiness,
    /// The projector's demo slowdown; `None` when this process runs no projector.
    pub slowdown: Option<Slowdown>,
    /// The demo page at `/`; `None` when `DEMO_PAGE=false`.
    pub demo: Option<DemoPage>,
    /// The background check of the views against the log.
    pub sampling: Sampling,
    /// Who is asking (`AUTH_MODE`).
    pub auth: Auth,
    /// The view streams and waiting reads each client, and all together, may hold open.
    pub slots: Slots,
}

impl AppState {
    /// Where this replica's reads wait for a version or a position.
    pub fn waiting(&self) -> Waiting {
        Waiting { reader: self.reader.clone(), waiters: self.waiters.clone(), shutdown: self.shutdown.clone() }
    }

    /// The order views' position as this replica knows it: what the projector or a notice announced, or the
    /// stored one when that is further (a replica that started after the last notice). The stored one trails the
    /// announced one by up to a second (the projector stores it with its acks).
    pub async fn position(&self) -> Result<i64, crate::store::StoreError> {
        self.position_of(&self.views).await
    }

    /// [`AppState::position`] of any read model.
    pub async fn position_of(&self, views: &ReadModelStore) -> Result<i64, crate::store::StoreError> {
        let board = self.boards.of(views.model());
        let stored = views.position().await?;
        board.announce_position(stored);
        Ok(board.position())
    }

    /// The rebuilder of the projection called `name`.
    pub fn rebuilder(&self, name: &str) -> Result<&Rebuilder, ApiError> {
        self.rebuilders
            .iter()
            .find(|rebuilder| rebuilder.projection().name() == name)
            .ok_or_else(|| ApiError::NotFound(format!("There is no read model called {name:?}.")))
    }

    /// The read model `model`: the rebuilder's handle, so that reads follow a switch it made at once (they share
    /// its cached pointer).
    pub fn read_model(&self, model: &'static crate::store::models::ReadModel) -> ReadModelStore {
        self.rebuilders
            .iter()
            .find(|rebuilder| rebuilder.views().model() == model)
            .map_or_else(|| self.views.for_model(model), |rebuilder| rebuilder.views().clone())
    }

    /// Where reads of the read model `views` wait for a position.
    pub fn waiting_on(&self, views: &ReadModelStore) -> Waiting {
        Waiting { reader: self.reader.clone(), waiters: self.boards.of(views.model()), shutdown: self.shutdown.clone() }
    }
}

/// The whole application, ready to be served; binding is the caller's business (tests serve it on port 0).
pub fn build_app(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    // Everything but health, metrics, the OpenAPI document and the demo page's files needs to know who is asking;
    // view streams may say it with a ticket.
    let authenticated = Router::new()
        .merge(operations::status_router())
        .merge(orders::router())
        .merge(lists::router())
        .merge(customers::router())
        .merge(dashboard::router())
        .merge(stream::ticket_router())
        .merge(admin::router())
        .route_layer(middleware::from_fn_with_state(state.auth.clone(), auth::authenticate));
    let streams =
        stream::router().route_layer(middleware::from_fn_with_state(state.auth.clone(), auth::authenticate_stream));
    Router::new()
        .merge(authenticated)
        .merge(streams)
        .merge(operations::router(&state))
        .merge(openapi::router())
        .merge(demo::router())
        .route_layer(middleware::from_fn_with_state(http_metrics, service_runtime::metrics::track_http))
        .fallback(|| async { ApiError::NotFound("No such resource.".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Outside the timeout, so that its 408 gets a problem body too.
        .layer(middleware::map_response(service_runtime::problem::problem_for_bare_errors))
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
        ))
}
