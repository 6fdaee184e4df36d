//! The read model checks itself against the log: `query-service verify` finds and `--repair` mends views changed
//! behind the projector's back, and the running service's sampler reports them.

use mongodb::bson::{doc, Document};
use serde_json::Value;
use std::time::Duration;

use crate::helpers::{eventually, mongodb_uri, service_binary, Names, TestApp, ADMIN_TOKEN};
use crate::observability::{samples, scrape};

/// `query-service verify` (with `args`) against the test's services: its exit status and its JSON summary.
async fn verify(app: &TestApp, args: &[&str]) -> (bool, Value) {
    verify_split(app, args, 1).await
}

/// [`verify`] of a read model whose projector's queue is split into `partitions`.
async fn verify_split(app: &TestApp, args: &[&str], partitions: u16) -> (bool, Value) {
    let out = run_verify(app, &[&["--projection", "orders"], args].concat(), partitions).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("a JSON summary, got {stdout:?}; {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), summary)
}

/// Runs `query-service verify` (with `args`) against the test's services, their queue split into `partitions`.
pub async fn run_verify(app: &TestApp, args: &[&str], partitions: u16) -> std::process::Output {
    let run = tokio::process::Command::new(service_binary("query-service"))
        .arg("verify")
        .args(args)
        .env("PROJECTOR_PARTITIONS", partitions.to_string())
        .env("MONGODB_URI", mongodb_uri())
        .env("MONGODB_DATABASE", &app.names.database)
        .env("EVENT_FEED_URL", app.command_url("/events"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("verify ends").expect("verify runs")
}

fn counts(summary: &Value) -> [i64; 5] {
    ["checked", "missing", "behind", "diverged", "ahead"].map(|field| summary[field].as_i64().expect(field))
}

#[tokio::test]
async fn verify_finds_and_repair_mends_a_corrupted_a_deleted_and_an_ahead_view_and_the_sampler_reports_them() {
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &crate::helpers::amqp_url(),
        &mongodb_uri(),
        |_| {},
        |query, _| {
            query.read_model_sample_rate = 50.0;
        },
    )
    .await;
    let mut orders = Vec::new();
    for customer in ["c-corrupt", "c-delete", "c-ahead", "c-fine"] {
        orders.push(app.place_order(customer).await);
    }
    let confirm = app.command_url(&format!("/commands/orders/{}/confirm", orders[3].0));
    let confirmed =
        app.http.post(confirm).json(&serde_json::json!({"expectedVersion": 1})).send().await.expect("confirm");
    assert_eq!(confirmed.status(), 200);
    let (last, _) = orders[3];
    let view = app.get_json(app.query_url(&format!("/queries/orders/{last}?minVersion=2"))).await;
    assert_eq!(view["data"]["version"], 2, "{view}");
    for (id, _) in &orders[..3] {
        let view = app.get_json(app.query_url(&format!("/queries/orders/{id}?minVersion=1"))).await;
        assert_eq!(view["data"]["version"], 1, "{view}");
    }
    // Every event projected and below the position: a clean check first.
    eventually(Duration::from_secs(30), || async {
        let status = app.get_json(app.query_url("/queries/_status")).await;
        (status["position"].as_i64() >= orders.iter().map(|o| o.1).max()).then_some(())
    })
    .await;
    let (clean, summary) = verify(&app, &[]).await;
    assert!(clean, "{summary}");
    assert_eq!(counts(&summary), [4, 0, 0, 0, 0], "{summary}");

    let views = app.mongo.collection::<Document>("order_views");
    let before: Vec<Document> = {
        use futures_util::TryStreamExt as _;
        views.find(doc! {}).sort(doc! {"_id": 1}).await.expect("find").try_collect().await.expect("views")
    };
    let id = |n: usize| orders[n].0.to_string();
    views.update_one(doc! {"_id": id(0)}, doc! {"$set": {"total": "0.01"}}).await.expect("corrupt");
    views.delete_one(doc! {"_id": id(1)}).await.expect("delete");
    views.update_one(doc! {"_id": id(2)}, doc! {"$set": {"version": 9_i64}}).await.expect("ahead");
    let mut phantom = before[0].clone();
    phantom.insert("_id", uuid::Uuid::now_v7().to_string());
    views.insert_one(phantom).await.expect("a view the log does not know");

    // The sampler walks the log: the corrupted, the deleted and the ahead view are each reported.
    let metrics = eventually(Duration::from_secs(60), || async {
        let metrics = samples(&scrape(&app, app.query_url("/metrics")).await);
        let found = |kind: &str| metrics.get(&format!("read_model_divergent_total{{kind=\"{kind}\"}}")).copied();
        (["diverged", "missing", "ahead"].iter().all(|kind| found(kind) >= Some(1.0))).then_some(metrics)
    })
    .await;
    assert!(metrics["read_model_checked_total"] >= 3.0);
    assert_eq!(metrics["read_model_divergent_total{kind=\"behind\"}"], 0.0);
    let status = app.get_json(app.query_url("/queries/_status")).await;
    let last = &status["checks"]["lastFinding"];
    assert!(["diverged", "missing", "ahead"].contains(&last["kind"].as_str().unwrap_or_default()), "{status}");
    assert!(orders[..3].iter().any(|(id, _)| last["orderId"] == id.to_string()), "{status}");
    assert_eq!(status["checks"]["ratePerSecond"], 50.0);

    let (clean, summary) = verify(&app, &[]).await;
    assert!(!clean, "findings exit non-zero: {summary}");
    assert_eq!(counts(&summary), [5, 1, 0, 1, 2], "{summary}");
    let (mended, summary) = verify(&app, &["--repair"]).await;
    assert!(mended, "{summary}");
    assert_eq!(summary["repaired"], 4, "{summary}");
    let (clean, summary) = verify(&app, &[]).await;
    assert!(clean, "{summary}");
    assert_eq!(counts(&summary), [4, 0, 0, 0, 0], "{summary}");
    let after: Vec<Document> = {
        use futures_util::TryStreamExt as _;
        views.find(doc! {}).sort(doc! {"_id": 1}).await.expect("find").try_collect().await.expect("views")
    };
    assert_eq!(after, before, "every view is back as the projector wrote it");
    app.stop().await;
}

#[tokio::test]
async fn the_event_feed_gives_one_orders_events_for_checks() {
    let app = TestApp::spawn().await;
    let (first, _) = app.place_order("feed-a").await;
    let (_other, _) = app.place_order("feed-b").await;
    let cancel = app.command_url(&format!("/commands/orders/{first}/cancel"));
    let cancelled =
        app.http.post(cancel).json(&serde_json::json!({"expectedVersion": 1})).send().await.expect("cancel");
    assert_eq!(cancelled.status(), 200);
    let url = app.command_url(&format!("/events?orderId={first}"));
    let page: Value =
        app.http.get(url).bearer_auth(ADMIN_TOKEN).send().await.expect("feed").json().await.expect("json");
    let versions: Vec<(Value, Value)> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| (event["orderId"].clone(), event["version"].clone()))
        .collect();
    let id = Value::from(first.to_string());
    assert_eq!(versions, [(id.clone(), Value::from(1)), (id, Value::from(2))], "{page}");
    let bad =
        app.http.get(app.command_url("/events?orderId=nope")).bearer_auth(ADMIN_TOKEN).send().await.expect("feed");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

#[tokio::test]
async fn verify_of_a_split_queue_reads_the_partitions_position_and_finds_a_deleted_view() {
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &crate::helpers::amqp_url(),
        &mongodb_uri(),
        |command| command.projector_partitions = 2,
        |query, _| query.projector_partitions = 2,
    )
    .await;
    let mut orders = Vec::new();
    for customer in ["c-split-1", "c-split-2", "c-split-3", "c-split-4"] {
        orders.push(app.place_order(customer).await);
    }
    for (id, _) in &orders {
        let view = app.get_json(app.query_url(&format!("/queries/orders/{id}?minVersion=1"))).await;
        assert_eq!(view["data"]["version"], 1, "{view}");
    }
    let views = app.mongo.collection::<Document>("order_views");
    views.delete_one(doc! {"_id": orders[0].0.to_string()}).await.expect("delete");
    // Once the partitions' positions are stored past every event, the deleted view is missing, not in flight.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let (clean, summary) = verify_split(&app, &[], 2).await;
        if !clean && counts(&summary) == [4, 1, 0, 0, 0] {
            break summary;
        }
        assert!(std::time::Instant::now() < until, "the deleted view not found missing within 20 s; last: {summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(summary["inFlight"], 0, "{summary}");
    app.stop().await;
}
