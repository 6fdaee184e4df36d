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
    let down: Vec<&str> = checks.iter().filter(|(_, up)| !up).map(|(name, _)| *name).collect();
    let states: Map<String, Value> =
        checks.iter().map(|(name, up)| ((*name).to_owned(), Value::from(if *up { "up" } else { "down" }))).collect();
    if down.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready", "checks": states }))).into_response()
    } else {
        let body = json!({ "status": "unavailable", "down": down, "checks": states });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_down() {
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", true)]).status(), StatusCode::OK);
        assert_eq!(answer(&[("postgres", true), ("rabbitmq", false)]).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
