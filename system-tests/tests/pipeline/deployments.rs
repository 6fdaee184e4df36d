//! Deployments in an awkward order: the command side taking orders before any query-service (and so before the
//! projector's queue) exists.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{amqp_url, eventually, mongodb_uri, place_order_at, CommandFirst, Names};

#[tokio::test]
async fn orders_placed_before_the_query_side_exists_reach_the_read_model() {
    let command = CommandFirst::spawn(Names::new("test"), &amqp_url(), |_| {}).await;
    let http = command.http();
    let first = place_order_at(&http, &command.command_url("/commands/orders"), "early-bird").await;

    // No queue is bound to the exchange yet: the relay must not take the broker's ack of an unroutable message
    // for a delivery. Readiness says why the event waits, and the row stays unpublished.
    let ready: Value = eventually(Duration::from_secs(20), || async {
        let body: Value = http.get(command.command_url("/health/ready")).send().await.ok()?.json().await.ok()?;
        (body["checks"]["routing"] == "down").then_some(body)
    })
    .await;
    assert!(ready["degraded"].as_array().is_some_and(|d| d.iter().any(|c| c == "routing")), "{ready}");
    assert!(ready["reasons"]["routing"].as_str().is_some_and(|r| r.contains("no queue")), "{ready}");

    let app = command.then_query(&mongodb_uri(), |_, _| {}).await;
    assert_eq!(app.unpublished().await, 1, "the unroutable event is still waiting in the outbox");
    let second = app.place_order_answer("early-bird").await;

    let id = first["orderId"].as_str().expect("orderId");
    let read = app.http.get(app.query_url(&format!("/queries/orders/{id}?minVersion=1&waitMs=20000"))).send().await;
    let read = read.expect("GET answers");
    assert_eq!(read.status(), 200, "the first order reaches its view once a queue is bound");

    let position = second["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/orders?customerId=early-bird&minPosition={position}&waitMs=20000"));
    let list = app.http.get(url).send().await.expect("GET answers");
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.expect("json");
    let ids: Vec<&str> = list["data"].as_array().expect("data").iter().filter_map(|v| v["orderId"].as_str()).collect();
    assert!(ids.contains(&id) && ids.contains(&second["orderId"].as_str().expect("orderId")), "{list}");

    let ready: Value = app.get_json(app.command_url("/health/ready")).await;
    assert_eq!(ready["checks"]["routing"], "up", "{ready}");
    assert_eq!(app.unpublished().await, 0);
    app.stop().await;
}
