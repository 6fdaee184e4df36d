//! For operators: `GET /health/live`, `GET /health/ready` (Postgres and RabbitMQ reachable, relay running; 503
//! naming what is down; `degraded` with the reason while events are routed to no queue) and `GET /metrics`
//! (Prometheus text format).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use service_runtime::health::{AmqpCheck, Checks, Probe};
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

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route("/metrics", get(metrics)).merge(service_runtime::health::router(probe(state)))
}

/// Readiness: Postgres and RabbitMQ reachable, the relay running; `degraded` (still 200) while the broker routes
/// events to no queue.
fn probe(state: &AppState) -> Probe {
    let (pool, readiness) = (state.pool.clone(), state.readiness.clone());
    let amqp = Arc::new(AmqpCheck::new(&readiness.amqp_url));
    Arc::new(move || {
        let (pool, readiness, amqp) = (pool.clone(), readiness.clone(), amqp.clone());
        Box::pin(async move {
            let postgres = async {
                let ping = sqlx::query("select 1").execute(&pool);
                matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_)))
            };
            let rabbitmq = amqp.reachable(CHECK_TIMEOUT);
            let (postgres, rabbitmq) = tokio::join!(postgres, rabbitmq);
            let mut checks =
                Checks { hard: vec![("postgres", postgres), ("rabbitmq", rabbitmq)], degraded: Vec::new() };
            if let Some(relay) = &readiness.relay {
                checks.hard.push(("relay", relay.is_running()));
                // Commands are still taken and kept safe in the outbox: the service stays ready, and says why
                // events wait.
                checks.degraded.push(("routing", relay.unroutable()));
            }
            checks
        })
    })
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String,
        content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    read_backlog(&state).await;
    service_runtime::metrics::render(&state.metrics.registry)
}

/// Reads the outbox backlog into its gauges, unless it was read (or tried) within the last second: a flood of
/// scrapes costs Postgres one query a second, and while Postgres is down, one attempt a second.
async fn read_backlog(state: &AppState) {
    let read = async {
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
    };
    state.metrics.backlog_read.get(read).await;
}
