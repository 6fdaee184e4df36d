//! The health endpoints of both services: `GET /health/live` (the process serves HTTP) and `GET /health/ready`,
//! where each service's [`Probe`] checks what it depends on and the answer is 200, or 503 and a JSON body naming
//! what is down: `{"status": "unavailable", "down": ["rabbitmq"], "checks": {"postgres": "up", …}}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a readiness probe found.
#[derive(Debug, Default)]
pub struct Checks {
    /// Checks the service cannot serve without: (name, up).
    pub hard: Vec<(&'static str, bool)>,
    /// Checks that degrade the service without taking it out of service: (name, the reason when degraded).
    pub degraded: Vec<(&'static str, Option<String>)>,
}

/// A service's readiness probe: what `GET /health/ready` runs.
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Checks> + Send>> + Send + Sync>;

/// `GET /health/live` and `GET /health/ready` (running `probe`), for any service's router.
pub fn router<S: Clone + Send + Sync + 'static>(probe: Probe) -> Router<S> {
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).with_state(probe)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Up", body = Object, example = json!({"status": "up"}))))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "up" }))
}

/// Readiness: what the service depends on is reachable; `degraded` (still 200) names what works only in part.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready, or degraded with the reasons", body = Object),
        (status = 503, description = "Not ready: names what is down", body = Object)))]
pub async fn ready(State(probe): State<Probe>) -> Response {
    let checks = probe().await;
    answer(&checks.hard, &checks.degraded)
}

/// Whether a RabbitMQ connection can be opened (and closed) within `timeout`.
pub async fn amqp_reachable(url: &str, timeout: Duration) -> bool {
    let properties = lapin::ConnectionProperties::default().with_connection_name("readiness".into());
    match tokio::time::timeout(timeout, lapin::Connection::connect(url, properties)).await {
        Ok(Ok(connection)) => {
            let _ = tokio::time::timeout(timeout, connection.close(200, "readiness checked".into())).await;
            true
        }
        _ => false,
    }
}

/// The readiness answer for named checks (`true` = up) and for checks that degrade the service without taking it
/// out of service (a reason = degraded): those show as `"down"` among the checks, are listed in `degraded` with
/// their reason in `reasons`, and leave the status 200 (`"status": "degraded"`) unless a hard check is down.
fn answer(checks: &[(&str, bool)], degraded: &[(&str, Option<String>)]) -> Response {
    let down: Vec<&str> = checks.iter().filter(|(_, up)| !up).map(|(name, _)| *name).collect();
    let mut states: Map<String, Value> =
        checks.iter().map(|(name, up)| ((*name).to_owned(), Value::from(if *up { "up" } else { "down" }))).collect();
    let mut reasons = Map::new();
    for (name, reason) in degraded {
        states.insert((*name).to_owned(), Value::from(if reason.is_some() { "down" } else { "up" }));
        if let Some(reason) = reason {
            reasons.insert((*name).to_owned(), Value::from(reason.as_str()));
        }
    }
    let mut body = if down.is_empty() {
        let status = if reasons.is_empty() { "ready" } else { "degraded" };
        json!({ "status": status, "checks": states })
    } else {
        json!({ "status": "unavailable", "down": down, "checks": states })
    };
    if !reasons.is_empty() {
        body["degraded"] = Value::from(reasons.keys().cloned().collect::<Vec<_>>());
        body["reasons"] = Value::Object(reasons);
    }
    let status = if down.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
