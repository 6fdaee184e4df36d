//! Every class of bad input gets its status as `application/problem+json`, and writes nothing.

use serde_json::json;

use crate::helpers::TestApp;

fn line() -> serde_json::Value {
    json!({"sku": "SKU-1", "quantity": 1, "unitPrice": "1.00"})
}

fn order_with(items: serde_json::Value) -> String {
    json!({"customerId": "cust-1", "items": items}).to_string()
}

async fn assert_problem(response: reqwest::Response, status: u16, case: &str) -> serde_json::Value {
    let got = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.to_owned();
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{case}: body is not JSON: {e}"));
    assert_problem_parts((got, content_type, body), status, case)
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
            amqp_url: crate::helpers::amqp_url(),
            relay: None,
            slot_warn_bytes: u64::MAX,
            tasks: Default::default(),
            watchdog: Default::default(),
        },
    })
}

/// Sends `request` to `app` in process; the answer's status, content type and JSON body.
async fn in_process(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, String, serde_json::Value) {
    use tower::ServiceExt as _;
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// The problem document checks of [`assert_problem`], on an answer taken apart.
fn assert_problem_parts(answer: (u16, String, serde_json::Value), status: u16, case: &str) -> serde_json::Value {
    let (got, content_type, body) = answer;
    assert_eq!(got, status, "{case}: {body}");
    assert_eq!(content_type, "application/problem+json", "{case}");
    assert_eq!(body["status"], status, "{case}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "{case}: problem lacks {member}: {body}");
    }
    let kind = body["type"].as_str().and_then(|t| t.strip_prefix("/problems/")).unwrap_or_default();
    assert!(!kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{case}: type {body}");
    body
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
        let mut request = axum::http::Request::post("/commands/orders");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(axum::body::Body::from(body)).expect("request");
        let problem = assert_problem_parts(in_process(&app, request).await, status, case);
        if let Some(field) = field {
            let fields: Vec<&str> =
                problem["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
            assert!(fields.contains(&field), "{case}: errors should name {field}: {problem}");
        }
    }
    let get = axum::http::Request::get("/commands/orders").body(axum::body::Body::empty()).expect("request");
    assert_problem_parts(in_process(&app, get).await, 405, "GET on a command");
    let nowhere = axum::http::Request::post("/commands/nothing").body(axum::body::Body::empty()).expect("request");
    assert_problem_parts(in_process(&app, nowhere).await, 404, "unknown route");
}

#[tokio::test]
async fn a_rejected_command_writes_nothing_to_the_real_store() {
    let app = TestApp::spawn().await;
    let bad = [
        json!({"customerId": "c", "items": []}).to_string(),
        order_with(json!([{"sku": "s", "quantity": 1, "unitPrice": "1.999"}])),
        "{\"customerId\":".to_owned(),
    ];
    for body in bad {
        let request = app.http.post(app.command_url("/commands/orders")).header("content-type", "application/json");
        assert_problem(request.body(body).send().await.expect("POST answers"), 400, "bad command").await;
    }
    for table in ["customer_order", "order_line", "outbox", "idempotency_key"] {
        assert_eq!(app.count(table).await, 0, "a rejected command wrote to {table}");
    }
    app.stop().await;
}

/// The query side in process, in front of a MongoDB nothing listens on (and an event feed nobody serves): any read
/// that reached the store would answer 503, so every 4xx it gives was decided before the store was asked.
async fn query_app_without_store() -> axum::Router {
    use query_service::read::{Boards, ViewReader};
    let uri = "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=200";
    let views =
        query_service::store::connect(uri, "none", &Default::default()).await.expect("a client (it connects lazily)");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let feed = query_service::feed::Feed::new("http://127.0.0.1:1/events".to_owned(), None).expect("feed");
    let boards = Boards::default();
    query_service::http::build_app(query_service::http::AppState {
        reader: ViewReader::new(views.clone()),
        rebuilders: query_service::projection::ALL
            .iter()
            .map(|p| {
                let views = views.for_model(p.model());
                query_service::rebuild::Rebuilder::new(*p, views, feed.clone(), 2, shutdown.clone())
            })
            .collect(),
        views,
        waiters: boards.orders(),
        boards,
        shutdown,
        admin: service_runtime::admin::AdminToken::new(None),
        metrics: query_service::metrics::QueryMetrics::new().expect("metrics"),
        readiness: query_service::http::Readiness {
            amqp_url: crate::helpers::amqp_url(),
            consuming: Vec::new(),
            tasks: Default::default(),
            watchdog: Default::default(),
        },
        slowdown: None,
        demo: None,
        sampling: query_service::http::Sampling::default(),
        auth: service_runtime::auth::Auth::trusting(),
        slots: service_runtime::limits::Slots::new(100, 1_000),
    })
}

#[tokio::test]
async fn bad_reads_are_rejected_with_problem_json_before_the_store_is_read() {
    let app = query_app_without_store().await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        ("/queries/orders/not-a-uuid".to_owned(), 400, "id not a uuid"),
        ("/queries/orders/1%27%20or%201%3D1".to_owned(), 400, "injection in the id"),
        (format!("/queries/orders/{id}?minVersion=-1"), 400, "negative minVersion"),
        (format!("/queries/orders/{id}?minVersion=abc"), 400, "minVersion not a number"),
        (format!("/queries/orders/{id}?minVersion=1.5"), 400, "fractional minVersion"),
        (format!("/queries/orders/{id}?minVersion=99999999999999999999"), 400, "minVersion out of range"),
        (format!("/queries/orders/{id}?minVersion=1&waitMs=30001"), 400, "waitMs above the maximum"),
        (format!("/queries/orders/{id}?minVersion=1&waitMs=-5"), 400, "negative waitMs"),
        (format!("/queries/orders/{id}?waitMs=soon"), 400, "waitMs not a number"),
        ("/queries/nothing".to_owned(), 404, "unknown route"),
        ("/queries/customers/c%27%20or%201%3D1/summary".to_owned(), 400, "injection in the customer id"),
        ("/queries/customers/c-1/summary?minPosition=x".to_owned(), 400, "summary minPosition not a number"),
        ("/queries/dashboard/daily".to_owned(), 400, "dashboard without dates"),
        ("/queries/dashboard/daily?from=2026-12-01".to_owned(), 400, "dashboard without to"),
        ("/queries/dashboard/daily?from=2026-12-01&to=2026-11-30".to_owned(), 400, "from after to"),
        ("/queries/dashboard/daily?from=2024-01-01&to=2025-01-01".to_owned(), 400, "367 days"),
        ("/queries/dashboard/daily?from=2026-12-1&to=2026-12-31".to_owned(), 400, "a date not written YYYY-MM-DD"),
        ("/queries/dashboard/daily?from=2026-12-01&to=2026-12-31&waitMs=30001".to_owned(), 400, "dashboard waitMs"),
    ];
    for (path, status, case) in cases {
        let request = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
        assert_problem_parts(in_process(&app, request).await, status, case);
    }
    let wrong_method =
        axum::http::Request::delete(format!("/queries/orders/{id}")).body(axum::body::Body::empty()).expect("request");
    assert_problem_parts(in_process(&app, wrong_method).await, 405, "DELETE on a view");
}

#[tokio::test]
async fn reads_of_an_order_the_read_model_does_not_hold_are_404() {
    let app = TestApp::spawn().await;
    app.place_order("cust-reads").await;
    let unknown = uuid::Uuid::now_v7();
    let cases = [
        (format!("/queries/orders/{unknown}"), "unknown order"),
        (format!("/queries/orders/{unknown}?minVersion=0&waitMs=0"), "unknown order, no version to wait for"),
    ];
    for (path, case) in cases {
        assert_problem(app.http.get(app.query_url(&path)).send().await.expect("GET answers"), 404, case).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn without_tokens_the_document_requires_the_customer_of_a_new_order() {
    let request = axum::http::Request::get("/openapi.json").body(axum::body::Body::empty()).expect("request");
    let (status, _, spec) = in_process(&command_app_without_store(), request).await;
    assert_eq!(status, 200);
    let required = spec["components"]["schemas"]["PlaceOrder"]["required"].as_array().expect("required").clone();
    assert!(required.contains(&json!("customerId")), "{required:?}");
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
        assert_problem_parts(in_process(&app, request).await, status, case);
    }
    let place_with_bad_key = axum::http::Request::post("/commands/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", "tab\tkey")
        .body(axum::body::Body::from(order_with(json!([line()]))))
        .expect("request");
    assert_problem_parts(in_process(&app, place_with_bad_key).await, 400, "place with a malformed key");
}

#[tokio::test]
async fn a_rejected_lifecycle_command_writes_nothing_to_the_real_store() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-bad-lifecycle").await;
    let path = |action: &str| app.command_url(&format!("/commands/orders/{id}/{action}"));
    let rejected = [
        app.http.post(path("confirm")).json(&json!({"expectedVersion": 0})),
        app.http.post(path("cancel")).json(&json!({"reason": 42})).header("idempotency-key", "k-1"),
        app.http.post(path("ship")).header("idempotency-key", "my key"),
    ];
    for request in rejected {
        assert_problem(request.send().await.expect("POST answers"), 400, "a rejected lifecycle command").await;
    }
    assert_eq!(app.count("customer_order").await, 1);
    assert_eq!(app.count("outbox").await, 1, "no rejected command wrote an event");
    let version: i64 = sqlx::query_scalar("select version from customer_order where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("v");
    assert_eq!(version, 1);
    assert_eq!(app.count("idempotency_key").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_cut_off_by_the_request_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.command_addr).await.expect("connects");
    let request = "POST /commands/orders HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                   content-length: 1000\r\n\r\n{\"customerId\":";
    stream.write_all(request.as_bytes()).await.expect("writes");
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server held the connection past its request timeout");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(started.elapsed() >= command_service::http::REQUEST_TIMEOUT - std::time::Duration::from_millis(500));
    assert_eq!(app.count("customer_order").await, 0);
    app.stop().await;
}
