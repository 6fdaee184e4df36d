//! Blue-green rebuilds of the read model from the event log, rollback, mixed schema versions, and the admin token.

use futures_util::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use crate::helpers::{amqp_url, command_config, eventually, mongodb_uri, query_config, Names, TestApp, ADMIN_TOKEN};
use crate::proxies::{bson_field, mongodb_address, through, Proxy};

const STATUS: &str = "/admin/read-models/orders";

impl TestApp {
    async fn read_model(&self) -> Value {
        let response = self.admin(reqwest::Method::GET, STATUS).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Starts a rebuild and waits until reads have switched to its generation; returns the generation's name.
    async fn rebuild(&self) -> String {
        let response = self.admin(reqwest::Method::POST, "/admin/read-models/orders/rebuild").await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        assert_eq!(response.headers()["location"], STATUS);
        let started: Value = response.json().await.expect("json");
        let generation = started["generation"].as_str().expect("generation").to_owned();
        eventually(Duration::from_secs(120), || async {
            let status = self.read_model().await;
            (status["active"] == generation.as_str() && status["building"].is_null()).then_some(())
        })
        .await;
        generation
    }

    /// Waits until every event committed so far has been applied (the list read at the newest position).
    async fn caught_up(&self) {
        let head: i64 = sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox")
            .fetch_one(&self.pool)
            .await
            .expect("head");
        // How soon is the benchmarks' business (the stand-in of the read store is slow): here only that it does.
        let url = self.query_url(&format!("/queries/orders?limit=1&minPosition={head}&waitMs=30000"));
        eventually(Duration::from_secs(180), || async {
            (self.http.get(&url).send().await.ok()?.status() == 200).then_some(())
        })
        .await;
    }

    /// Every view document of a generation, by order id.
    async fn generation_views(&self, generation: &str) -> HashMap<String, Document> {
        let docs: Vec<Document> = self
            .mongo
            .collection::<Document>(generation)
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("collect");
        docs.into_iter().map(|d| (d.get_str("_id").expect("_id").to_owned(), d)).collect()
    }

    /// Removes a field from every view of a generation, as if the views had been written before it existed.
    async fn forget_field(&self, generation: &str, field: &str) {
        let unset = doc! { "$unset": { field: "" } };
        self.mongo.collection::<Document>(generation).update_many(doc! {}, unset).await.expect("unset");
    }
}

async fn command(app: &TestApp, id: &str, action: &str, body: Value) -> Value {
    let url = app.command_url(&format!("/commands/orders/{id}/{action}"));
    let response = app.http.post(url).json(&body).send().await.expect("command");
    assert_eq!(response.status(), 200, "{action}: {:?}", response.text().await);
    response.json().await.expect("json")
}

/// Places `count` orders, 16 at a time, and walks them through mixed lifecycles.
async fn place_mixed(app: &TestApp, count: usize) {
    futures_util::stream::iter(0..count)
        .for_each_concurrent(16, |i| async move {
            let placed = app.place_order_answer(&format!("cust-{}", i % 50)).await;
            let id = placed["orderId"].as_str().expect("id").to_owned();
            match i % 4 {
                0 => drop(command(app, &id, "confirm", json!({})).await),
                1 => {
                    command(app, &id, "confirm", json!({"expectedVersion": 1})).await;
                    command(app, &id, "ship", json!({})).await;
                }
                2 => drop(command(app, &id, "cancel", json!({"reason": format!("changed mind {i}")})).await),
                _ => {}
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_reproduces_every_view_while_orders_keep_arriving_and_reads_never_go_back() {
    // The order views alone: 2,000 orders through three projections would triple what the one-process read store
    // has to write before the rebuild even starts.
    let orders_only = |query: &mut query_service::config::Config, _| {
        query.projections = vec![query_service::projection::named("orders").expect("the order views")];
    };
    let app = TestApp::spawn_tuned(Names::new("test"), &amqp_url(), &mongodb_uri(), |_| {}, orders_only).await;
    let started = std::time::Instant::now();
    place_mixed(&app, 2_000).await;
    app.caught_up().await;
    eprintln!("2000 orders with mixed lifecycles placed and projected in {:.1} s", started.elapsed().as_secs_f64());
    let before = app.generation_views("order_views").await;
    assert_eq!(before.len(), 2_000);
    // Views written before `customerSegment` existed: the rebuild delivers it, no migration script.
    app.forget_field("order_views", "customerSegment").await;

    // 50 orders/s keep arriving during the rebuild; each is read with minVersion right after its POST (and after a
    // confirm), and a reader checks that no version it has seen ever goes back.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (app, stop) = (&app, stop.clone());
        async move {
            let mut placed: Vec<(String, i64)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let answer = app.place_order_answer("cust-during-rebuild").await;
                let id = answer["orderId"].as_str().expect("id").to_owned();
                let mut version = answer["sequenceId"].as_i64().expect("version");
                if n % 5 == 0 {
                    version = command(app, &id, "confirm", json!({})).await["sequenceId"].as_i64().expect("version");
                }
                // How soon it catches up is the benchmarks' business; here only that it does, so wait long.
                let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=30000"));
                let read = app.http.get(url).send().await.expect("GET");
                assert_eq!(read.status(), 200, "order {n} read during the rebuild");
                placed.push((id, version));
                n += 1;
            }
            placed
        }
    };
    let reader = {
        let (app, stop) = (&app, stop.clone());
        let sample: Vec<(String, i64)> =
            before.iter().take(50).map(|(id, view)| (id.clone(), view.get_i64("version").expect("version"))).collect();
        async move {
            let mut reads = 0;
            // A sweep over the sample every 100 ms: a steady reader, not a flood of the read store.
            let mut sweep = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                sweep.tick().await;
                for (id, seen) in &sample {
                    let body: Value = app
                        .http
                        .get(app.query_url(&format!("/queries/orders/{id}")))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    assert!(body["metadata"]["version"].as_i64()? >= *seen, "order {id} went back in version");
                    reads += 1;
                }
            }
            Some(reads)
        }
    };
    let rebuild = async {
        let started = std::time::Instant::now();
        let generation = app.rebuild().await;
        eprintln!("rebuild started and switched in {:.1} s", started.elapsed().as_secs_f64());
        // Keep the load on a moment after the switch too.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        generation
    };
    let (placed, reads, generation) = tokio::join!(load, reader, rebuild);
    assert!(placed.len() > 10, "orders kept arriving: {}", placed.len());
    eprintln!("{} orders placed and read at their version during the rebuild", placed.len());
    assert!(reads.expect("the reader ran") > 0);
    app.caught_up().await;

    let after = app.generation_views(&generation).await;
    assert_eq!(after.len(), 2_000 + placed.len(), "every order has a view in the new generation");
    for (id, old) in &before {
        let mut new = after[id].clone();
        assert_eq!(new.remove("customerSegment"), Some("standard".into()), "{id}: the new field is delivered");
        let mut old = old.clone();
        old.remove("customerSegment");
        assert_eq!(&new, &old, "{id}: field for field");
    }
    for (id, version) in &placed {
        assert_eq!(after[id].get_i64("version").expect("version"), *version, "{id}");
        let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=0"));
        assert_eq!(app.http.get(url).send().await.expect("GET").status(), 200);
    }
    let status = app.read_model().await;
    assert_eq!(status["previous"], json!(["order_views"]));
    assert_eq!(status["generations"][0]["views"], 2_000 + placed.len());
    app.stop().await;
}

/// Both services with a read store behind `proxy`, and 20 orders projected; returns the views.
async fn spawn_behind(proxy: &Proxy) -> (TestApp, HashMap<String, Document>) {
    let app = TestApp::spawn_with(Names::new("test"), &amqp_url(), &through(&mongodb_uri(), proxy), true).await;
    for n in 0..20 {
        app.place_order(&format!("cust-lost-{n}")).await;
    }
    app.caught_up().await;
    let views = app.generation_views("order_views").await;
    assert_eq!(views.len(), 20);
    (app, views)
}

#[tokio::test]
async fn a_rebuild_goes_on_when_the_read_store_loses_the_answer_to_a_page() {
    // The replay's first page reaches MongoDB but its answer never comes back: the call times out, as when the
    // store stalls for longer than one operation may take.
    let proxy =
        Proxy::losing_the_answer_to(mongodb_address(&mongodb_uri()), bson_field("insert", "order_views_v1")).await;
    let (app, before) = spawn_behind(&proxy).await;
    let generation = app.rebuild().await;
    assert!(proxy.lost_an_answer(), "the page's answer was lost");
    let after = app.generation_views(&generation).await;
    assert_eq!(after.len(), before.len(), "every view");
    assert!(after == before, "every view, field for field");
    app.stop().await;
}

#[tokio::test]
async fn a_switch_whose_answer_is_lost_keeps_the_generation_it_switched_to() {
    // The switch reaches MongoDB but its answer never comes back: the pointer names the new generation active.
    let generation = "order_views_v1";
    let proxy = Proxy::losing_the_answer_to(mongodb_address(&mongodb_uri()), bson_field("active", generation)).await;
    let (mut app, before) = spawn_behind(&proxy).await;
    assert_eq!(app.rebuild().await, generation);
    assert!(proxy.lost_an_answer(), "the switch's answer was lost");
    // Whatever the rebuild made of it, it has finished once the service has stopped.
    app.stop_services().await;
    let after = app.generation_views(generation).await;
    assert_eq!(after.len(), before.len(), "the active generation keeps every view");
    assert!(after == before, "every view, field for field");
    app.stop().await;
}

#[tokio::test]
async fn rollback_returns_reads_to_the_previous_generation_caught_up_from_the_log() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.place_order(&format!("cust-roll-{i}")).await.0);
    }
    app.caught_up().await;
    // Mark the first generation: its views lack the segment, the rebuilt ones have it.
    app.forget_field("order_views", "customerSegment").await;
    async fn segment(app: &TestApp, id: Uuid) -> Value {
        let url = app.query_url(&format!("/queries/orders/{id}"));
        let body: Value = app.http.get(url).send().await.expect("GET").json().await.expect("json");
        body["data"]["customerSegment"].clone()
    }
    assert_eq!(segment(&app, ids[0]).await, Value::Null);
    let rebuilt = app.rebuild().await;
    assert_eq!(segment(&app, ids[0]).await, "standard");

    // Written after the switch: only the active generation takes it (one write per event); the previous one does
    // not, until a rollback catches it up from the log.
    let (late, _) = app.place_order("cust-roll-late").await;
    app.http.post(app.command_url(&format!("/commands/orders/{late}/confirm"))).send().await.expect("confirm");
    app.caught_up().await;
    let resting = app.generation_views("order_views").await;
    assert_eq!(resting.len(), 20, "the previous generation takes no live writes");
    assert!(!resting.contains_key(&late.to_string()));

    let response = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert_eq!(response.status(), 202, "a rollback is a job");
    assert_eq!(response.headers()["location"], STATUS);
    let started: Value = response.json().await.expect("json");
    assert_eq!(started, json!({"generation": "order_views", "status": "rolling back", "progress": STATUS}));
    let again = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert_eq!(again.status(), 409, "one rollback at a time");
    eventually(Duration::from_secs(60), || async {
        let status = app.read_model().await;
        (status["active"] == "order_views" && status["rejoining"].is_null()).then_some(status)
    })
    .await;
    let status = app.read_model().await;
    assert_eq!((&status["active"], &status["previous"]), (&json!("order_views"), &json!([rebuilt])));
    // Reads follow the pointer at once in this process (it re-reads the pointer it changed).
    assert_eq!(segment(&app, ids[0]).await, Value::Null, "served from the previous generation");
    let old = app.generation_views("order_views").await;
    let new = app.generation_views(&rebuilt).await;
    assert_eq!(old.len(), 21);
    assert_eq!(old[&late.to_string()].get_i64("version").expect("version"), 2, "caught up by the rollback");
    for (id, view) in &old {
        let mut rebuilt_view = new[id].clone();
        if id != &late.to_string() {
            rebuilt_view.remove("customerSegment");
        }
        assert_eq!(view, &rebuilt_view, "{id}");
    }
    let read = app.http.get(app.query_url(&format!("/queries/orders/{late}?minVersion=2&waitMs=0"))).send().await;
    assert_eq!(read.expect("GET").status(), 200);

    // A second rollback rolls forward, catching the rebuilt generation up with what it missed meanwhile; with one
    // previous generation there is always one to go back to.
    app.http.post(app.command_url(&format!("/commands/orders/{late}/ship"))).send().await.expect("ship");
    app.caught_up().await;
    assert_eq!(app.generation_views(&rebuilt).await[&late.to_string()].get_i64("version").expect("version"), 2);
    roll_back_to(&app, &rebuilt).await;
    assert_eq!(segment(&app, ids[0]).await, "standard");
    let forward = app.generation_views(&rebuilt).await;
    assert_eq!(forward[&late.to_string()].get_i64("version").expect("version"), 3, "caught up again");
    assert_eq!(forward[&late.to_string()].get_str("status").expect("status"), "Shipped");
    app.stop().await;
}

#[tokio::test]
async fn a_log_mixing_v1_and_v2_events_rebuilds_to_the_same_views_as_an_all_v2_log() {
    let app = TestApp::spawn().await;
    place_mixed(&app, 40).await;
    app.caught_up().await;
    let all_v2 = app.rebuild().await;
    let expected = app.generation_views(&all_v2).await;
    let v2: i64 = sqlx::query_scalar("select count(*) from outbox where schema_version = 2")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert!(v2 >= 40);

    // Rewrite every other event as schema v1 wrote it: `customerId` instead of `customer`.
    let rewritten = sqlx::query(
        "update outbox set schema_version = 1,
                payload = (payload - 'customer') || jsonb_build_object('customerId', payload->'customer'->>'id')
         where sequence % 2 = 0",
    )
    .execute(&app.pool)
    .await
    .expect("rewrite")
    .rows_affected();
    assert!(rewritten as i64 >= v2 / 2 - 1, "{rewritten} of {v2}");
    let mixed = app.rebuild().await;
    let rebuilt = app.generation_views(&mixed).await;
    assert_eq!(rebuilt.len(), 40);
    for (id, view) in &expected {
        assert_eq!(&rebuilt[id], view, "{id}");
    }
    app.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_vanish_without_one() {
    let app = TestApp::spawn().await;
    let endpoints = [
        (reqwest::Method::GET, app.command_url("/events?after=0&limit=10")),
        (reqwest::Method::GET, app.query_url(STATUS)),
        (reqwest::Method::POST, app.query_url("/admin/read-models/orders/rollback")),
        (reqwest::Method::POST, app.query_url("/admin/read-models/orders/rebuild")),
        (reqwest::Method::GET, app.query_url("/admin/projector/slowdown")),
        (reqwest::Method::POST, app.query_url("/admin/projector/slowdown?delayMs=1000")),
    ];
    for (method, url) in &endpoints {
        for token in [None, Some("wrong"), Some("test-admin-token-but-longer")] {
            let mut request = app.http.request(method.clone(), url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("answers");
            assert_eq!(response.status(), 401, "{method} {url} with {token:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
        }
    }
    // With the right token: the feed, the status, and a rollback with nothing to roll back to (409).
    let (id, _) = app.place_order("cust-admin").await;
    let feed = app.http.get(&endpoints[0].1).bearer_auth(ADMIN_TOKEN).send().await.expect("feed");
    assert_eq!(feed.status(), 200);
    let feed: Value = feed.json().await.expect("json");
    assert_eq!(feed["data"][0]["orderId"], id.to_string());
    assert_eq!(feed["data"][0]["eventType"], "OrderPlaced");
    assert_eq!(feed["data"][0]["schemaVersion"], 2);
    assert_eq!(feed["metadata"]["nextAfter"], feed["data"][0]["sequence"]);
    assert_eq!(app.admin(reqwest::Method::GET, STATUS).await.status(), 200);
    let rollback = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert_eq!(rollback.status(), 409);
    for bad in ["after=-1", "limit=0", "limit=5001", "after=x"] {
        let url = app.command_url(&format!("/events?{bad}"));
        let response = app.http.get(url).bearer_auth(ADMIN_TOKEN).send().await.expect("feed");
        assert_eq!(response.status(), 400, "{bad}");
    }

    // The same services without a token: the admin endpoints do not exist.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut config = command_config(&app.names, &amqp_url());
    config.admin_token = None;
    config.relay_enabled = false;
    let command = command_service::run::start(config, shutdown.clone()).await.expect("starts");
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    config.admin_token = None;
    config.projector_enabled = false;
    let query = query_service::run::start(config, shutdown.clone()).await.expect("starts");
    for (method, url) in [
        (reqwest::Method::GET, format!("http://{}/events", command.addr)),
        (reqwest::Method::GET, format!("http://{}{STATUS}", query.addr)),
        (reqwest::Method::POST, format!("http://{}/admin/read-models/orders/rebuild", query.addr)),
        (reqwest::Method::POST, format!("http://{}/admin/projector/slowdown?delayMs=1000", query.addr)),
    ] {
        let response = app.http.request(method.clone(), &url).bearer_auth(ADMIN_TOKEN).send().await.expect("answers");
        assert_eq!(response.status(), 404, "{method} {url}");
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), command.task).await;
    let _ = tokio::time::timeout(Duration::from_secs(15), query.task).await;
    app.stop().await;
}

#[tokio::test]
async fn a_rebuild_whose_builder_died_is_cleared_and_its_generation_dropped() {
    let app = TestApp::spawn().await;
    // A builder that claimed a generation, loaded a view into it, and was killed: its heartbeat stopped a minute ago.
    let then = mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() - 60_000);
    let pointer = mongodb::bson::doc! {
        "_id": "orders", "active": "order_views", "previous": [], "created": 1_i64, "revision": 1_i64,
        "building": { "name": "order_views_v1", "startedAt": then, "heartbeatAt": then, "replayed": 0_i64, "total": 9_i64 },
    };
    app.mongo.collection::<Document>("read_model_generations").insert_one(pointer).await.expect("pointer");
    app.mongo
        .collection::<Document>("order_views_v1")
        .insert_one(mongodb::bson::doc! {"_id": "x"})
        .await
        .expect("view");

    // A janitor hears its last beat for `BUILD_STALE_AFTER` before it gives the build up; a later round drops it.
    eventually(Duration::from_secs(90), || async {
        let status = app.read_model().await;
        let names = app.mongo.list_collection_names().await.ok()?;
        (status["building"].is_null() && !names.iter().any(|n| n == "order_views_v1")).then_some(())
    })
    .await;
    app.stop().await;
}

/// A generation the pointer gave up (a switch let it go, a rebuild was given up) that a write already on its way
/// created again after it was dropped: the store would keep it for ever, unnamed. It is dropped again; the
/// generations the pointer names are kept.
#[tokio::test]
async fn a_given_up_generation_created_again_by_a_late_write_is_dropped_again() {
    let app = TestApp::spawn().await;
    let pointer = mongodb::bson::doc! {
        "_id": "orders", "active": "order_views_v2", "previous": ["order_views_v1"], "created": 3_i64,
        "revision": 1_i64,
    };
    app.mongo.collection::<Document>("read_model_generations").insert_one(pointer).await.expect("pointer");
    for generation in ["order_views_v1", "order_views_v2", "order_views_v3"] {
        let view = mongodb::bson::doc! { "_id": "x" };
        app.mongo.collection::<Document>(generation).insert_one(view).await.expect("view");
    }

    eventually(Duration::from_secs(60), || async {
        let names = app.mongo.list_collection_names().await.ok()?;
        (!names.iter().any(|n| n == "order_views_v3")).then_some(())
    })
    .await;
    let names = app.mongo.list_collection_names().await.expect("names");
    for kept in ["order_views_v1", "order_views_v2"] {
        assert!(names.iter().any(|n| n == kept), "{kept} is named by the pointer: {names:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rebuild_counts_each_order_once_however_its_events_fall_into_pages() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.place_order(&format!("cust-pages-{n}")).await.0);
    }
    // Placed, placed, placed, then confirmed ×3: in pages of two, two orders have events in two pages each.
    let mut last = 0;
    for id in ids {
        let confirmed = app.http.post(app.command_url(&format!("/commands/orders/{id}/confirm"))).send().await;
        last = confirmed.expect("confirm").json::<Value>().await.expect("json")["position"].as_i64().expect("position");
    }
    let feed = admin_feed(app.command_url("/events")).with_page_size(2);
    let rebuilder = order_views_rebuilder(&app, feed).await;
    let generation = rebuilder.claim().await.expect("claimed");
    let (progress, _) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
    let report = rebuilder.run(&generation, &progress).await.expect("rebuilt");
    assert_eq!((report.events, report.views), (last, 3), "6 events of 3 orders");
    app.stop().await;
}

/// The store loses every generation's documents and the positions while the pointer survives (collections dropped
/// by hand, a restore of some collections and not others). The loss is found out; a rollback to the kept
/// generation, which lost its documents too, would make a generation that lacks events active: it is refused.
#[tokio::test]
async fn a_rollback_after_the_store_lost_every_generation_is_refused() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.place_order(&format!("cust-lost-all-{n}")).await;
    }
    app.caught_up().await;
    app.rebuild().await;
    crate::helpers::lose_documents_and_positions(&app.mongo, &query_service::store::models::ORDER_VIEWS).await;
    // The next position the order views store finds the loss.
    app.place_order("cust-lost-all-after").await;
    let pointers = app.mongo.collection::<Document>("read_model_generations");
    eventually(Duration::from_secs(30), || async {
        let pointer = pointers.find_one(doc! { "_id": "orders" }).await.ok()??;
        pointer.get_array("lacking").is_ok_and(|lacking| !lacking.is_empty()).then_some(())
    })
    .await;

    let response = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert_eq!(response.status(), 409, "{:?}", response.text().await);
    app.stop().await;
}

/// A builder that is alive but was taken for dead (its reports did not land for a while: a read store too busy to
/// answer) and whose rebuild was given up, or replaced by another replica's, must stop at its next report: replaying
/// on into a generation nobody names doubles the load on a store that is already behind, and the janitor drops
/// what it writes over and over.
#[tokio::test]
async fn a_builder_whose_rebuild_was_given_up_stops_at_its_next_report() {
    let app = TestApp::spawn().await;
    for n in 0..4 {
        app.place_order(&format!("cust-given-up-{n}")).await;
    }
    app.caught_up().await;
    let feed = admin_feed(app.command_url("/events")).with_page_size(1);
    let rebuilder = order_views_rebuilder(&app, feed).await;
    let generation = rebuilder.claim().await.expect("claimed");
    // Another replica's janitor gives the rebuild up.
    let pointers = app.mongo.collection::<Document>("read_model_generations");
    pointers.update_one(doc! { "_id": "orders" }, doc! { "$unset": { "building": "" } }).await.expect("given up");

    let (progress, watched) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
    let outcome = rebuilder.run(&generation, &progress).await;
    assert!(outcome.is_err(), "a rebuild nobody names does not switch");
    let stopped_at = watched.borrow().clone();
    assert!(stopped_at.replayed < stopped_at.total, "stopped at its first report: {stopped_at:?}");
    app.stop().await;
}

/// A builder waiting on a page that takes long (the event feed or a busy read store not answering) is alive: it
/// keeps saying so, and is not taken for dead, given up and started again from the start by another replica.
#[tokio::test]
async fn a_builder_waiting_on_a_slow_page_keeps_saying_it_is_alive() {
    let app = TestApp::spawn().await;
    app.place_order("cust-slow-page").await;
    app.caught_up().await;
    // The feed behind a proxy that stops answering once the rebuild has begun.
    let proxy = Proxy::start(app.command_addr).await;
    let feed = admin_feed(format!("http://127.0.0.1:{}/events", proxy.port));
    let rebuilder = order_views_rebuilder(&app, feed).await;
    let generation = rebuilder.claim().await.expect("claimed");
    proxy.go_silent();
    let running = run_in_background(rebuilder, generation);

    let pointers = app.mongo.collection::<Document>("read_model_generations");
    let beat_at = async || {
        let pointer = pointers.find_one(doc! { "_id": "orders" }).await.expect("read").expect("pointer");
        pointer.get_document("building").expect("still building").get_datetime("heartbeatAt").expect("beat").to_owned()
    };
    let claimed_at = beat_at().await;
    // Longer than the step retries' first rounds, shorter than the limit after which a builder counts as dead.
    eventually(Duration::from_secs(20), || async { (beat_at().await > claimed_at).then_some(()) }).await;
    running.abort();
    app.stop().await;
}

/// A read store that keeps failing one step of a rebuild for longer than a step is first tried (a long outage, a
/// store too busy to answer a page in time) while the builder still holds its claim: the builder keeps trying
/// instead of giving up a rebuild nobody else may take over, and finishes once the store answers.
#[tokio::test]
async fn a_rebuild_whose_store_fails_a_page_for_longer_than_a_step_is_tried_finishes_once_it_answers() {
    let app = TestApp::spawn().await;
    for n in 0..4 {
        app.place_order(&format!("cust-outage-{n}")).await;
    }
    app.caught_up().await;
    let before = app.generation_views("order_views").await;
    let proxy =
        Proxy::losing_every_answer_to(mongodb_address(&mongodb_uri()), bson_field("insert", "order_views_v1")).await;
    let rebuilder =
        order_views_rebuilder_at(&app, admin_feed(app.command_url("/events")), &through(&mongodb_uri(), &proxy)).await;
    let generation = rebuilder.claim().await.expect("claimed");
    assert_eq!(generation, "order_views_v1");
    let running = run_in_background(rebuilder, generation);

    // Attempts at loading the page that span more than the time a step is first tried for.
    let within_first_tries =
        query_service::rebuild::STEP_RETRY_FOR.as_secs() / query_service::store::OPERATION_TIMEOUT.as_secs() + 1;
    eventually(Duration::from_secs(90), || async {
        assert!(!running.is_finished(), "the builder gave up after {} lost answers", proxy.answers_lost());
        (proxy.answers_lost() as u64 > within_first_tries).then_some(())
    })
    .await;
    proxy.stop_losing();
    let finished = tokio::time::timeout(Duration::from_secs(60), running).await.expect("finishes").expect("joined");
    assert_eq!(finished, Ok(()));
    assert_eq!(app.read_model().await["active"], "order_views_v1");
    assert!(app.generation_views("order_views_v1").await == before, "every view, field for field");
    app.stop().await;
}

/// A feed that refuses the builder (its token no longer the command-service's) is no outage to wait out: the
/// rebuild fails and says why, instead of holding the claim and retrying for as long as the builder lives.
#[tokio::test]
async fn a_rebuild_whose_feed_refuses_its_token_fails_instead_of_trying_for_ever() {
    let app = TestApp::spawn().await;
    app.place_order("cust-refused").await;
    app.caught_up().await;
    let feed = admin_feed(app.command_url("/events"));
    let generation = order_views_rebuilder(&app, feed).await.claim().await.expect("claimed");
    // The builder's token is not (or no longer) the one the command-service takes.
    let refused =
        query_service::feed::Feed::new(app.command_url("/events"), Some("a-rotated-token".to_owned())).expect("feed");
    let rebuilder = order_views_rebuilder(&app, refused).await;
    let (progress, _) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
    let outcome = tokio::time::timeout(Duration::from_secs(15), rebuilder.run(&generation, &progress))
        .await
        .expect("the rebuild ends without waiting for the feed to change its mind");
    let err = outcome.map(drop).expect_err("no rebuild without the log");
    assert!(err.to_string().contains("401"), "{err}");
    app.stop().await;
}

/// A page cut off on its way (the command-service killed, or the link dropped, while it answered) is no answer: the
/// step is tried again and the rebuild goes on, not given up as if the feed had answered something that is no page.
#[tokio::test]
async fn a_page_cut_off_on_its_way_is_read_again_and_the_rebuild_finishes() {
    let app = TestApp::spawn().await;
    for n in 0..4 {
        app.place_order(&format!("cust-cut-{n}")).await;
    }
    app.caught_up().await;
    let before = app.generation_views("order_views").await;
    let feed = admin_feed(app.command_url("/events"));
    let generation = order_views_rebuilder(&app, feed).await.claim().await.expect("claimed");
    let proxy = Proxy::cutting_answers_short(app.command_addr, 2).await;
    let cut = admin_feed(format!("http://127.0.0.1:{}/events", proxy.port));
    let rebuilder = order_views_rebuilder(&app, cut).await;
    let (progress, _) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
    let outcome = tokio::time::timeout(Duration::from_secs(60), rebuilder.run(&generation, &progress))
        .await
        .expect("the rebuild ends");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(app.read_model().await["active"], generation);
    assert!(app.generation_views(&generation).await == before, "every view, field for field");
    app.stop().await;
}

/// What a step that keeps failing logs says what failed, not only that a request did.
#[tokio::test]
async fn a_feed_that_does_not_answer_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}/events", closed.local_addr().expect("address"));
    drop(closed);
    let feed = query_service::feed::Feed::new(url, None).expect("feed");
    let err = feed.head().await.expect_err("nothing listens there");
    assert!(err.is_transient());
    assert!(err.to_string().to_lowercase().contains("connection refused"), "{err}");
}

/// A live builder whose beats did not reach the store for a while (the store unreachable, from its replica or for
/// everyone) is not taken for dead the moment they land again: a janitor judges a build silent by its own clock, from
/// the beat it first saw, not by how old the last beat that landed is — nor by another replica's clock.
#[tokio::test]
async fn a_live_builder_whose_beats_did_not_land_for_a_while_is_not_taken_for_dead() {
    use query_service::rebuild::JANITOR_INTERVAL;
    let app = TestApp::spawn().await;
    app.place_order("cust-beats-lost").await;
    app.caught_up().await;
    // The builder waits on a feed that does not answer, and reaches the store through a proxy.
    let feed_proxy = Proxy::start(app.command_addr).await;
    let feed = admin_feed(format!("http://127.0.0.1:{}/events", feed_proxy.port));
    let store_proxy = Proxy::start(mongodb_address(&mongodb_uri())).await;
    let rebuilder = order_views_rebuilder_at(&app, feed, &through(&mongodb_uri(), &store_proxy)).await;
    let generation = rebuilder.claim().await.expect("claimed");
    feed_proxy.go_silent();
    let running = run_in_background(rebuilder, generation.clone());

    // Its beats stop landing, and the last that landed is a minute old by the time the janitors look.
    store_proxy.go_silent();
    let pointers = app.mongo.collection::<Document>("read_model_generations");
    let a_minute_ago = mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() - 60_000);
    pointers
        .update_one(doc! { "_id": "orders" }, doc! { "$set": { "building.heartbeatAt": a_minute_ago } })
        .await
        .expect("set back");
    let building = async || {
        let pointer = pointers.find_one(doc! { "_id": "orders" }).await.expect("read").expect("pointer");
        pointer
            .get_document("building")
            .ok()
            .map(|b| (b.get_str("name").map(str::to_owned), b.get_datetime("heartbeatAt").copied()))
    };
    let holds_for = async |window: Duration| {
        let until = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < until {
            let build = building().await;
            assert_eq!(
                build.as_ref().map(|b| b.0.clone()),
                Some(Ok(generation.clone())),
                "the build was taken for dead"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    // Long enough for the app's janitor to look at least once while no beat lands.
    holds_for(JANITOR_INTERVAL + Duration::from_secs(2)).await;
    // The store is reachable again: the beats land, and the build stays the builder's.
    store_proxy.speak_again();
    eventually(Duration::from_secs(20), || async {
        building().await.and_then(|b| b.1.ok()).filter(|beat| *beat > a_minute_ago).map(drop)
    })
    .await;
    holds_for(JANITOR_INTERVAL + Duration::from_secs(2)).await;
    assert!(!running.is_finished(), "the builder still waits on its feed");
    running.abort();
    app.stop().await;
}

/// The store unreachable for everyone for longer than a build may stay silent: a janitor that heard the builder's
/// beat before the outage does not count the outage as silence — it cannot have heard anything meanwhile — so when
/// the store is back it does not take the builder for dead before the builder's next beat lands.
#[tokio::test]
async fn a_store_outage_seen_by_everyone_does_not_get_a_live_builder_taken_for_dead() {
    use query_service::rebuild::JANITOR_INTERVAL;
    use query_service::store::generations::BUILD_STALE_AFTER;
    let app_proxy = Proxy::start(mongodb_address(&mongodb_uri())).await;
    let app = TestApp::spawn_with(Names::new("test"), &amqp_url(), &through(&mongodb_uri(), &app_proxy), true).await;
    app.place_order("cust-outage-for-all").await;
    app.caught_up().await;
    let feed_proxy = Proxy::start(app.command_addr).await;
    let feed = admin_feed(format!("http://127.0.0.1:{}/events", feed_proxy.port));
    let builder_proxy = Proxy::start(mongodb_address(&mongodb_uri())).await;
    let rebuilder = order_views_rebuilder_at(&app, feed, &through(&mongodb_uri(), &builder_proxy)).await;
    let generation = rebuilder.claim().await.expect("claimed");
    feed_proxy.go_silent();
    let running = run_in_background(rebuilder, generation.clone());
    // Read past the proxies.
    let direct = mongodb::Client::with_uri_str(mongodb_uri()).await.expect("mongo").database(&app.names.database);
    let pointers = direct.collection::<Document>("read_model_generations");
    let still_building = async |window: Duration| {
        let until = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < until {
            let pointer = pointers.find_one(doc! { "_id": "orders" }).await.expect("read").expect("pointer");
            let building =
                pointer.get_document("building").ok().and_then(|b| b.get_str("name").ok().map(str::to_owned));
            assert_eq!(building.as_deref(), Some(generation.as_str()), "the build was taken for dead");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    // The store goes away for the builder first: the app's janitor hears its last beat that landed.
    builder_proxy.go_silent();
    still_building(JANITOR_INTERVAL + Duration::from_secs(1)).await;
    // Then for everyone, for longer than a build may stay silent; it comes back for the janitor first, and the
    // builder's next beat lands a while after the janitor's first look.
    app_proxy.go_silent();
    still_building(BUILD_STALE_AFTER + Duration::from_secs(5)).await;
    app_proxy.speak_again();
    // Once the app reaches the store again (its driver reconnects), its janitor looks within an interval.
    let status = app.query_url(STATUS);
    eventually(Duration::from_secs(60), || async {
        let answer = app.http.get(&status).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    still_building(JANITOR_INTERVAL + Duration::from_secs(1)).await;
    builder_proxy.speak_again();
    still_building(2 * JANITOR_INTERVAL).await;
    assert!(!running.is_finished(), "the builder still waits on its feed");
    running.abort();
    app.stop().await;
}

/// The generation a rebuild claims has its indexes before the pointer names it: no projector can write to a
/// collection while its indexes are being created on it. (Creating a collection's indexes while a write creates the
/// collection wedges the MongoDB-wire stand-in for good — docs/reliability.md — and on MongoDB it is cheaper too.)
#[tokio::test]
async fn a_generation_has_its_indexes_before_any_process_learns_its_name() {
    let app = TestApp::spawn().await;
    app.place_order("cust-indexed").await;
    app.caught_up().await;
    let feed = admin_feed(app.command_url("/events"));
    let generation = order_views_rebuilder(&app, feed).await.claim().await.expect("claimed");
    let mut indexes = app.mongo.collection::<Document>(&generation).list_index_names().await.unwrap_or_default();
    let mut first = app.mongo.collection::<Document>("order_views").list_index_names().await.expect("indexes");
    indexes.sort();
    first.sort();
    assert!(first.len() > 1, "the first generation's indexes: {first:?}");
    assert_eq!(indexes, first, "the claimed generation's indexes");
    app.stop().await;
}

/// A rebuilder of `app`'s order views that reads the log from `feed`, keeping two generations.
async fn order_views_rebuilder(app: &TestApp, feed: query_service::feed::Feed) -> query_service::rebuild::Rebuilder {
    order_views_rebuilder_at(app, feed, &mongodb_uri()).await
}

/// [`order_views_rebuilder`], reaching the read store at `mongodb_uri` (through a proxy, say).
async fn order_views_rebuilder_at(
    app: &TestApp,
    feed: query_service::feed::Feed,
    mongodb_uri: &str,
) -> query_service::rebuild::Rebuilder {
    let views =
        query_service::store::connect(mongodb_uri, &app.names.database, &Default::default()).await.expect("mongo");
    let orders = query_service::projection::named("orders").expect("the order views");
    query_service::rebuild::Rebuilder::new(orders, views, feed, 2, tokio_util::sync::CancellationToken::new())
}

/// The event feed at `url`, read with the admin token.
fn admin_feed(url: String) -> query_service::feed::Feed {
    query_service::feed::Feed::new(url, Some(ADMIN_TOKEN.to_owned())).expect("feed")
}

/// Runs `rebuilder`'s rebuild of the claimed `generation` in the background; its outcome, the error as text.
fn run_in_background(
    rebuilder: query_service::rebuild::Rebuilder,
    generation: String,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let (progress, _) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
        rebuilder.run(&generation, &progress).await.map(drop).map_err(|err| err.to_string())
    })
}

/// Posts a rollback of the order views and waits until reads are served by `to`.
async fn roll_back_to(app: &TestApp, to: &str) {
    let response = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert!(response.status().is_success(), "{:?}", response.text().await);
    eventually(Duration::from_secs(60), || async {
        let status = app.read_model().await;
        (status["active"] == to && status["rejoining"].is_null()).then_some(())
    })
    .await;
}

/// Gaps belong to the read model, documents to a generation: an event dead-lettered (a gap), the cause fixed, a
/// rebuild (the new generation has the event), a redrive (the event reaches the live generation: its gap closes),
/// then a rollback to the generation that never got it. That generation must hold the event, or a read at its
/// position must name it.
#[tokio::test]
async fn a_rollback_after_a_redrive_makes_active_no_generation_that_lacks_an_event_without_naming_it() {
    let names = Names::new("test");
    let orders_only = |query: &mut query_service::config::Config, _| {
        query.projections = vec![query_service::projection::named("orders").expect("the order views")];
    };
    let app = TestApp::spawn_tuned(names.clone(), &amqp_url(), &mongodb_uri(), |_| {}, orders_only).await;
    // A unique index on the customer: MongoDB refuses the second view of one customer, which is dead-lettered.
    let unique = mongodb::IndexModel::builder()
        .keys(doc! { "customerId": 1 })
        .options(mongodb::options::IndexOptions::builder().unique(true).name("one_per_customer".to_owned()).build())
        .build();
    app.mongo.collection::<Document>("order_views").create_index(unique).await.expect("index");
    app.place_order("twice").await;
    let second = app.place_order_answer("twice").await;
    let (id, position) = (second["orderId"].as_str().expect("id").to_owned(), second["position"].as_i64().expect("p"));
    let gaps = app.mongo.collection::<Document>("read_model_gaps");
    eventually(Duration::from_secs(60), || async { (gaps.count_documents(doc! {}).await.ok()? == 1).then_some(()) })
        .await;

    // The cause is fixed; a rebuild makes a generation that has the event; the dead letter is redriven.
    app.mongo.collection::<Document>("order_views").drop_index("one_per_customer").await.expect("index dropped");
    let rebuilt = app.rebuild().await;
    let settings = crate::helpers::consumer_settings_of(&names, "orders");
    assert_eq!(query_service::projection::redrive(&settings).await.expect("redriven"), 1);
    let list_url = app.query_url(&format!("/queries/orders?customerId=twice&minPosition={position}&waitMs=10000"));
    eventually(Duration::from_secs(30), || async {
        let list: Value = app.http.get(&list_url).send().await.ok()?.json().await.ok()?;
        (list["metadata"]["missingPositions"] == json!([])).then_some(())
    })
    .await;
    assert_ne!(rebuilt, "order_views");

    // Back to the generation that never got the event.
    roll_back_to(&app, "order_views").await;
    let list: Value = app.get_json(&list_url).await;
    let listed = list["data"].as_array().is_some_and(|views| views.iter().any(|v| v["orderId"] == id.as_str()));
    let named = list["metadata"]["missingPositions"].as_array().is_some_and(|m| !m.is_empty());
    assert!(listed || named, "the active generation holds the event or names its position: {list}");
    assert!(listed, "the rollback caught the generation up with the events it lacked: {list}");
    let read = app.http.get(app.query_url(&format!("/queries/orders/{id}?minVersion=1&waitMs=5000"))).send().await;
    assert_eq!(read.expect("GET").status(), 200);
    app.stop().await;
}

/// A rollback catches its generation up from the log before it switches: longer than a client may wait. A client
/// that gives up (or the request timeout) must not leave it half done — the previous generation taking live writes
/// for ever and never made active.
#[tokio::test]
async fn a_rollback_whose_request_is_given_up_still_finishes() {
    let names = Names::new("test");
    let orders_only = |query: &mut query_service::config::Config, _| {
        query.projections = vec![query_service::projection::named("orders").expect("the order views")];
    };
    let app = TestApp::spawn_tuned(names, &amqp_url(), &mongodb_uri(), |_| {}, orders_only).await;
    for n in 0..5 {
        app.place_order(&format!("cust-given-up-{n}")).await;
    }
    app.caught_up().await;
    app.rebuild().await;
    // The client gives up long before the catch-up is done (it waits for every process to re-read the pointer).
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let url = app.query_url("/admin/read-models/orders/rollback");
    let answer = impatient.post(url).bearer_auth(ADMIN_TOKEN).send().await;
    if let Ok(answer) = answer {
        assert_eq!(answer.status(), 202, "a rollback is a job: accepted at once");
        assert_eq!(answer.headers()["location"], STATUS);
    }
    eventually(Duration::from_secs(60), || async {
        let status = app.read_model().await;
        (status["active"] == "order_views" && status["rejoining"].is_null()).then_some(())
    })
    .await;
    app.stop().await;
}

/// A rollback whose process died while it caught its generation up (killed, or stopped before its catch-up ended)
/// does not hold that generation rejoining for ever — written to live, and every later rollback refused as "already
/// rolling back": the janitors give it up once it has been silent as long as a dead builder's, and a rollback can be
/// asked for again.
#[tokio::test]
async fn a_rollback_whose_process_died_is_given_up_and_can_be_asked_for_again() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.place_order(&format!("cust-rollback-died-{n}")).await;
    }
    app.caught_up().await;
    let rebuilt = app.rebuild().await;
    // A process began the rollback, and died before it caught the generation up.
    let views =
        query_service::store::connect(&mongodb_uri(), &app.names.database, &Default::default()).await.expect("mongo");
    let (back, _) = views.generations().begin_rollback().await.expect("begun");
    assert_eq!(back.generation, "order_views");
    drop(views);

    eventually(Duration::from_secs(90), || async { app.read_model().await["rejoining"].is_null().then_some(()) }).await;
    assert_eq!(app.read_model().await["active"], rebuilt, "reads stay on the active generation");
    roll_back_to(&app, "order_views").await;
    app.stop().await;
}

/// A rollback whose rejoining was stopped while it caught up (its beats taken for silence, say) must not finish on a
/// later rollback's rejoining of the same generation: the events logged while no rollback rejoined it reached only
/// the active generation, and the first rollback's catch-up is past them. Its switch would make active a generation
/// that lacks them.
#[tokio::test]
async fn a_rollback_whose_rejoining_was_stopped_does_not_finish_on_another_rollbacks() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.place_order(&format!("cust-two-rollbacks-{n}")).await;
    }
    app.caught_up().await;
    let rebuilt = app.rebuild().await;
    // Rollback A catches the kept generation up through a store that loses the answers to its position reads: it
    // stays at that step.
    let proxy =
        Proxy::losing_every_answer_to(mongodb_address(&mongodb_uri()), bson_field("find", "read_model_positions"))
            .await;
    let a =
        order_views_rebuilder_at(&app, admin_feed(app.command_url("/events")), &through(&mongodb_uri(), &proxy)).await;
    let rollback_a = tokio::spawn(async move { a.roll_back().await.map(drop).map_err(|err| err.to_string()) });
    eventually(Duration::from_secs(30), || async { (proxy.answers_lost() > 0).then_some(()) }).await;

    // A's rejoining is stopped; an order is placed and projected while nothing rejoins; rollback B begins.
    let generations =
        query_service::store::connect(&mongodb_uri(), &app.names.database, &Default::default()).await.expect("mongo");
    let generations = generations.generations().clone();
    let rejoin_a = generations.load().await.expect("pointer").rejoin().expect("A rejoins");
    generations.end_rejoin(&rejoin_a).await.expect("stopped");
    let (missed, _) = app.place_order("cust-two-rollbacks-missed").await;
    app.caught_up().await;
    generations.begin_rollback().await.expect("rollback B begun");

    // A reads its position again, and goes on.
    proxy.stop_losing();
    let _ = tokio::time::timeout(Duration::from_secs(60), rollback_a).await.expect("rollback A ends");
    let active = app.read_model().await["active"].as_str().expect("active").to_owned();
    let views = app.generation_views(&active).await;
    assert!(
        views.contains_key(&missed.to_string()),
        "the active generation {active} (rebuilt: {rebuilt}) lacks an order placed while nothing rejoined"
    );
    app.stop().await;
}

/// One catch-up of a read model at a time: a rebuild's switch would end a rollback's rejoining under it, and a
/// rollback's switch would leave a build catching up a generation the pointer no longer builds on.
#[tokio::test]
async fn a_rebuild_and_a_rollback_of_one_read_model_do_not_run_at_once() {
    let app = TestApp::spawn().await;
    app.place_order("cust-one-at-a-time").await;
    app.caught_up().await;
    app.rebuild().await;
    let views =
        query_service::store::connect(&mongodb_uri(), &app.names.database, &Default::default()).await.expect("mongo");
    let generations = views.generations().clone();

    // A rebuild claimed (its builder alive): a rollback is refused.
    let feed = admin_feed(app.command_url("/events"));
    let building = order_views_rebuilder(&app, feed).await.claim().await.expect("claimed");
    let rollback = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rollback").await;
    assert_eq!(rollback.status(), 409, "{:?}", rollback.text().await);
    assert!(generations.abandon(&building).await.expect("given up"));

    // A rollback rejoining: a rebuild is refused.
    let _rejoining = generations.begin_rollback().await.expect("rollback begun");
    let rebuild = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rebuild").await;
    assert_eq!(rebuild.status(), 409, "{:?}", rebuild.text().await);
    app.stop().await;
}

/// The order views' pointer lost after a rebuild (deleted by hand, a restore of one collection): the pointer made
/// anew names the first generation, which stopped taking writes at the switch. Its store has a position, but that
/// says nothing of a generation that missed every event since: it must not be assumed to hold the log.
#[tokio::test]
async fn a_pointer_lost_after_a_rebuild_does_not_vouch_for_the_generation_the_rebuild_replaced() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.place_order("pointer-lost").await;
    }
    app.caught_up().await;
    app.rebuild().await;
    let mut last = 0;
    for _ in 0..2 {
        last = app.place_order_answer("pointer-lost").await["position"].as_i64().expect("position");
    }
    let url = app.query_url(&format!("/queries/orders?customerId=pointer-lost&minPosition={last}&waitMs=20000"));
    assert_eq!(app.http.get(&url).send().await.expect("GET").status(), 200);

    let pointers = app.mongo.collection::<Document>("read_model_generations");
    pointers.delete_one(doc! { "_id": "orders" }).await.expect("deleted");
    // The pointer is cached for a second: the projector reads it again before the next order.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let last = app.place_order_answer("pointer-lost").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/orders?customerId=pointer-lost&minPosition={last}&waitMs=2000"));
    let listed = eventually(Duration::from_secs(90), || async {
        let response = app.http.get(&url).send().await.ok()?;
        let status = response.status();
        let body: Value = response.json().await.ok()?;
        let listed = body["data"].as_array().map_or(0, Vec::len);
        assert!(status != 200 || listed == 6, "a 200 at the position must list all 6 orders: {body}");
        (status == 200).then_some(listed)
    })
    .await;
    assert_eq!(listed, 6);
    app.stop().await;
}

/// A pointer made anew (the old one lost) counts its generations from 0 again: the next rebuild must not take the
/// name of a generation the store still holds — a builder still running under that name would switch to the other
/// one's half-built collection, and reads would be served from it.
#[tokio::test]
async fn a_rebuild_after_the_pointer_was_lost_takes_a_generation_name_no_collection_has() {
    let app = TestApp::spawn().await;
    app.place_order("renamed").await;
    app.caught_up().await;
    let first = app.rebuild().await;
    let pointers = app.mongo.collection::<Document>("read_model_generations");
    pointers.delete_one(doc! { "_id": "orders" }).await.expect("deleted");
    // Past the pointer's cache.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let response = app.admin(reqwest::Method::POST, "/admin/read-models/orders/rebuild").await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let started: Value = response.json().await.expect("json");
    let second = started["generation"].as_str().expect("generation");
    assert_ne!(second, first, "the name of a collection the store holds");
    app.stop().await;
}
