//! What a caller without the right can still learn, with `AUTH_MODE=jwt`, over every route both services document:
//! the test walks their OpenAPI documents, so a route added later is tried without editing it. Without a token
//! every route but the public ones is a 401 problem; customer A asking about customer B's order (or B's customer
//! id) gets exactly what an id nobody has used gets — status, body shape and the request-level metrics — and
//! changes nothing.

use serde_json::{json, Map, Value};
use std::time::Duration;
use uuid::Uuid;

use crate::auth::{placed, spawn_jwt, Idp};
use crate::helpers::TestApp;

/// Routes anyone may call: health, metrics, the contract (docs/api.md, "What needs no token").
const PUBLIC: [&str; 4] = ["/health/live", "/health/ready", "/metrics", "/openapi.json"];

/// Metric families a request moves (and nothing in the background): what a caller could compare.
const REQUEST_METRICS: [&str; 5] = [
    "http_requests_total",
    "read_waits_total",
    "read_wait_duration_seconds_count",
    "commands_total",
    "command_duration_seconds_count",
];

/// One documented operation.
#[derive(Debug, Clone)]
struct Route {
    command_side: bool,
    method: reqwest::Method,
    path: String,
    query: Vec<String>,
    body: bool,
}

/// Every operation of a service's OpenAPI document.
fn routes(document: &Value, command_side: bool) -> Vec<Route> {
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else { continue };
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let query = parameters
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let body = operation.get("requestBody").is_some();
            routes.push(Route { command_side, method, path: path.clone(), query, body });
        }
    }
    routes
}

/// A value for each query parameter: one that makes reads wait a little, and passes validation.
fn query_value(name: &str) -> &'static str {
    match name {
        "minVersion" => "1",
        "minPosition" => "1",
        "waitMs" => "300",
        "limit" => "10",
        "from" => "2026-01-01",
        "to" => "2030-01-01",
        "delayMs" => "0",
        "after" => "0",
        _ => "x",
    }
}

/// The URL of `route` with its path parameters from `ids`.
fn url(app: &TestApp, route: &Route, order: Uuid, customer: &str) -> String {
    let path = route
        .path
        .replace("{id}", &order.to_string())
        .replace("{customerId}", customer)
        .replace("{projection}", "orders");
    let query: Vec<String> = route
        .query
        .iter()
        .map(|name| {
            if name == "customerId" {
                format!("customerId={customer}")
            } else {
                format!("{name}={}", query_value(name))
            }
        })
        .collect();
    let path = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
    if route.command_side {
        app.command_url(&path)
    } else {
        app.query_url(&path)
    }
}

/// The body of a request to `route`: a plausible one, so that refusals come from who asks, not from its shape.
fn body(route: &Route, customer: &str) -> Value {
    if route.path == "/commands/orders" {
        let items = json!([{"sku": "SKU-1", "quantity": 1, "unitPrice": "9.99"}]);
        json!({"customerId": customer, "currency": "EUR", "items": items})
    } else {
        json!({"expectedVersion": 1, "reason": "prying"})
    }
}

/// A JSON value with every scalar replaced by its kind: what is compared of two bodies.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// The request-level metric lines of both services, each after the name of its service.
async fn request_metrics(app: &TestApp) -> Vec<String> {
    let mut lines = Vec::new();
    for (service, url) in [("command", app.command_url("/metrics")), ("query", app.query_url("/metrics"))] {
        let text = app.http.get(url).send().await.expect("GET").text().await.expect("text");
        lines.extend(
            text.lines()
                .filter(|line| REQUEST_METRICS.iter().any(|family| line.starts_with(family)))
                .filter(|line| !line.contains("/metrics"))
                .map(|line| format!("{service} {line}")),
        );
    }
    lines
}

/// What a caller sees of one answer: its status, content type, body shape (or, for an event stream, whether an event
/// came within a second), and which request-level metrics it moved.
async fn seen(
    app: &TestApp,
    route: &Route,
    token: Option<&str>,
    order: Uuid,
    customer: &str,
) -> (u16, String, Value, Vec<String>) {
    let before = request_metrics(app).await;
    let mut request = app.http.request(route.method.clone(), url(app, route, order, customer));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if route.body {
        request = request.json(&body(route, customer));
    }
    let mut response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = if content_type.starts_with("text/event-stream") {
        let first = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await;
        json!({"sentWithinASecond": matches!(first, Ok(Ok(Some(_))))})
    } else if content_type.contains("json") {
        shape(&response.json::<Value>().await.unwrap_or(Value::Null))
    } else {
        json!(response.text().await.map(|t| t.len()).unwrap_or(0) > 0)
    };
    let after = request_metrics(app).await;
    // Each series the request moved (its service and labels, without the value).
    let moved = after
        .into_iter()
        .filter(|line| !before.contains(line))
        .map(|line| line.rsplit_once(' ').map_or(line.clone(), |(series, _)| series.to_owned()))
        .collect();
    (status, content_type, body, moved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_tells_a_prying_caller_nothing() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |query| query.read_model_sample_rate = 0.0).await;
    let (a, b) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})));
    let (hidden, _) = placed(&app, &b).await;
    let own =
        app.http.get(app.query_url(&format!("/queries/orders/{hidden}?minVersion=1&waitMs=20000"))).bearer_auth(&b);
    assert_eq!(own.send().await.expect("GET").status(), 200, "B's order is in the read model");

    let command: Value = app.get_json(app.command_url("/openapi.json")).await;
    let query: Value = app.get_json(app.query_url("/openapi.json")).await;
    let all: Vec<Route> = routes(&command, true).into_iter().chain(routes(&query, false)).collect();
    for expected in ["/queries/_status", "/queries/orders/{id}/stream", "/commands/orders/{id}/cancel", "/events"] {
        assert!(all.iter().any(|r| r.path == expected), "the documents list {expected}");
    }
    let mut tried = 0;
    for route in &all {
        let what = format!("{} {}", route.method, route.path);
        // No token: a 401 problem, whatever the route but the public ones.
        if !PUBLIC.contains(&route.path.as_str()) {
            let (status, content_type, _, _) = seen(&app, route, None, Uuid::now_v7(), "cust-b").await;
            assert_eq!((status, content_type.as_str()), (401, "application/problem+json"), "{what} without a token");
        }
        // Customer A about B's order and B's customer id, then about ones nobody has used: the same answer.
        let about_b = seen(&app, route, Some(&a), hidden, "cust-b").await;
        let about_nobody =
            seen(&app, route, Some(&a), Uuid::now_v7(), &format!("cust-{}", Uuid::now_v7().simple())).await;
        assert!(about_b.0 < 500, "{what}: {about_b:?}");
        assert_eq!(about_b, about_nobody, "{what}: B's (first) and nobody's (second)");
        tried += 1;
    }
    assert!(tried >= 17, "every route was tried ({tried})");
    // Nothing A sent changed B's order.
    let view =
        app.http.get(app.query_url(&format!("/queries/orders/{hidden}"))).bearer_auth(&b).send().await.expect("GET");
    let view: Value = view.json().await.expect("json");
    assert_eq!(view["metadata"]["version"], 1, "{view}");
    app.stop().await;
}
