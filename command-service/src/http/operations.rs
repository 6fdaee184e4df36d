//! For operators: `GET /health/live`, `GET /health/ready` (Postgres and RabbitMQ reachable, relay running; 503
//! naming what is down; `degraded` with the reason while events are routed to no queue) and `GET /metrics`
//! (Prometheus text format).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::relay::RelayStatus;

/// Longest one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks besides the pool.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub amqp_url: String,
    /// The relay of this process; `None` when it runs none.
    pub relay: Option<Arc<RelayStatus>>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).route("/metrics", get(metrics))
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Up", body = Object, example = json!({"status": "up"}))))]
pub(super) async fn live() -> Json<Value> {
    Json(json!({ "status": "up" }))
}

/// Readiness: Postgres and RabbitMQ reachable, the relay running; `degraded` (still 200) while the broker routes
/// events to no queue.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready: names what is down", body = Object)))]
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let postgres = async {
        let ping = sqlx::query("select 1").execute(&state.pool);
        matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_)))
    };
    let rabbitmq = service_runtime::health::amqp_reachable(&state.readiness.amqp_url, CHECK_TIMEOUT);
    let (postgres, rabbitmq) = tokio::join!(postgres, rabbitmq);
    let mut checks = vec![("postgres", postgres), ("rabbitmq", rabbitmq)];
    let mut degraded = Vec::new();
    if let Some(relay) = &state.readiness.relay {
        checks.push(("relay", relay.is_running()));
        // Commands are still taken and kept safe in the outbox: the service stays ready, and says why events wait.
        degraded.push(("routing", relay.unroutable()));
    }
    service_runtime::health::answer_degraded(&checks, &degraded)
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String,
        content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let backlog: Result<(i64, f64), _> = sqlx::query_as(
        "select count(*), coalesce(extract(epoch from now() - min(occurred_at))::float8, 0)
         from outbox where published_at is null",
    )
    .fetch_one(&state.pool)
    .await;
    match backlog {
        Ok((rows, age)) => {
            state.metrics.outbox_backlog.set(rows);
            state.metrics.outbox_oldest_age.set(age.max(0.0));
        }
        Err(err) => tracing::warn!(error = %err, "reading the outbox backlog for the metrics failed"),
    }
    service_runtime::metrics::render(&state.metrics.registry)
}
