//! The command side's HTTP table in process, before a store: every class of bad input gets its status as
//! `application/problem+json`, decided before a write could be attempted (a pool aimed at a port nothing listens
//! on would answer 503 to any request that reached the store). No server is needed.

use axum::http::Method;
use serde_json::json;
use service_runtime::testing::{assert_problem, get, in_process, request};

fn line() -> serde_json::Value {
    json!({"sku": "SKU-1", "quantity": 1, "unitPrice": "1.00"})
}

fn order_with(items: serde_json::Value) -> String {
    json!({"customerId": "cust-1", "items": items}).to_string()
}

/// (case, content type, body, status, field named in `errors`)
type Case = (&'static str, Option<&'static str>, Vec<u8>, u16, Option<&'static str>);

/// The command side in process, in front of a Postgres nothing listens on: any request that reached the store
/// would answer 503, so every 4xx it gives was decided before a write could be attempted.
fn command_app_without_store() -> axum::Router {
    // A pool aimed at a port nothing listens on: every acquire fails.
    let options: sqlx::postgres::PgConnectOptions = "postgres://postgres@127.0.0.1:1/none".parse().expect("url");
    command_service::http::build_app(command_service::http::AppState {
        pool: command_service::store::pool(options, 1),
        auth: service_runtime::auth::Auth::trusting(),
        limiter: None,
        admin: service_runtime::admin::AdminToken::new(None),
        metrics: command_service::metrics::CommandMetrics::new().expect("metrics"),
        readiness: command_service::http::Readiness {
            amqp_url: "amqp://guest:guest@127.0.0.1:1/%2f".to_owned(),
            relay: None,
            slot_warn_bytes: u64::MAX,
            tasks: Default::default(),
            watchdog: Default::default(),
        },
    })
}

#[tokio::test]
async fn bad_commands_are_rejected_with_problem_json_before_the_store_is_touched() {
    let app = command_app_without_store();
    let json = "application/json";
    let many_lines = order_with(serde_json::Value::Array(vec![line(); 101]));
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let huge = format!(r#"{{"customerId":"{}","items":[]}}"#, "a".repeat(70 * 1024));
    let cases: Vec<Case> = vec![
        ("malformed json", Some(json), b"{\"customerId\":".to_vec(), 400, None),
        ("not an object", Some(json), b"[]".to_vec(), 400, None),
        (
            "fields as an array",
            Some(json),
            br#"["c","USD",[{"sku":"s","quantity":1,"unitPrice":1}]]"#.to_vec(),
            400,
            None,
        ),
        ("empty body", Some(json), Vec::new(), 400, None),
        ("trailing data", Some(json), format!("{} {{}}", order_with(json!([line()]))).into_bytes(), 400, None),
        ("invalid utf-8", Some(json), b"{\"customerId\":\"\xff\xfe\",\"items\":[]}".to_vec(), 400, None),
        ("deep nesting", Some(json), deep.into_bytes(), 400, None),
        ("missing customerId", Some(json), json!({"items": [line()]}).to_string().into_bytes(), 400, None),
        (
            "unknown field",
            Some(json),
            json!({"customerId": "c", "items": [line()], "discount": 5}).to_string().into_bytes(),
            400,
            None,
        ),
        (
            "unknown line field",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": 1, "x": 1}])).into_bytes(),
            400,
            None,
        ),
        (
            "customerId empty",
            Some(json),
            json!({"customerId": "", "items": [line()]}).to_string().into_bytes(),
            400,
            Some("customerId"),
        ),
        (
            "customerId too long",
            Some(json),
            json!({"customerId": "c".repeat(65), "items": [line()]}).to_string().into_bytes(),
            400,
            Some("customerId"),
        ),
        (
            "customerId injection",
            Some(json),
            json!({"customerId": "x'; drop table outbox;--", "items": [line()]}).to_string().into_bytes(),
            400,
            Some("customerId"),
        ),
        (
            "customerId not a string",
            Some(json),
            json!({"customerId": 42, "items": [line()]}).to_string().into_bytes(),
            400,
            None,
        ),
        (
            "currency lower case",
            Some(json),
            json!({"customerId": "c", "currency": "eur", "items": [line()]}).to_string().into_bytes(),
            400,
            Some("currency"),
        ),
        (
            "currency too long",
            Some(json),
            json!({"customerId": "c", "currency": "EURO", "items": [line()]}).to_string().into_bytes(),
            400,
            Some("currency"),
        ),
        ("no lines", Some(json), order_with(json!([])).into_bytes(), 400, Some("items")),
        ("101 lines", Some(json), many_lines.into_bytes(), 400, Some("items")),
        (
            "sku with space",
            Some(json),
            order_with(json!([{"sku": "S 1", "quantity": 1, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[0].sku"),
        ),
        (
            "blank item name",
            Some(json),
            order_with(json!([{"sku": "s", "name": "  ", "quantity": 1, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[0].name"),
        ),
        (
            "item name with a control character",
            Some(json),
            order_with(json!([{"sku": "s", "name": "a\u{7}b", "quantity": 1, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[0].name"),
        ),
        (
            "upper-case segment",
            Some(json),
            json!({"customerId": "c", "customerSegment": "VIP", "items": [line()]}).to_string().into_bytes(),
            400,
            Some("customerSegment"),
        ),
        (
            "quantity zero",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 0, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[0].quantity"),
        ),
        (
            "quantity 1001",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1001, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[0].quantity"),
        ),
        (
            "quantity fractional",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 2.5, "unitPrice": 1}])).into_bytes(),
            400,
            None,
        ),
        (
            "quantity as string",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": "2", "unitPrice": 1}])).into_bytes(),
            400,
            None,
        ),
        (
            "quantity huge",
            Some(json),
            br#"{"customerId":"c","items":[{"sku":"s","quantity":1e400,"unitPrice":1}]}"#.to_vec(),
            400,
            None,
        ),
        (
            "price zero",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": "0"}])).into_bytes(),
            400,
            Some("items[0].unitPrice"),
        ),
        (
            "price negative",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": -5}])).into_bytes(),
            400,
            Some("items[0].unitPrice"),
        ),
        (
            "price three decimals",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": "1.999"}])).into_bytes(),
            400,
            Some("items[0].unitPrice"),
        ),
        (
            "price too high",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": "1000000.01"}])).into_bytes(),
            400,
            Some("items[0].unitPrice"),
        ),
        (
            "price not a number",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": "abc"}])).into_bytes(),
            400,
            Some("items[0].unitPrice"),
        ),
        (
            "price boolean",
            Some(json),
            order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": true}])).into_bytes(),
            400,
            None,
        ),
        (
            "second line broken",
            Some(json),
            order_with(json!([line(), {"sku": "s", "quantity": -1, "unitPrice": 1}])).into_bytes(),
            400,
            Some("items[1].quantity"),
        ),
        ("text/plain", Some("text/plain"), order_with(json!([line()])).into_bytes(), 415, None),
        ("form", Some("application/x-www-form-urlencoded"), b"customerId=c".to_vec(), 415, None),
        ("no content type", None, order_with(json!([line()])).into_bytes(), 415, None),
        ("body over 64 KiB", Some(json), huge.into_bytes(), 413, None),
    ];
    for (case, content_type, body, status, field) in cases {
        let request = request(Method::POST, "/commands/orders", content_type, body);
        let problem = assert_problem(in_process(&app, request).await, status, case);
        if let Some(field) = field {
            let fields: Vec<&str> =
                problem["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
            assert!(fields.contains(&field), "{case}: errors should name {field}: {problem}");
        }
    }
    assert_problem(in_process(&app, get("/commands/orders")).await, 405, "GET on a command");
    let nowhere = request(Method::POST, "/commands/nothing", None, Vec::new());
    assert_problem(in_process(&app, nowhere).await, 404, "unknown route");
}

#[tokio::test]
async fn without_tokens_the_document_requires_the_customer_of_a_new_order() {
    let (status, _, spec) = in_process(&command_app_without_store(), get("/openapi.json")).await;
    assert_eq!(status, 200);
    let required = spec["components"]["schemas"]["PlaceOrder"]["required"].as_array().expect("required").clone();
    assert!(required.contains(&json!("customerId")), "{required:?}");
}

#[tokio::test]
async fn every_operation_of_the_document_has_an_operation_id_of_its_own() {
    let (status, _, document) = in_process(&command_app_without_store(), get("/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(service_runtime::testing::repeated_operation_ids(&document), Vec::<String>::new());
}

#[tokio::test]
async fn postgres_unreachable_answers_503() {
    use tower::ServiceExt as _;
    let request = axum::http::Request::post("/commands/orders")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(order_with(json!([line()]))))
        .expect("request");
    let response = command_app_without_store().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["retry-after"], "1");
}

/// (case, path, content type, body, idempotency key, status)
type LifecycleCase<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, Option<&'a str>, u16);

#[tokio::test]
async fn bad_lifecycle_commands_are_rejected_with_problem_json_before_the_store_is_touched() {
    let app = command_app_without_store();
    let id = uuid::Uuid::now_v7();
    let json = Some("application/json");
    let path = |action: &str| format!("/commands/orders/{id}/{action}");
    let key_too_long = "k".repeat(256);
    let cases: Vec<LifecycleCase> = vec![
        ("id not a uuid", "/commands/orders/nope/confirm".to_owned(), None, vec![], None, 400),
        // The body is judged before the id, as it always was: a text body is 415 whatever the id.
        (
            "id not a uuid, a text body",
            "/commands/orders/nope/confirm".to_owned(),
            Some("text/plain"),
            b"x".to_vec(),
            None,
            415,
        ),
        (
            "injection in the id",
            "/commands/orders/1%27%3B%20drop%20table%20outbox/confirm".to_owned(),
            None,
            vec![],
            None,
            400,
        ),
        ("unknown command", path("refund"), None, vec![], None, 404),
        ("expectedVersion zero", path("confirm"), json, br#"{"expectedVersion":0}"#.to_vec(), None, 400),
        ("expectedVersion negative", path("ship"), json, br#"{"expectedVersion":-3}"#.to_vec(), None, 400),
        ("expectedVersion fractional", path("confirm"), json, br#"{"expectedVersion":1.5}"#.to_vec(), None, 400),
        ("expectedVersion string", path("confirm"), json, br#"{"expectedVersion":"1"}"#.to_vec(), None, 400),
        ("expectedVersion huge", path("confirm"), json, br#"{"expectedVersion":1e300}"#.to_vec(), None, 400),
        (
            "expectedVersion beyond i64",
            path("confirm"),
            json,
            br#"{"expectedVersion":99999999999999999999}"#.to_vec(),
            None,
            400,
        ),
        ("unknown field", path("confirm"), json, br#"{"expectedVersion":1,"force":true}"#.to_vec(), None, 400),
        ("reason on confirm", path("confirm"), json, br#"{"reason":"x"}"#.to_vec(), None, 400),
        (
            "reason too long",
            path("cancel"),
            json,
            format!(r#"{{"reason":"{}"}}"#, "r".repeat(501)).into_bytes(),
            None,
            400,
        ),
        ("reason not a string", path("cancel"), json, br#"{"reason":42}"#.to_vec(), None, 400),
        ("malformed json", path("cancel"), json, br#"{"reason":"#.to_vec(), None, 400),
        ("array body", path("confirm"), json, b"[1]".to_vec(), None, 400),
        (
            "deep nesting",
            path("confirm"),
            json,
            format!("{}{}", "[".repeat(3_000), "]".repeat(3_000)).into_bytes(),
            None,
            400,
        ),
        ("text body", path("confirm"), Some("text/plain"), b"expectedVersion=1".to_vec(), None, 415),
        ("body without a type", path("confirm"), None, br#"{"expectedVersion":1}"#.to_vec(), None, 415),
        (
            "body over 64 KiB",
            path("cancel"),
            json,
            format!(r#"{{"reason":"{}"}}"#, "r".repeat(70_000)).into_bytes(),
            None,
            413,
        ),
        ("key with a space", path("confirm"), None, vec![], Some("my key"), 400),
        ("key too long", path("confirm"), None, vec![], Some(key_too_long.as_str()), 400),
    ];
    for (case, path, content_type, body, key, status) in cases {
        let mut request = axum::http::Request::post(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let request = request.body(axum::body::Body::from(body)).expect("request");
        assert_problem(in_process(&app, request).await, status, case);
    }
    let place_with_bad_key = axum::http::Request::post("/commands/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", "tab\tkey")
        .body(axum::body::Body::from(order_with(json!([line()]))))
        .expect("request");
    assert_problem(in_process(&app, place_with_bad_key).await, 400, "place with a malformed key");
}
