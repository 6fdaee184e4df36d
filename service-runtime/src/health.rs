//! Readiness: each service checks what it depends on and answers `GET /health/ready` with 200, or 503 and a JSON
//! body naming what is down: `{"status": "unavailable", "down": ["rabbitmq"], "checks": {"postgres": "up", …}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::time::Duration;

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

/// The readiness answer for named checks (`true` = up).
pub fn answer(checks: &[(&str, bool)]) -> Response {
    answer_degraded(checks, &[])
}

/// The readiness answer for named checks (`true` = up) and for checks that degrade the service without taking it
/// out of service (a reason = degraded): those show as `"down"` among the checks, are listed in `degraded` with
/// their reason in `reasons`, and leave the status 200 (`"status": "degraded"`) unless a hard check is down.
pub fn answer_degraded(checks: &[(&str, bool)], degraded: &[(&str, Option<String>)]) -> Response {
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
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", true)]).status(), StatusCode::OK);
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", false)]).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_degraded_check_keeps_the_service_ready_and_says_why() {
        let degraded = [("routing", Some("no queue".to_owned()))];
        assert_eq!(answer_degraded(&[("postgres", true)], &degraded).status(), StatusCode::OK);
        assert_eq!(answer_degraded(&[("postgres", false)], &degraded).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer_degraded(&[("postgres", true)], &[("routing", None)]).status(), StatusCode::OK);
    }
}
