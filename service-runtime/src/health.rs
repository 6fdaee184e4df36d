//! The health endpoints of both services: `GET /health/live` (the process serves HTTP) and `GET /health/ready`,
//! where each service's [`Probe`] checks what it depends on and the answer is 200, or 503 and a JSON body naming
//! what is down: `{"status": "unavailable", "down": ["rabbitmq"], "checks": {"postgres": "up", …}}`.
//!
//! Readiness stays cheap under a flood: one probe runs at a time, and its result answers every request of the next
//! second ([`FRESH`]); the broker is checked over one kept connection ([`AmqpCheck`]), not a new one per request.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a probe's result answers readiness requests.
pub const FRESH: Duration = Duration::from_secs(1);

/// What a readiness probe found.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Checks the service cannot serve without: (name, up).
    pub hard: Vec<(&'static str, bool)>,
    /// Checks that degrade the service without taking it out of service: (name, the reason when degraded).
    pub degraded: Vec<(&'static str, Option<String>)>,
    /// Why a hard check is down, where there is more to say than its name: (name, reason).
    pub why_down: Vec<(&'static str, String)>,
}

/// A service's readiness probe: what `GET /health/ready` runs.
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Checks> + Send>> + Send + Sync>;

/// `GET /health/live` and `GET /health/ready` (running `probe`), for any service's router.
pub fn router<S: Clone + Send + Sync + 'static>(probe: Probe) -> Router<S> {
    let probe = Cached { probe, last: Recent::default() };
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).with_state(probe)
}

/// A value worked out at most once a [`FRESH`] interval, one working-out at a time: whoever asks meanwhile waits for
/// it and takes its result. What keeps readiness (and the command side's backlog gauges) cheap under a flood.
pub struct Recent<T>(Arc<Mutex<Option<(Instant, T)>>>);

impl<T> Clone for Recent<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> std::fmt::Debug for Recent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").finish_non_exhaustive()
    }
}

impl<T: Clone> Recent<T> {
    /// The value worked out within [`FRESH`], or `work`'s, kept for the next.
    pub async fn get(&self, work: impl Future<Output = T>) -> T {
        let mut last = self.0.lock().await;
        if let Some((at, value)) = &*last {
            if at.elapsed() < FRESH {
                return value.clone();
            }
        }
        let value = work.await;
        *last = Some((Instant::now(), value.clone()));
        value
    }
}

/// The service's probe and its [`Recent`] result.
#[derive(Clone)]
pub struct Cached {
    probe: Probe,
    last: Recent<Checks>,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

/// The answer of `GET /health/live`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `up`.
    pub status: &'static str,
}

/// The answer of `GET /health/ready`.
#[derive(Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (200) or `unavailable` (503).
    pub status: &'static str,
    /// On a 503: the hard checks that are down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<Vec<&'static str>>,
    /// Every check by name: `up` or `down`.
    pub checks: BTreeMap<&'static str, &'static str>,
    /// The checks that degrade the service without taking it out of service, while they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Vec<&'static str>>,
    /// Why each degraded check is degraded (and a hard check that is down, where there is more to say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<BTreeMap<&'static str, String>>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Up", body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "up" })
}

/// Readiness: what the service depends on is reachable; `degraded` (still 200) names what works only in part.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready, or degraded with the reasons", body = Readiness),
        (status = 503, description = "Not ready: names what is down", body = Readiness)))]
pub async fn ready(State(probe): State<Cached>) -> Response {
    let checks = probe.last.get((probe.probe)()).await;
    answer_with(&checks.hard, &checks.degraded, &checks.why_down)
}

/// Whether RabbitMQ is reachable, over one connection kept for the purpose: it is opened on the first check and
/// again after it is lost, so a flood of readiness requests opens no connection per request.
#[derive(Debug)]
pub struct AmqpCheck {
    url: String,
    connection: Mutex<Option<lapin::Connection>>,
}

impl AmqpCheck {
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned(), connection: Mutex::new(None) }
    }

    /// Whether the kept connection is open, or a new one can be opened within `timeout`.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        let mut connection = self.connection.lock().await;
        if connection.as_ref().is_some_and(|c| c.status().connected()) {
            return true;
        }
        let properties = lapin::ConnectionProperties::default().with_connection_name("readiness".into());
        match tokio::time::timeout(timeout, crate::amqp::connect(&self.url, properties)).await {
            Ok(Ok(opened)) => {
                *connection = Some(opened);
                true
            }
            _ => {
                *connection = None;
                false
            }
        }
    }
}

/// The readiness answer for named checks (`true` = up) and for checks that degrade the service without taking it
/// out of service (a reason = degraded): those show as `"down"` among the checks, are listed in `degraded` with
/// their reason in `reasons`, and leave the status 200 (`"status": "degraded"`) unless a hard check is down.
#[cfg(test)]
fn answer(checks: &[(&'static str, bool)], degraded: &[(&'static str, Option<String>)]) -> Response {
    answer_with(checks, degraded, &[])
}

fn answer_with(
    checks: &[(&'static str, bool)],
    degraded: &[(&'static str, Option<String>)],
    why_down: &[(&'static str, String)],
) -> Response {
    let mut readiness = readiness(checks, degraded);
    for (name, why) in why_down {
        if readiness.down.as_ref().is_some_and(|down| down.contains(name)) {
            readiness.reasons.get_or_insert_with(BTreeMap::new).insert(name, why.clone());
        }
    }
    let status = if readiness.down.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

fn readiness(checks: &[(&'static str, bool)], degraded: &[(&'static str, Option<String>)]) -> Readiness {
    let state = |up: bool| if up { "up" } else { "down" };
    let down: Vec<&'static str> = checks.iter().filter(|(_, up)| !up).map(|(name, _)| *name).collect();
    let mut states: BTreeMap<&'static str, &'static str> =
        checks.iter().map(|(name, up)| (*name, state(*up))).collect();
    let mut reasons = BTreeMap::new();
    for (name, reason) in degraded {
        states.insert(name, state(reason.is_none()));
        if let Some(reason) = reason {
            reasons.insert(*name, reason.clone());
        }
    }
    let status = match (down.is_empty(), reasons.is_empty()) {
        (false, _) => "unavailable",
        (true, true) => "ready",
        (true, false) => "degraded",
    };
    Readiness {
        status,
        down: (!down.is_empty()).then_some(down),
        checks: states,
        degraded: (!reasons.is_empty()).then(|| reasons.keys().copied().collect()),
        reasons: (!reasons.is_empty()).then_some(reasons),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recent_value_is_worked_out_once_a_second() {
        let recent = Recent::default();
        let runs = std::sync::atomic::AtomicU32::new(0);
        let work = || async { runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 };
        assert_eq!(recent.get(work()).await, 1);
        assert_eq!(recent.get(work()).await, 1, "within the second: the kept value, no work");
        tokio::time::sleep(FRESH).await;
        assert_eq!(recent.get(work()).await, 2, "after it: worked out again");
    }

    #[test]
    fn readiness_names_what_is_down() {
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", true)], &[]).status(), StatusCode::OK);
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", false)], &[]).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_degraded_check_keeps_the_service_ready_and_says_why() {
        let degraded = [("routing", Some("no queue".to_owned()))];
        assert_eq!(answer(&[("postgres", true)], &degraded).status(), StatusCode::OK);
        assert_eq!(answer(&[("postgres", false)], &degraded).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer(&[("postgres", true)], &[("routing", None)]).status(), StatusCode::OK);
    }

    #[test]
    fn the_answer_names_every_check_and_only_lists_what_is_down_or_degraded() {
        let ready = readiness(&[("postgres", true)], &[("routing", None)]);
        let json = serde_json::to_value(&ready).expect("serialises");
        assert_eq!(json, serde_json::json!({"status": "ready", "checks": {"postgres": "up", "routing": "up"}}));
        let down = readiness(&[("postgres", false), ("rabbitmq", true)], &[("routing", Some("no queue".to_owned()))]);
        let json = serde_json::to_value(&down).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"status": "unavailable", "down": ["postgres"],
                "checks": {"postgres": "down", "rabbitmq": "up", "routing": "down"},
                "degraded": ["routing"], "reasons": {"routing": "no queue"}})
        );
    }
}
