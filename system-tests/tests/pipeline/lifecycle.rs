//! The order's life over HTTP: transitions read back in one request, optimistic concurrency, idempotent retries,
//! and malformed lifecycle commands.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

async fn accepted(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    response.json().await.expect("json")
}

#[tokio::test]
async fn orders_walk_through_their_life_and_each_step_is_readable_at_once() {
    let app = TestApp::spawn().await;
    let (id, version) = app.place_order("cust-life").await;
    assert_eq!(app.read_at(id, version).await["status"], "Placed");

    let confirmed = accepted(app.command(id, "confirm", None).await).await;
    assert_eq!(confirmed["sequenceId"], 2);
    assert_eq!(confirmed["orderId"], id.to_string());
    let view = app.read_at(id, 2).await;
    assert_eq!(view["status"], "Confirmed");
    let placed_at = view["placedAt"].clone();

    let shipped = accepted(app.command(id, "ship", Some(json!({"expectedVersion": 2}))).await).await;
    assert_eq!(shipped["sequenceId"], 3);
    let view = app.read_at(id, 3).await;
    assert_eq!(view["status"], "Shipped");
    assert_eq!(view["placedAt"], placed_at, "placedAt never changes");
    assert_ne!(view["updatedAt"], Value::Null);
    assert_eq!(view["total"], "44.98", "the lines and total travel with every event");

    let (other, _) = app.place_order("cust-cancel").await;
    let cancelled =
        accepted(app.command(other, "cancel", Some(json!({"reason": "changed my mind", "expectedVersion": 1}))).await)
            .await;
    assert_eq!(cancelled["sequenceId"], 2);
    let view = app.read_at(other, 2).await;
    assert_eq!(view["status"], "Cancelled");
    assert_eq!(view["cancelReason"], "changed my mind");

    let events: Vec<(String, i64)> =
        sqlx::query_as("select event_type, order_version from outbox where order_id = $1 order by sequence")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .expect("events");
    let expected = [("OrderPlaced", 1), ("OrderConfirmed", 2), ("OrderShipped", 3)].map(|(t, v)| (t.to_owned(), v));
    assert_eq!(events, expected);
    app.stop().await;
}

#[tokio::test]
async fn refused_transitions_and_stale_versions_answer_409_with_the_current_state() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-409").await;
    accepted(app.command(id, "cancel", None).await).await;

    for (action, body) in
        [("ship", None), ("cancel", None), ("confirm", None), ("confirm", Some(json!({"expectedVersion": 1})))]
    {
        let response = app.command(id, action, body.clone()).await;
        assert_eq!(response.status(), 409, "{action} {body:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["currentVersion"], 2, "{problem}");
        assert_eq!(problem["orderStatus"], "Cancelled", "{problem}");
        assert_eq!(problem["status"], 409, "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("ancel")), "{problem}");
    }
    assert_eq!(app.count("outbox").await, 2, "refused commands write no event");
    let unknown = app.command(Uuid::now_v7(), "confirm", None).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_confirms_at_one_version_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-race").await;
    let attempts = (0..20).map(|_| app.command(id, "confirm", Some(json!({"expectedVersion": 1}))));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
    let version: i64 = sqlx::query_scalar("select version from customer_order where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("v");
    assert_eq!(version, 2);
    let versions: Vec<i64> =
        sqlx::query_scalar("select order_version from outbox where order_id = $1 order by sequence")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .expect("versions");
    assert_eq!(versions, [1, 2], "no version skipped or repeated");
    app.stop().await;
}

async fn place_with_key(app: &TestApp, key: &str, customer: &str) -> reqwest::Response {
    app.http
        .post(app.command_url("/commands/orders"))
        .header("idempotency-key", key)
        .json(&json!({"customerId": customer, "items": [{"sku": "S", "quantity": 1, "unitPrice": "3.50"}]}))
        .send()
        .await
        .expect("POST answers")
}

#[tokio::test]
async fn a_retried_command_with_its_idempotency_key_is_answered_again_and_writes_once() {
    let app = TestApp::spawn().await;
    let first = place_with_key(&app, "retry-1", "cust-key").await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first_body = first.text().await.expect("body");
    let retry = place_with_key(&app, "retry-1", "cust-key").await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["location"], location);
    assert_eq!(retry.text().await.expect("body"), first_body, "the first response, replayed exactly");
    assert_eq!(app.count("customer_order").await, 1);
    assert_eq!(app.count("outbox").await, 1);

    let reused = place_with_key(&app, "retry-1", "someone-else").await;
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("customer_order").await, 1);

    // Lifecycle commands replay too: the second confirm is not a 409, it is the first answer again.
    let id: Uuid = serde_json::from_str::<Value>(&first_body).expect("json")["orderId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("orderId");
    let confirm = || {
        app.http
            .post(app.command_url(&format!("/commands/orders/{id}/confirm")))
            .header("idempotency-key", "confirm-1")
            .send()
    };
    let once = confirm().await.expect("answers");
    assert_eq!(once.status(), 200);
    let once = once.text().await.expect("body");
    let twice = confirm().await.expect("answers");
    assert_eq!(twice.status(), 200);
    assert_eq!(twice.text().await.expect("body"), once);
    assert_eq!(app.count("outbox").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn ten_concurrent_requests_with_one_key_make_one_order() {
    let app = TestApp::spawn().await;
    let requests = (0..10).map(|_| place_with_key(&app, "concurrent-key", "cust-burst"));
    let responses = futures_util::future::join_all(requests).await;
    // A request whose key's first request is still running waits for it and gets its answer (docs/api.md's
    // contract): every one is the same 201.
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        bodies.push(response.text().await.expect("body"));
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every answer carries the one order");
    assert_eq!(app.count("customer_order").await, 1);
    assert_eq!(app.count("outbox").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_retry_that_means_the_same_command_gets_the_first_answer_whatever_its_spelling() {
    let app = TestApp::spawn().await;
    let post = |body: Value| {
        app.http.post(app.command_url("/commands/orders")).header("idempotency-key", "spelled-twice").json(&body).send()
    };
    let first = post(json!({"customerId": "c", "items": [{"sku": "S", "quantity": 2, "unitPrice": "3.50"}]}));
    let first = first.await.expect("answers");
    assert_eq!(first.status(), 201);
    let first = first.text().await.expect("body");
    // The same order: an integer written with a zero fraction, a price written another way, the default currency.
    let retry =
        json!({"currency": "USD", "items": [{"unitPrice": 3.5, "quantity": 2.0, "sku": "S"}], "customerId": "c"});
    let retry = post(retry).await.expect("answers");
    assert_eq!(retry.status(), 201, "the same command, not another one");
    assert_eq!(retry.text().await.expect("body"), first);
    assert_eq!(app.count("customer_order").await, 1);

    let id: Uuid = serde_json::from_str::<Value>(&first).expect("json")["orderId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("orderId");
    let confirm = app.command_url(&format!("/commands/orders/{id}/confirm"));
    let empty = app.http.post(&confirm).header("idempotency-key", "confirm-twice").send().await.expect("answers");
    assert_eq!(empty.status(), 200);
    let empty = empty.text().await.expect("body");
    let braces = app.http.post(&confirm).header("idempotency-key", "confirm-twice").json(&json!({})).send();
    let braces = braces.await.expect("answers");
    assert_eq!(braces.status(), 200, "`{{}}` asks what no body asks");
    assert_eq!(braces.text().await.expect("body"), empty);
    assert_eq!(app.count("outbox").await, 2);
    app.stop().await;
}

/// A change that waits on another change of the same order must not record an event without the state before it:
/// concurrent confirms and cancels of one order (no expected version) leave an unbroken history whose last event is
/// the order's state.
#[tokio::test]
async fn concurrent_changes_of_one_order_leave_an_unbroken_history_that_ends_in_the_orders_state() {
    let app = TestApp::spawn().await;
    for round in 0..10 {
        let (id, _) = app.place_order(&format!("cust-race-{round}")).await;
        let send = |step: &'static str| {
            let request = app.http.post(app.command_url(&format!("/commands/orders/{id}/{step}")));
            async move { request.send().await.expect("answers").status().as_u16() }
        };
        let statuses =
            futures_util::future::join_all([send("confirm"), send("cancel"), send("confirm"), send("ship")]).await;
        assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "round {round}: {statuses:?}");
        let applied = statuses.iter().filter(|s| **s == 200).count() as i64;
        let history: Vec<(i64, String, Value)> = sqlx::query_as(
            "select order_version, event_type, payload from outbox where order_id = $1 order by order_version",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .expect("history");
        let (version, status): (i64, String) =
            sqlx::query_as("select version, status from customer_order where id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .expect("order");
        assert_eq!(version, 1 + applied, "round {round}: one version per accepted change");
        assert_eq!(history.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(), (1..=version).collect::<Vec<_>>());
        for (v, event_type, payload) in &history {
            let expected = match event_type.as_str() {
                "OrderPlaced" => "Placed",
                "OrderConfirmed" => "Confirmed",
                "OrderShipped" => "Shipped",
                "OrderCancelled" => "Cancelled",
                other => panic!("unexpected event {other}"),
            };
            assert_eq!(payload["status"], expected, "round {round}, version {v}");
            assert_eq!(payload["items"], history[0].2["items"], "round {round}, version {v}: the lines stay");
        }
        assert_eq!(history.last().map(|(_, _, p)| p["status"].clone()), Some(Value::from(status)));
    }
    app.stop().await;
}

/// Keys recorded before answers were read from the log kept their answer's text: a retry still gets it.
#[tokio::test]
async fn a_key_recorded_with_its_answer_text_is_replayed_from_that_text() {
    let app = TestApp::spawn().await;
    let body = place_with_key(&app, "old-1", "cust-old").await;
    assert_eq!(body.status(), 201);
    let stored = r#"{"orderId":"0190f3b4-0000-7000-8000-000000000001","sequenceId":1,"position":1,"status":"Placed","total":"3.50","currency":"EUR"}"#;
    sqlx::query("update idempotency_key set response_body = $1, event_sequence = null, location = '/queries/orders/x'")
        .bind(stored)
        .execute(&app.pool)
        .await
        .expect("an answer stored as text");
    let retry = place_with_key(&app, "old-1", "cust-old").await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["location"], "/queries/orders/x");
    assert_eq!(retry.text().await.expect("body"), stored);
    assert_eq!(app.count("customer_order").await, 1);
    app.stop().await;
}

/// A key whose use is older than 24 hours is free again: the command runs anew.
#[tokio::test]
async fn a_key_used_more_than_a_day_ago_runs_its_command_again() {
    let app = TestApp::spawn().await;
    let first = place_with_key(&app, "day-old", "cust-day").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    sqlx::query("update idempotency_key set created_at = now() - interval '25 hours'")
        .execute(&app.pool)
        .await
        .expect("aged");
    let again = place_with_key(&app, "day-old", "cust-other").await;
    assert_eq!(again.status(), 201, "another body: no 422 for an expired key");
    let again: Value = again.json().await.expect("json");
    assert_ne!(again["orderId"], first["orderId"]);
    assert_eq!(app.count("customer_order").await, 2);
    assert_eq!(place_with_key(&app, "day-old", "cust-other").await.text().await.expect("body"), again.to_string());
    app.stop().await;
}
