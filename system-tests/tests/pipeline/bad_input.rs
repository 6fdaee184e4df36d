//! Bad input writes nothing to the real store, and a body cut short is cut off by the request timeout. Which status
//! each class of bad input gets is tabled in process, in each service's `tests/http_tables.rs`.

use serde_json::json;

use crate::helpers::TestApp;

fn order_with(items: serde_json::Value) -> String {
    json!({"customerId": "cust-1", "items": items}).to_string()
}

async fn assert_problem(response: reqwest::Response, status: u16, case: &str) -> serde_json::Value {
    let got = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.to_owned();
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{case}: body is not JSON: {e}"));
    service_runtime::testing::assert_problem((got, content_type, body), status, case)
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
