//! Admin endpoints of the read model (bearer `ADMIN_TOKEN`, 404 when none is configured; with `AUTH_MODE=jwt` a token
//! with the `orders:admin` scope):
//! - `GET /admin/read-models/{projection}`: generations, which is active, rebuild progress (replayed / total,
//!   rate, ETA) and the position;
//! - `POST /admin/read-models/{projection}/rebuild`: starts a blue-green rebuild, 202 (409 while one runs);
//! - `POST /admin/read-models/{projection}/rollback`: makes the previous generation active again, caught up from
//!   the log first, as a job: 202 with the status's `Location` (409 if there is none, one runs already, or it does
//!   not hold the whole log);
//!
//! `{projection}` is a read model's name: `orders` (the order views), `customer-summary`, `daily-sales`; another is
//! 404.
//! - `GET|POST /admin/projector/slowdown?delayMs=N`: the projector's demo slowdown, read or set (409 on a replica
//!   that runs no projector).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use service_runtime::admin;
use service_runtime::auth::Caller;
use service_runtime::extract::{BadInput, Params, Segment};
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use super::params::parse_number;
use super::responses::{
    rfc3339, BadRequest, BuildProgress, Conflict, Forbidden, GenerationSize, NotFound, ReadModelStatus, RebuildStarted,
    SlowdownState, Unauthorized, Unavailable,
};
use super::{ApiError, AppState};
use crate::projection::{Slowdown, SlowdownSetting, MAX_SLOWDOWN};
use crate::rebuild::RebuildError;
use crate::store::generations::{Pointer, PointerError};

/// Where a read model's status is served.
fn status_path(projection: &str) -> String {
    format!("/admin/read-models/{projection}")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/read-models/{projection}", get(status))
        .route("/admin/read-models/{projection}/rebuild", post(rebuild))
        .route("/admin/read-models/{projection}/rollback", post(rollback))
        .route(SLOWDOWN_PATH, get(slowdown).post(slow_down))
}

const SLOWDOWN_PATH: &str = "/admin/projector/slowdown";

fn authorize(state: &AppState, caller: &Caller, headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(admin::access(&state.auth, &state.admin, caller, headers, Caller::may_administer)?)
}

impl From<PointerError> for ApiError {
    fn from(err: PointerError) -> Self {
        match err {
            PointerError::Store(err) => Self::Unavailable(err),
            conflict => Self::Conflict(conflict.to_string()),
        }
    }
}

/// A read model's generations, the rebuild in progress and the position (admin token).
#[utoipa::path(get, path = "/admin/read-models/{projection}", tag = "admin", operation_id = "read_model_status",
    security(("admin" = []), ("bearer" = [])),
    params(("projection" = String, Path, description = "`orders`, `customer-summary` or `daily-sales`")),
    responses((status = 200, description = "Generations and progress", body = ReadModelStatus),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 503, response = Unavailable)))]
pub(super) async fn status(
    State(state): State<AppState>,
    projection: Result<Segment, BadInput>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<ReadModelStatus>, ApiError> {
    authorize(&state, &caller, &headers)?;
    let Segment(projection) = projection?;
    let views = state.rebuilder(&projection)?.views();
    let pointer = views.generations().load().await.map_err(ApiError::Unavailable)?;
    let position = state.position_of(views).await.map_err(ApiError::Unavailable)?;
    let mut generations = Vec::new();
    for (name, role) in roles(&pointer) {
        let count = views.count(&name).await.map_err(ApiError::Unavailable)?;
        generations.push(GenerationSize { name, role, views: count });
    }
    let building = pointer.building.as_ref().map(|build| {
        let elapsed_ms =
            (mongodb::bson::DateTime::now().timestamp_millis() - build.started_at.timestamp_millis()).max(1);
        let rate = build.replayed as f64 * 1000.0 / elapsed_ms as f64;
        let left = (build.total - build.replayed).max(0);
        BuildProgress {
            name: build.name.clone(),
            replayed: build.replayed,
            total: build.total,
            events_per_second: (rate * 10.0).round() / 10.0,
            eta_seconds: (rate > 0.0).then(|| (left as f64 / rate).ceil()),
            lag_events: left,
            started_at: build.started_at.try_to_rfc3339_string().ok(),
            heartbeat_at: build.heartbeat_at.try_to_rfc3339_string().ok(),
        }
    });
    Ok(Json(ReadModelStatus {
        complete: views.generations().active_complete(&pointer),
        switched_at: pointer.switched_at.map(rfc3339),
        active: pointer.active,
        previous: pointer.previous,
        rejoining: pointer.rejoining,
        building,
        generations,
        position,
    }))
}

fn roles(pointer: &Pointer) -> Vec<(String, &'static str)> {
    let mut roles = vec![(pointer.active.clone(), "active")];
    roles.extend(pointer.previous.iter().map(|name| (name.clone(), "previous")));
    roles.extend(pointer.building.iter().map(|build| (build.name.clone(), "building")));
    if let Some(rejoining) = &pointer.rejoining {
        // A kept generation a rollback catches up: listed among the previous ones until it is active.
        if let Some(role) = roles.iter_mut().find(|(name, _)| name == rejoining) {
            role.1 = "rejoining";
        }
    }
    roles
}

/// Rebuild a read model into a new generation from the event log, then switch reads to it (admin token).
#[utoipa::path(post, path = "/admin/read-models/{projection}/rebuild", tag = "admin", security(("admin" = []), ("bearer" = [])),
    params(("projection" = String, Path, description = "`orders`, `customer-summary` or `daily-sales`")),
    responses((status = 202, description = "Started; progress at `Location`", body = RebuildStarted,
            headers(("Location" = String))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 503, response = Unavailable)))]
pub(super) async fn rebuild(
    State(state): State<AppState>,
    projection: Result<Segment, BadInput>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &caller, &headers)?;
    let Segment(projection) = projection?;
    let generation = state.rebuilder(&projection)?.start().await.map_err(rebuild_refusal)?;
    let progress = status_path(&projection);
    let body = RebuildStarted { generation, status: "building", progress: progress.clone() };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, progress)], Json(body)).into_response())
}

/// Make a read model's previous generation active again, caught up from the log first: a job (admin token).
#[utoipa::path(post, path = "/admin/read-models/{projection}/rollback", tag = "admin", security(("admin" = []), ("bearer" = [])),
    params(("projection" = String, Path, description = "`orders`, `customer-summary` or `daily-sales`")),
    responses((status = 202, description = "Started: the generation is caught up, then made active; progress at \
            `Location` (`rejoining` until it is active)", body = RebuildStarted, headers(("Location" = String))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 503, response = Unavailable)))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    projection: Result<Segment, BadInput>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &caller, &headers)?;
    let Segment(projection) = projection?;
    let generation = state.rebuilder(&projection)?.start_rollback().await.map_err(rebuild_refusal)?;
    tracing::info!(projection, generation, "rolling back: catching the previous generation up from the log");
    let progress = status_path(&projection);
    let body = RebuildStarted { generation, status: "rolling back", progress: progress.clone() };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, progress)], Json(body)).into_response())
}

/// What a rebuild or rollback that could not start or finish answers.
fn rebuild_refusal(err: RebuildError) -> ApiError {
    match err {
        RebuildError::Pointer(err) => err.into(),
        RebuildError::Store(err) => ApiError::Unavailable(err),
        RebuildError::Feed(err) => ApiError::FeedUnavailable(err.into()),
        RebuildError::Cancelled => ApiError::Conflict("the service is shutting down".to_owned()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct SlowdownParams {
    /// Delay before each batch the projector applies, in ms; 0 switches the slowdown off.
    #[param(value_type = i64, required = true, minimum = 0, maximum = 10000)]
    delay_ms: Option<String>,
}

/// The projector's slowdown of this replica (admin token).
#[utoipa::path(get, path = "/admin/projector/slowdown", tag = "admin", security(("admin" = []), ("bearer" = [])),
    responses((status = 200, description = "The slowdown in force (`delayMs` 0 when none)", body = SlowdownState),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict)))]
pub(super) async fn slowdown(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<SlowdownState>, ApiError> {
    authorize(&state, &caller, &headers)?;
    Ok(Json(slowdown_state(projector_slowdown(&state)?.current())))
}

/// Delays every batch the projector applies, for ten minutes at most, to watch reads wait for the read model: a
/// demo, not a production control (admin token).
#[utoipa::path(post, path = "/admin/projector/slowdown", tag = "admin", security(("admin" = []), ("bearer" = [])),
    params(SlowdownParams),
    responses((status = 200, description = "The slowdown now in force", body = SlowdownState),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub(super) async fn slow_down(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Params<SlowdownParams>, BadInput>,
) -> Result<Json<SlowdownState>, ApiError> {
    authorize(&state, &caller, &headers)?;
    let Params(params) = params?;
    let max = MAX_SLOWDOWN.as_millis() as u64;
    let delay_ms = parse_number("delayMs", params.delay_ms.as_deref(), max)?
        .ok_or_else(|| ApiError::BadRequest(format!("delayMs is required: an integer from 0 to {max}")))?;
    let setting = projector_slowdown(&state)?.set(std::time::Duration::from_millis(delay_ms));
    tracing::info!(delay_ms, "projector slowdown set");
    Ok(Json(slowdown_state(setting)))
}

fn projector_slowdown(state: &AppState) -> Result<&Slowdown, ApiError> {
    state.slowdown.as_ref().ok_or_else(|| ApiError::Conflict("this replica runs no projector".to_owned()))
}

/// The slowdown in force (`delayMs` 0 when none).
pub(super) fn slowdown_state(setting: Option<SlowdownSetting>) -> SlowdownState {
    SlowdownState {
        delay_ms: setting.map_or(0, |s| s.delay.as_millis() as u64),
        ends_at: setting.and_then(|s| s.ends_at.format(&Rfc3339).ok()),
    }
}
