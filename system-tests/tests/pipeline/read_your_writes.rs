//! A placed order can be read back in the very next request, and reads behind the token wait, then answer 202.

use std::time::{Duration, Instant};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_placed_order_is_readable_with_min_version_in_one_request() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.command_url("/commands/orders"))
        .json(&serde_json::json!({
            "customerId": "cust-42", "currency": "EUR",
            "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99"}, {"sku": "SKU-2", "quantity": 3, "unitPrice": 0.1}]
        }))
        .send()
        .await
        .expect("POST answers");
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["sequenceId"], 1);
    let id = body["orderId"].as_str().expect("orderId");
    assert_eq!(location, format!("/queries/orders/{id}"));

    let read = app.http.get(app.query_url(&format!("{location}?minVersion=1"))).send().await.expect("GET answers");
    assert_eq!(read.status(), 200);
    let view: serde_json::Value = read.json().await.expect("json");
    assert_eq!(view["metadata"]["version"], 1);
    assert_eq!(view["metadata"]["processing"], false);
    let data = &view["data"];
    assert_eq!(data["orderId"], id);
    assert_eq!(data["customerId"], "cust-42");
    assert_eq!(data["status"], "Placed");
    assert_eq!(data["currency"], "EUR");
    assert_eq!(data["total"], "40.28");
    assert_eq!(data["itemCount"], 5);
    assert_eq!(
        data["items"],
        serde_json::json!([
            {"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"},
            {"sku": "SKU-2", "quantity": 3, "unitPrice": "0.10", "lineTotal": "0.30"},
        ])
    );
    assert_eq!(view["metadata"]["lastUpdated"], data["updatedAt"]);
    app.stop().await;
}

#[tokio::test]
async fn the_reference_client_loop_works_unchanged() {
    // The article's client: POST, then GET (without minVersion) until metadata.version >= sequenceId.
    let app = TestApp::spawn().await;
    let (id, sequence_id) = app.place_order("cust-ref").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = app.read_order(id, "").await;
        if response.status() == 200 {
            let body: serde_json::Value = response.json().await.expect("json");
            if body["metadata"]["version"].as_i64() >= Some(sequence_id) {
                assert_eq!(body["data"]["customerId"], "cust-ref");
                break;
            }
        } else {
            assert_eq!(response.status(), 404, "before the view exists the read is a 404");
        }
        assert!(Instant::now() < deadline, "the view never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_version_never_reached_answers_202_after_wait_ms() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-wait").await;
    let ready = app.read_order(id, "?minVersion=1").await;
    assert_eq!(ready.status(), 200);

    let started = Instant::now();
    let response = app
        .http
        .get(app.query_url(&format!("/queries/orders/{id}?minVersion=7&waitMs=400")))
        .send()
        .await
        .expect("GET");
    let waited = started.elapsed();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(waited >= Duration::from_millis(400), "answered before waitMs: {waited:?}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["metadata"], serde_json::json!({"version": 1, "processing": true, "minVersion": 7}));
    assert_eq!(body["data"]["orderId"], id.to_string());

    // waitMs=0 answers at once; an order with no view yet answers 202 with null data.
    let unknown = uuid::Uuid::now_v7();
    let response = app
        .http
        .get(app.query_url(&format!("/queries/orders/{unknown}?minVersion=1&waitMs=0")))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["data"], serde_json::Value::Null);
    assert_eq!(body["metadata"]["version"], 0);
    app.stop().await;
}

#[tokio::test]
async fn many_orders_each_readable_at_once_and_the_outbox_keeps_every_event() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..40 {
        let (id, version) = app.place_order(&format!("cust-{n}")).await;
        let response = app
            .http
            .get(app.query_url(&format!("/queries/orders/{id}?minVersion={version}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "order {n} was not readable in the request after its POST");
        ids.push(id);
    }
    assert_eq!(app.count("customer_order").await, 40);
    assert_eq!(app.count("outbox").await, 40, "one event per order, none deleted");
    crate::helpers::eventually(Duration::from_secs(20), || async { (app.unpublished().await == 0).then_some(()) })
        .await;
    let distinct_sequences: i64 =
        sqlx::query_scalar("select count(distinct sequence) from outbox").fetch_one(&app.pool).await.expect("count");
    assert_eq!(distinct_sequences, 40);
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_read_answers_at_once_when_the_service_shuts_down() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-drain").await;
    let url = app.query_url(&format!("/queries/orders/{id}?minVersion=1"));
    assert_eq!(app.http.get(&url).send().await.expect("GET").status(), 200);
    // A read waiting for a version that will not come within its 30 s.
    let waiting =
        tokio::spawn(app.http.get(app.query_url(&format!("/queries/orders/{id}?minVersion=9&waitMs=30000"))).send());
    crate::helpers::eventually(Duration::from_secs(10), || async { (app.waiters.waiting_reads() > 0).then_some(()) })
        .await;
    app.begin_shutdown();
    // A drain must not hold for the rest of the wait: the read answers what it has.
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting read answers when the service stops, not when its wait ends")
        .expect("task")
        .expect("GET answers");
    assert_eq!(answer.status(), 202);
    app.stop().await;
}
