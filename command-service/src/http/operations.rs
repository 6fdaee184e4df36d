//! For operators: `GET /health/live`, `GET /health/ready` (Postgres and RabbitMQ reachable, relay running; 503
//! naming what is down; `degraded` with the reason while events are routed to no queue or a replication slot
//! retains more write-ahead log than `RELAY_SLOT_WARN_MIB`) and `GET /metrics` (Prometheus text format).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use service_runtime::health::{AmqpCheck, Checks, Probe};
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::relay::RelayStatus;
use crate::store::{self, slots::Slot};

/// Longest one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks besides the pool.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub amqp_url: String,
    /// The relay of this process; `None` when it runs none.
    pub relay: Option<Arc<RelayStatus>>,
    /// Write-ahead log a replication slot of the database may retain before readiness warns.
    pub slot_warn_bytes: u64,
    /// The supervised background tasks: one gone fails readiness.
    pub tasks: service_runtime::supervisor::TaskHealth,
    /// The stages that move events (the relay): one stalled degrades readiness.
    pub watchdog: service_runtime::watchdog::Watchdog,
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
            let slots = tokio::time::timeout(CHECK_TIMEOUT, store::slots::all(&pool));
            let (postgres, rabbitmq, slots) = tokio::join!(postgres, rabbitmq, slots);
            let mut checks = Checks { hard: vec![("postgres", postgres), ("rabbitmq", rabbitmq)], ..Checks::default() };
            let failure = readiness.tasks.failure();
            checks.hard.push(("tasks", failure.is_none()));
            checks.why_down.extend(failure.map(|why| ("tasks", why)));
            if let Some(relay) = &readiness.relay {
                checks.hard.push(("relay", relay.is_running()));
                // Commands are still taken and kept safe in the outbox: the service stays ready, and says why
                // events wait.
                checks.degraded.push(("routing", relay.unroutable()));
                let stalled = readiness.watchdog.reason().map(|reason| match relay.failing() {
                    Some((_, error)) => format!("{reason}; the last relay term failed: {error}"),
                    None => reason,
                });
                checks.degraded.push(("stalled", stalled));
            }
            let slots = slots.ok().and_then(Result::ok).unwrap_or_default();
            checks.degraded.push(("replication_slot", slot_warning(&slots, readiness.slot_warn_bytes)));
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
        match store::slots::all(&state.pool).await {
            Ok(slots) => state.metrics.slots(&slots),
            Err(err) => tracing::warn!(error = %err, "reading the replication slots for the metrics failed"),
        }
        match store::progress::backlog(&state.pool).await {
            Ok((rows, age)) => {
                state.metrics.outbox_backlog.set(rows);
                state.metrics.outbox_oldest_age.set(age.max(0.0));
            }
            Err(err) => tracing::warn!(error = %err, "reading the outbox backlog for the metrics failed"),
        }
    };
    state.metrics.backlog_read.get(read).await;
}

/// Why readiness warns about the replication slots, if it does: one retains more write-ahead log than `limit`
/// bytes (a `wal` relay that stopped reading it, or a slot left behind).
fn slot_warning(slots: &[Slot], limit: u64) -> Option<String> {
    let over: Vec<String> = slots
        .iter()
        .filter(|slot| slot.retained_bytes.is_some_and(|bytes| u64::try_from(bytes).unwrap_or(0) > limit))
        .map(|slot| {
            let state = if slot.active_pid.is_some() { "being read" } else { "not read by any relay" };
            format!("{} retains {} MiB ({state})", slot.name, slot.retained_bytes.unwrap_or(0) >> 20)
        })
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "replication slot {} of write-ahead log (limit {} MiB): start a relay with RELAY_MODE=wal, or drop a \
             slot no relay will read again with `RELAY_SLOT=<slot> command-service relay drop-slot`",
            over.join(", "),
            limit >> 20
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, retained: Option<i64>, active_pid: Option<i32>) -> Slot {
        Slot { name: name.to_owned(), active_pid, retained_bytes: retained, lag_bytes: Some(0), wal_status: None }
    }

    #[test]
    fn only_a_slot_retaining_more_than_the_limit_is_warned_about() {
        let limit = 64 << 20;
        assert_eq!(slot_warning(&[], limit), None);
        assert_eq!(slot_warning(&[slot("a", Some(64 << 20), None), slot("b", None, None)], limit), None);
        let warning =
            slot_warning(&[slot("a", Some(65 << 20), None), slot("b", Some(1), Some(7))], limit).expect("a warning");
        assert!(warning.contains("a retains 65 MiB (not read by any relay)"), "{warning}");
        assert!(!warning.contains("b retains"), "{warning}");
    }
}
