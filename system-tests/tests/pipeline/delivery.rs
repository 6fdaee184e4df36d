//! The projector under hostile delivery: duplicates, reordering and poison messages, published straight to the
//! exchange.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{amqp_url, eventually, TestApp};

fn envelope(order_id: Uuid, version: i64, status: &str, customer: &str) -> Vec<u8> {
    envelope_at(version, order_id, version, status, customer)
}

/// [`envelope`] at `sequence` in the log.
fn envelope_at(sequence: i64, order_id: Uuid, version: i64, status: &str, customer: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "eventId": Uuid::now_v7(), "eventType": "OrderPlaced", "schemaVersion": 1,
        "orderId": order_id, "version": version, "sequence": sequence,
        "occurredAt": "2026-11-27T10:00:00Z",
        "payload": {
            "customerId": customer, "currency": "USD", "status": status,
            "items": [{"sku": "S", "quantity": 1, "unitPrice": "2.50", "lineTotal": "2.50"}],
            "total": "2.50", "placedAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:00:00Z"
        }
    }))
    .expect("serialises")
}

async fn publish(app: &TestApp, bodies: &[Vec<u8>]) {
    publish_as(app, None, bodies).await;
}

/// Publishes to every read model's exchange with an AMQP `type` property, as the relay does for checkpoints:
/// `mandatory`, and again while the broker returns it because the query side's topology is not declared yet or nacks
/// it (a quorum queue declared a moment ago may not take messages yet), as the relay keeps such an event.
async fn publish_as(app: &TestApp, kind: Option<&str>, bodies: &[Vec<u8>]) {
    let properties =
        kind.map_or_else(BasicProperties::default, |kind| BasicProperties::default().with_type(kind.into()));
    // A checkpoint of these tests is the first of a log that began with them: the relay says so on such a one.
    let properties = if kind == Some(shared_events::CHECKPOINT_TYPE) {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(shared_events::WHOLE_LOG_HEADER.into(), lapin::types::AMQPValue::Boolean(true));
        properties.with_headers(headers)
    } else {
        properties
    };
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp connects");
    let channel = connection.create_channel().await.expect("channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    for body in bodies {
        for exchange in app.names.read_model_exchanges() {
            eventually(Duration::from_secs(20), || async {
                let confirm = channel
                    .basic_publish(exchange.as_str().into(), "OrderPlaced".into(), mandatory, body, properties.clone())
                    .await
                    .expect("publish")
                    .await
                    .expect("confirm");
                // Nacked, or returned (routed to no queue): published again.
                (confirm.is_ack() && confirm.take_message().is_none()).then_some(())
            })
            .await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

async fn view(app: &TestApp, id: Uuid) -> Option<mongodb::bson::Document> {
    app.mongo
        .collection::<mongodb::bson::Document>("order_views")
        .find_one(mongodb::bson::doc! {"_id": id.to_string()})
        .await
        .expect("find_one")
}

#[tokio::test]
async fn duplicates_and_reordered_events_leave_the_newest_version() {
    let app = TestApp::spawn().await;
    let id = Uuid::now_v7();
    // Version 3 first, then the older ones, then 3 again: the view must stay at 3 with 3's content.
    publish(
        &app,
        &[
            envelope(id, 3, "Shipped", "third"),
            envelope(id, 1, "Placed", "first"),
            envelope(id, 2, "Confirmed", "second"),
            envelope(id, 3, "Shipped", "third"),
        ],
    )
    .await;
    // A marker event on another order, published last, tells when the projector has handled the four above.
    let marker = Uuid::now_v7();
    publish(&app, &[envelope(marker, 1, "Placed", "marker")]).await;
    eventually(Duration::from_secs(20), || async { view(&app, marker).await }).await;

    let stored = view(&app, id).await.expect("view exists");
    assert_eq!(stored.get_i64("version").ok(), Some(3));
    assert_eq!(stored.get_str("status").ok(), Some("Shipped"));
    assert_eq!(stored.get_str("customerId").ok(), Some("third"));
    let read = app.read_order(id, "?minVersion=3").await;
    assert_eq!(read.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_queue_with_a_reason_and_do_not_block() {
    let app = TestApp::spawn().await;
    let good = Uuid::now_v7();
    let unknown_type = serde_json::to_vec(&json!({
        "eventId": Uuid::now_v7(), "eventType": "OrderTeleported", "schemaVersion": 1, "orderId": Uuid::now_v7(),
        "version": 1, "sequence": 1, "occurredAt": "2026-11-27T10:00:00Z", "payload": {}
    }))
    .expect("serialises");
    publish(&app, &[b"\x00not json".to_vec(), unknown_type]).await;
    publish_as(&app, Some(shared_events::CHECKPOINT_TYPE), &[br#"{"closedThrough":"soon"}"#.to_vec()]).await;
    publish(&app, &[envelope(good, 1, "Placed", "after-poison")]).await;
    eventually(Duration::from_secs(20), || async { view(&app, good).await }).await;

    let reasons = dead_letter_reasons(&app, 3).await;
    assert!(reasons[0].contains("not an event envelope"), "{reasons:?}");
    assert!(reasons[1].contains("OrderTeleported"), "{reasons:?}");
    assert_eq!(reasons[2], "malformed checkpoint");
    app.stop().await;
}

/// The `x-dead-letter-reason` of the first `count` messages in the test's dead-letter queue.
async fn dead_letter_reasons(app: &TestApp, count: usize) -> Vec<String> {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let dlq = format!("{}.dlq", app.names.queue);
    let mut consumer = channel
        .basic_consume(
            dlq.as_str().into(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            Default::default(),
        )
        .await
        .expect("consume dlq");
    let mut reasons = Vec::new();
    for _ in 0..count {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("a dead letter arrives")
            .expect("stream open")
            .expect("delivery");
        let headers = delivery.properties.headers().clone().expect("dead letters carry headers");
        let reason = match headers.inner().get("x-dead-letter-reason") {
            Some(lapin::types::AMQPValue::LongString(reason)) => {
                String::from_utf8_lossy(reason.as_bytes()).into_owned()
            }
            other => panic!("dead letter without a reason: {other:?}"),
        };
        reasons.push(reason);
    }
    let _ = connection.close(200, "done".into()).await;
    reasons
}

#[tokio::test]
async fn a_view_write_mongodb_keeps_refusing_is_dead_lettered_and_later_events_go_on() {
    let app = TestApp::spawn().await;
    // A unique index on the customer makes MongoDB refuse the second view of one customer, however often it is
    // retried: that event must end in the dead-letter queue with the error, not hold back every event behind it.
    let unique = mongodb::IndexModel::builder()
        .keys(mongodb::bson::doc! { "customerId": 1 })
        .options(mongodb::options::IndexOptions::builder().unique(true).build())
        .build();
    app.mongo.collection::<mongodb::bson::Document>("order_views").create_index(unique).await.expect("index");
    let (first, second, later) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    publish(&app, &[envelope(first, 1, "Placed", "same"), envelope(second, 1, "Placed", "same")]).await;
    publish(&app, &[envelope(later, 1, "Placed", "someone-else")]).await;
    eventually(Duration::from_secs(30), || async { view(&app, later).await }).await;
    assert!(view(&app, first).await.is_some());
    assert!(view(&app, second).await.is_none());
    let reasons = dead_letter_reasons(&app, 1).await;
    assert!(reasons[0].contains("11000"), "the reason is MongoDB's error: {reasons:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_customers_reads_name_only_the_gaps_that_could_hold_their_orders() {
    let app = TestApp::spawn().await;
    // From a newer writer (schema v99): at 1 an event that still says whose it is (cust-b), at 4 one that does not.
    let newer = |sequence: i64, payload: serde_json::Value| {
        serde_json::to_vec(&json!({
            "eventId": Uuid::now_v7(), "eventType": "OrderPlaced", "schemaVersion": 99, "orderId": Uuid::now_v7(),
            "version": 1, "sequence": sequence, "occurredAt": "2026-11-27T10:00:00Z", "payload": payload
        }))
        .expect("serialises")
    };
    let (b_placed, a_placed) =
        (envelope_at(2, Uuid::now_v7(), 1, "Placed", "cust-b"), envelope_at(3, Uuid::now_v7(), 1, "Placed", "cust-a"));
    let whose = newer(1, json!({"customerId": "cust-b", "future": true}));
    publish(&app, &[whose, b_placed, a_placed, newer(4, json!({"future": true}))]).await;
    publish_as(&app, Some(shared_events::CHECKPOINT_TYPE), &[br#"{"closedThrough":4}"#.to_vec()]).await;

    let missing = |path: String| {
        let url = app.query_url(&path);
        let http = app.http.clone();
        async move {
            let body: serde_json::Value = http.get(url).send().await.expect("GET").json().await.expect("json");
            body["metadata"]["missingPositions"].clone()
        }
    };
    for (customer, gaps) in [("cust-a", json!([4])), ("cust-b", json!([1, 4]))] {
        let list = missing(format!("/queries/orders?customerId={customer}&minPosition=4&waitMs=20000")).await;
        assert_eq!(list, gaps, "the list of {customer}");
        let summary = missing(format!("/queries/customers/{customer}/summary?minPosition=4&waitMs=20000")).await;
        assert_eq!(summary, gaps, "the summary of {customer}");
    }
    assert_eq!(missing("/queries/orders?minPosition=4&waitMs=20000".to_owned()).await, json!([1, 4]), "unfiltered");
    app.stop().await;
}

#[tokio::test]
async fn a_list_read_whose_range_holds_a_dead_lettered_event_names_the_missing_position() {
    let app = TestApp::spawn().await;
    let order = Uuid::now_v7();
    // Version 1 comes from a newer writer (schema v99, which this projector cannot read) at sequence 1; version 2
    // of the same order is readable, at sequence 2; then a checkpoint covers both.
    let newer = serde_json::to_vec(&json!({
        "eventId": Uuid::now_v7(), "eventType": "OrderPlaced", "schemaVersion": 99, "orderId": order,
        "version": 1, "sequence": 1, "occurredAt": "2026-11-27T10:00:00Z", "payload": {"future": true}
    }))
    .expect("serialises");
    publish(&app, &[newer, envelope(order, 2, "Confirmed", "gappy")]).await;
    publish_as(&app, Some(shared_events::CHECKPOINT_TYPE), &[br#"{"closedThrough":2}"#.to_vec()]).await;
    // The dead letter does not hold back the order's later event.
    eventually(Duration::from_secs(20), || async {
        view(&app, order).await.filter(|v| v.get_i64("version").ok() == Some(2))
    })
    .await;

    let url = app.query_url("/queries/orders?customerId=gappy&minPosition=2&waitMs=10000");
    let list = app.http.get(url).send().await.expect("GET answers");
    assert_eq!(list.status(), 200);
    let list: serde_json::Value = list.json().await.expect("json");
    assert_eq!(list["metadata"]["position"], 2, "{list}");
    assert_eq!(list["metadata"]["missingPositions"], json!([1]), "the read says what it cannot hold: {list}");

    // Once the event is handled after all (redriven after an upgrade, say), the gap closes.
    publish(&app, &[envelope(order, 1, "Placed", "gappy")]).await;
    let url = app.query_url("/queries/orders?customerId=gappy&minPosition=2&waitMs=0");
    eventually(Duration::from_secs(20), || async {
        let list: serde_json::Value = app.http.get(&url).send().await.ok()?.json().await.ok()?;
        (list["metadata"]["missingPositions"] == json!([])).then_some(())
    })
    .await;
    app.stop().await;
}

/// In the steady state the read store takes one write command per projector batch, in each projection: its
/// documents' `update`. Each read model's position is stored at most about once a second (and before the batches
/// that carry it are acked), not once per batch.
#[tokio::test]
async fn the_steady_state_costs_one_write_command_per_projector_batch() {
    const ORDERS: usize = 30;
    let app = TestApp::spawn().await;
    // Warm: every read model has stored its first position (before announcing it), which is no steady state.
    let warm = app.place_order_answer("cust-warm").await["position"].as_i64().expect("position");
    let today = time::OffsetDateTime::now_utc().date();
    for path in [
        format!("/queries/customers/cust-warm/summary?minPosition={warm}&waitMs=5000"),
        format!("/queries/dashboard/daily?from={today}&to={today}&minPosition={warm}&waitMs=5000"),
        format!("/queries/orders?customerId=cust-warm&minPosition={warm}&waitMs=5000"),
    ] {
        assert_eq!(app.http.get(app.query_url(&path)).send().await.expect("GET").status(), 200, "{path}");
    }
    let counters = async || {
        let text =
            app.http.get(app.query_url("/metrics")).send().await.expect("GET /metrics").text().await.expect("text");
        // Summed over the lines that start so (the projections' labels follow the name).
        let sample = |name: &str| -> f64 {
            text.lines()
                .filter_map(|line| line.strip_prefix(name))
                .filter_map(|rest| rest.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        (sample("mongodb_commands_total{command=\"update\"}"), sample("projector_batch_views_count{"))
    };
    let (updates_before, batches_before) = counters().await;
    let started = std::time::Instant::now();
    // One order at a time, each read back at its version: a batch (and a checkpoint) per order in the order views.
    let mut last = warm;
    for n in 0..ORDERS {
        let placed = app.place_order_answer(&format!("cust-steady-{n}")).await;
        let (id, version) =
            (placed["orderId"].as_str().expect("id"), placed["sequenceId"].as_i64().expect("sequenceId"));
        last = placed["position"].as_i64().expect("position");
        let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=5000"));
        assert_eq!(app.http.get(url).send().await.expect("GET").status(), 200);
    }
    // The other read models reach the last order too (in batches of one order or more).
    for path in [
        format!("/queries/customers/cust-warm/summary?minPosition={last}&waitMs=20000"),
        format!("/queries/dashboard/daily?from={today}&to={today}&minPosition={last}&waitMs=20000"),
    ] {
        assert_eq!(app.http.get(app.query_url(&path)).send().await.expect("GET").status(), 200, "{path}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let projections = query_service::projection::ALL.len() as f64;
    let (updates, batches) = counters().await;
    let (updates, batches) = (updates - updates_before, batches - batches_before);
    assert!(batches >= ORDERS as f64, "a batch per order in the order views at least: {batches}");
    // The positions' writes: at most one a second per read model, plus the one that settles the run's tail.
    let allowed = batches + projections * (seconds.ceil() + 1.0);
    assert!(
        updates <= allowed,
        "{updates} update commands for {batches} batches in {seconds:.1} s (at most {allowed})"
    );
    app.stop().await;
}

/// The projector's queues are quorum queues by default. One that exists already as a classic queue (created by an
/// earlier version) cannot be redeclared: the projector reports it, leaves it as it is and does not consume — it does
/// not retry the refused declaration in a loop — and readiness names it.
#[tokio::test]
async fn a_projector_queue_that_exists_as_classic_is_reported_and_left_as_it_is() {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable};

    let names = crate::helpers::Names::new("test");
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let mut classic = FieldTable::default();
    classic.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    channel.queue_declare(names.queue.as_str().into(), durable, classic.clone()).await.expect("a classic queue");

    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &crate::helpers::mongodb_uri(), true).await;
    let ready = app.query_url("/health/ready");
    let body: serde_json::Value = eventually(Duration::from_secs(20), || async {
        let response = app.http.get(ready.clone()).send().await.expect("GET /health/ready");
        (response.status() == 503).then_some(())?;
        let body: serde_json::Value = response.json().await.expect("json");
        (body["checks"]["projector"] != "up").then_some(body)
    })
    .await;
    assert_eq!(body["checks"]["rabbitmq"], "up", "{body}");
    // An order's event reaches every read model's queue: the customer summary projects it, which shows the
    // projectors of this replica at work; the order views' classic queue keeps it, for as long as they run.
    let (order, position) = app.place_order("classic").await;
    let summary = app.query_url(&format!("/queries/customers/classic/summary?minPosition={position}&waitMs=1000"));
    eventually(Duration::from_secs(30), || async {
        let response = app.http.get(summary.clone()).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let view = app.query_url(&format!("/queries/orders/{order}"));
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(5) {
        let response = app.http.get(view.clone()).send().await.expect("GET the order");
        assert_ne!(response.status(), 200, "the order views projected from the classic queue");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Still the classic queue: declaring it exactly as it was created succeeds; it holds the event, unconsumed.
    let queue = channel.queue_declare(names.queue.as_str().into(), durable, classic).await.expect("still classic");
    assert_eq!(queue.consumer_count(), 0);
    assert!(queue.message_count() >= 1, "the event left the classic queue");
    let status: serde_json::Value = app.get_json(app.query_url("/queries/_status")).await;
    assert_eq!(status["projector"]["consuming"], false, "{status}");
    let _ = connection.close(200, "test done".into()).await;
    app.stop().await;
}

/// `AMQP_URL` may list a cluster's nodes: every client (relay, projector, notice listener, readiness) connects to the
/// first that answers. Here the first node listed is down for good; orders still reach their views, read at once.
#[tokio::test]
async fn with_the_first_node_of_amqp_url_down_every_client_connects_to_the_next() {
    let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", crate::helpers::free_port());
    let nodes = format!("{down},{}", amqp_url());
    let app = TestApp::spawn_tuned(
        crate::helpers::Names::new("test"),
        &amqp_url(),
        &crate::helpers::mongodb_uri(),
        |command| command.amqp_url = nodes.clone(),
        |query, _| query.amqp_url = nodes.clone(),
    )
    .await;
    for n in 0..5 {
        let (id, version) = app.place_order(&format!("cust-nodes-{n}")).await;
        let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=10000"));
        assert_eq!(app.http.get(url).send().await.expect("GET").status(), 200, "order {n}");
    }
    for url in [app.command_url("/health/ready"), app.query_url("/health/ready")] {
        let ready = eventually(Duration::from_secs(20), || async {
            let response = app.http.get(url.clone()).send().await.expect("GET /health/ready");
            (response.status() == 200).then_some(())
        });
        ready.await;
    }
    app.stop().await;
}

/// A dead letter must reach the dead-letter queue before its original is acked: with the `.dlq` gone (deleted by
/// hand just before the poison comes; the projector declares it again within seconds), it is kept — the original
/// stays unacked and comes back — until the queue is there again, not dropped by the broker.
#[tokio::test]
async fn a_dead_letter_is_not_lost_while_the_dead_letter_queue_is_missing() {
    let app = TestApp::spawn().await;
    let dlq = format!("{}.dlq", app.names.queue);
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    channel.queue_delete(dlq.as_str().into(), Default::default()).await.expect("deleted");
    publish(&app, &[b"\x00poison while the dead letters have no queue".to_vec()]).await;
    let _ = connection.close(200, "done".into()).await;
    crate::helpers::wait_for_queue(&amqp_url(), &dlq).await;
    let reasons = dead_letter_reasons(&app, 1).await;
    assert!(reasons[0].contains("not an event envelope"), "{reasons:?}");
    app.stop().await;
}
