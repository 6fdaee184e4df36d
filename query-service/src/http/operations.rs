//! For operators: `GET /health/live`, `GET /health/ready` (MongoDB and RabbitMQ reachable, the order views'
//! projection consuming, every background task running; 503 naming what is down; `degraded` naming another
//! projection that does not consume, a read model being built, a stalled stage) and `GET /metrics` (Prometheus text
//! format), public; and `GET /queries/_status` (JSON for people, the read model's checks against the log included),
//! behind authentication.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

use service_runtime::auth::Caller;
use service_runtime::health::{AmqpCheck, Checks, Probe};

use super::responses::{CheckStatus, Forbidden, ProjectorStatus, ServiceStatus, Unauthorized, Unavailable};
use super::{ApiError, AppState};
use crate::store::models::ORDER_VIEWS;

/// Longest one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks besides MongoDB.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub amqp_url: String,
    /// The consumer of each projection this process runs (`PROJECTIONS`), by name; empty when it runs no projector.
    pub consuming: Vec<(&'static str, crate::projection::Consuming)>,
    /// The supervised background tasks: one gone fails readiness.
    pub tasks: service_runtime::supervisor::TaskHealth,
    /// The stages that move events (each partition of each projection): one stalled degrades readiness.
    pub watchdog: service_runtime::watchdog::Watchdog,
}

impl Readiness {
    /// The order views' consumer, when this process projects them.
    fn order_views(&self) -> Option<&crate::projection::Consuming> {
        self.consuming.iter().find(|(name, _)| *name == ORDER_VIEWS.name).map(|(_, consuming)| consuming)
    }
}

/// The sampler of this process: its rate and what it found.
#[derive(Debug, Clone, Default)]
pub struct Sampling {
    /// Orders checked per second (0: off).
    pub rate: f64,
    pub findings: crate::verify::sampler::Findings,
}

/// Health and metrics: public (docs/api.md, "What needs no token").
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route("/metrics", get(metrics)).merge(service_runtime::health::router(probe(state)))
}

/// The status page: behind authentication (in `jwt` mode it names other customers' order ids).
pub fn status_router() -> Router<AppState> {
    Router::new().route("/queries/_status", get(status))
}

/// Readiness: MongoDB and RabbitMQ reachable, the order views' projection consuming (the reads this replica serves
/// wait on it); another projection that does not consume degrades it, naming the projection.
fn probe(state: &AppState) -> Probe {
    let (views, readiness) = (state.views.clone(), state.readiness.clone());
    let read_models: Vec<crate::store::ReadModelStore> = state.rebuilders.iter().map(|r| r.views().clone()).collect();
    let amqp = Arc::new(AmqpCheck::new(&readiness.amqp_url));
    Arc::new(move || {
        let (views, readiness, amqp, read_models) =
            (views.clone(), readiness.clone(), amqp.clone(), read_models.clone());
        Box::pin(async move {
            let mongodb = async { tokio::time::timeout(CHECK_TIMEOUT, views.ping()).await.is_ok_and(|r| r.is_ok()) };
            let rabbitmq = amqp.reachable(CHECK_TIMEOUT);
            let (mongodb, rabbitmq) = tokio::join!(mongodb, rabbitmq);
            let mut hard = vec![("mongodb", mongodb), ("rabbitmq", rabbitmq)];
            if let Some(consuming) = readiness.order_views() {
                hard.push(("projector", consuming.is_ready()));
            }
            let failure = readiness.tasks.failure();
            hard.push(("tasks", failure.is_none()));
            let degraded = readiness
                .consuming
                .iter()
                .filter(|(name, _)| *name != ORDER_VIEWS.name)
                .map(|(name, consuming)| {
                    (*name, (!consuming.is_ready()).then(|| format!("projection {name} not consuming")))
                })
                .collect::<Vec<_>>();
            let mut degraded = degraded;
            degraded.push(("building", building(&read_models).await));
            degraded.push(("stalled", readiness.watchdog.reason()));
            Checks { hard, degraded, why_down: failure.map(|why| ("tasks", why)).into_iter().collect() }
        })
    })
}

/// Why readiness is degraded while a read model does not hold the log from its start (it vouches for no position
/// and is being built, or cannot be: decision 0019), or has a position but no record of whether it does (its
/// pointer lost: the next checkpoint settles it); `None` when every one does, or has handled no checkpoint yet.
async fn building(read_models: &[crate::store::ReadModelStore]) -> Option<String> {
    let mut reasons = Vec::new();
    for views in read_models {
        let Ok(pointer) = views.generations().current().await else { continue };
        if views.generations().active_complete(&pointer) {
            continue;
        }
        let name = views.model().name;
        if pointer.first_complete.is_none() {
            if views.position().await.is_ok_and(|position| position > 0) {
                reasons.push(format!(
                    "{name} has a position but no record of whether it holds the log from its start (its pointer \
                     was lost?); the next checkpoint it handles settles it"
                ));
            }
            continue;
        }
        reasons.push(match &pointer.building {
            Some(build) => {
                format!("{name} is being built from the event log ({} of {} events)", build.replayed, build.total)
            }
            None => format!(
                "{name} does not hold the log from its start and no rebuild runs (it needs the event feed: \
                 EVENT_FEED_URL with EVENT_FEED_TOKEN or ADMIN_TOKEN)"
            ),
        });
    }
    (!reasons.is_empty()).then(|| format!("{}; reads at a position answer 202 until then", reasons.join("; ")))
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String,
        content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.waiting_reads.set(state.waiters.waiting_reads() as i64);
    service_runtime::metrics::render(&state.metrics.registry)
}

/// Where the read model stands, for people: what was applied last, how fresh it is, what waits, what its checks
/// against the log found (which name an order of any customer). In `jwt` mode it needs the `orders:admin` scope; in
/// `none` mode every caller may read every order, and this too.
#[utoipa::path(get, path = "/queries/_status", tag = "operations", security((), ("bearer" = [])),
    responses((status = 200, description = "Position, freshness, waiting reads, checks", body = ServiceStatus),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 503, response = Unavailable)))]
pub(super) async fn status(State(state): State<AppState>, caller: Caller) -> Result<Json<ServiceStatus>, ApiError> {
    if !(caller.trusted || caller.may_administer()) {
        return Err(ApiError::Forbidden("The status page needs the orders:admin scope.".to_owned()));
    }
    let position = state.position().await.map_err(ApiError::Unavailable)?;
    let pointer = state.views.generations().current().await.map_err(ApiError::Unavailable)?;
    let metrics = &state.metrics;
    let projector_status = |name: &'static str, consuming: &crate::projection::Consuming| {
        let projector = metrics.projector(name);
        ProjectorStatus {
            projection: name,
            consuming: consuming.is_ready(),
            partitions: consuming.partitions(),
            last_applied_sequence: projector.last_applied_sequence.get(),
            lag_ms: (projector.current_lag.get() * 1000.0).round(),
            queue_depth: projector.queue_depth.get(),
            position: state.boards.named(name).map_or(0, |board| board.position()),
            slowdown: state.slowdown.as_ref().map(|slowdown| super::admin::slowdown_state(slowdown.current())),
        }
    };
    let projections: Vec<ProjectorStatus> =
        state.readiness.consuming.iter().map(|(name, consuming)| projector_status(name, consuming)).collect();
    let projector = projections.iter().find(|p| p.projection == ORDER_VIEWS.name).cloned();
    let divergent = crate::metrics::DIVERGENCE_KINDS
        .iter()
        .map(|kind| (*kind, metrics.read_model_divergent.with_label_values(&[kind]).get()))
        .collect();
    let checks = CheckStatus {
        rate_per_second: state.sampling.rate,
        checked: metrics.read_model_checked.get(),
        divergent,
        last_finding: state.sampling.findings.last(),
    };
    Ok(Json(ServiceStatus {
        position,
        active_generation: pointer.active,
        building: pointer.building.map(|b| b.name),
        waiting_reads: state.waiters.waiting_reads(),
        projector,
        projections,
        checks,
    }))
}
