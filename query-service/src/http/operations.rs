//! For operators: `GET /health/live`, `GET /health/ready` (MongoDB and RabbitMQ reachable, projector consuming; 503
//! naming what is down), `GET /metrics` (Prometheus text format) and `GET /queries/_status` (JSON for people, the
//! read model's checks against the log included).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

use service_runtime::health::{AmqpCheck, Checks, Probe};

use super::responses::{CheckStatus, ProjectorStatus, ServiceStatus, Unavailable};
use super::{ApiError, AppState};

/// Longest one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks besides MongoDB.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub amqp_url: String,
    /// Set while the projector consumes; `None` when this process runs no projector.
    pub projector_consuming: Option<crate::projection::Consuming>,
}

/// The sampler of this process: its rate and what it found.
#[derive(Debug, Clone, Default)]
pub struct Sampling {
    /// Orders checked per second (0: off).
    pub rate: f64,
    pub findings: crate::verify::sampler::Findings,
}

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/queries/_status", get(status))
        .merge(service_runtime::health::router(probe(state)))
}

/// Readiness: MongoDB and RabbitMQ reachable, the projector consuming.
fn probe(state: &AppState) -> Probe {
    let (views, readiness) = (state.views.clone(), state.readiness.clone());
    let amqp = Arc::new(AmqpCheck::new(&readiness.amqp_url));
    Arc::new(move || {
        let (views, readiness, amqp) = (views.clone(), readiness.clone(), amqp.clone());
        Box::pin(async move {
            let mongodb = async { tokio::time::timeout(CHECK_TIMEOUT, views.ping()).await.is_ok_and(|r| r.is_ok()) };
            let rabbitmq = amqp.reachable(CHECK_TIMEOUT);
            let (mongodb, rabbitmq) = tokio::join!(mongodb, rabbitmq);
            let mut hard = vec![("mongodb", mongodb), ("rabbitmq", rabbitmq)];
            if let Some(consuming) = &readiness.projector_consuming {
                hard.push(("projector", consuming.is_ready()));
            }
            Checks { hard, degraded: Vec::new() }
        })
    })
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
/// against the log found.
#[utoipa::path(get, path = "/queries/_status", tag = "operations",
    responses((status = 200, description = "Position, freshness, waiting reads, checks", body = ServiceStatus),
        (status = 503, response = Unavailable)))]
pub(super) async fn status(State(state): State<AppState>) -> Result<Json<ServiceStatus>, ApiError> {
    let position = state.position().await.map_err(ApiError::Unavailable)?;
    let pointer = state.views.generations().current().await.map_err(ApiError::Unavailable)?;
    let metrics = &state.metrics;
    let projector = state.readiness.projector_consuming.as_ref().map(|consuming| ProjectorStatus {
        consuming: consuming.is_ready(),
        partitions: consuming.partitions(),
        last_applied_sequence: metrics.last_applied_sequence.get(),
        lag_ms: (metrics.current_lag.get() * 1000.0).round(),
        queue_depth: metrics.queue_depth.get(),
        slowdown: state.slowdown.as_ref().map(|slowdown| super::admin::slowdown_state(slowdown.current())),
    });
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
        checks,
    }))
}
