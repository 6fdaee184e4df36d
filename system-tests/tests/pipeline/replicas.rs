//! Several query-service replicas: one projects, every one answers waiting reads at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::helpers::{amqp_url, mongodb_uri, query_config, TestApp};

/// A second replica of the app's query side that does not project, once it has bound its notice queue (it does as
/// it starts; waiting for that keeps what a test measures to notices).
async fn reading_replica(app: &TestApp) -> (query_service::run::Running, CancellationToken) {
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    config.projector_enabled = false;
    let shutdown = CancellationToken::new();
    let reader = query_service::run::start(config, shutdown.clone()).await.expect("second replica starts");
    let mut bound = reader.notices_bound.clone();
    tokio::time::timeout(Duration::from_secs(20), bound.wait_for(|bound| *bound))
        .await
        .expect("the replica binds its notice queue within 20 s")
        .expect("the listener is running");
    (reader, shutdown)
}

#[tokio::test]
async fn a_replica_that_does_not_project_answers_a_waiting_read_in_one_request() {
    let app = TestApp::spawn().await;
    let (reader, shutdown) = reading_replica(&app).await;

    for n in 0..20 {
        let (id, version) = app.place_order(&format!("cust-replica-{n}")).await;
        let url = format!("http://{}/queries/orders/{id}?minVersion={version}&waitMs=5000", reader.addr);
        let response = app.http.get(url).send().await.expect("GET answers");
        assert_eq!(response.status(), 200, "order {n} not readable on the non-projecting replica in one request");
    }
    assert_eq!(reader.waiters.watched_orders(), 0, "finished waits leave nothing behind");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), reader.task).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiting_reads_are_released_by_one_event_and_leave_nothing_behind() {
    const READS: usize = 1_000;
    // Every read comes from this one client (one address): let it hold them all.
    let app = TestApp::spawn_tuned(
        crate::helpers::Names::new("test"),
        &crate::helpers::amqp_url(),
        &crate::helpers::mongodb_uri(),
        |_| {},
        |query, _| query.reads_per_client = READS as u64,
    )
    .await;
    let (id, _) = app.place_order("cust-thousand").await;
    let url = app.query_url(&format!("/queries/orders/{id}?minVersion=1&waitMs=0"));
    crate::helpers::eventually(Duration::from_secs(20), || async {
        (app.http.get(&url).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    // No pooled connections: when the reads are over, their connections (and the server's tasks) are gone.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let url = app.query_url(&format!("/queries/orders/{id}?minVersion=2&waitMs=30000"));
    let reads: Vec<_> = (0..READS).map(|_| tokio::spawn(client.get(&url).send())).collect();
    let waiters = app.waiters.clone();
    crate::helpers::eventually(Duration::from_secs(60), || async { (waiters.waiting_reads() == READS).then_some(()) })
        .await;
    let tasks_waiting = metrics.num_alive_tasks();

    let confirmed =
        app.http.post(app.command_url(&format!("/commands/orders/{id}/confirm"))).send().await.expect("POST");
    assert_eq!(confirmed.status(), 200);
    for read in reads {
        let response = read.await.expect("task").expect("GET answers");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.waiters.waiting_reads(), 0);
    assert_eq!(app.waiters.watched_orders(), 0);
    drop(client);
    let tasks_after = crate::helpers::eventually(Duration::from_secs(20), || async {
        let alive = metrics.num_alive_tasks();
        (alive <= tasks_before).then_some(alive)
    })
    .await;
    // Each waiting read holds its connection's task while it waits, and nothing once answered.
    assert!(tasks_waiting >= tasks_before + READS, "tasks {tasks_before} -> {tasks_waiting} -> {tasks_after}");
    app.stop().await;
}

#[tokio::test]
async fn a_replica_whose_notice_binding_vanished_hears_notices_again() {
    let app = TestApp::spawn().await;
    let (reader, shutdown) = reading_replica(&app).await;
    let position = |answer: serde_json::Value| answer["position"].as_i64().expect("a position");
    let first = position(app.place_order_answer("cust-rebind").await);
    crate::helpers::eventually(Duration::from_secs(20), || async {
        (reader.waiters.position() >= first).then_some(())
    })
    .await;

    // An operator (or a broker restored without it) removes the notice exchange: every binding to it goes, and
    // notices published meanwhile are dropped. The projector declares the exchange again; the replicas must bind again.
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let notices = query_service::read::notices::notice_exchange(&app.names.exchange);
    channel.exchange_delete(notices.as_str().into(), Default::default()).await.expect("exchange deleted");
    let _ = connection.close(200, "done".into()).await;

    // Only notices move this board (the replica neither projects nor serves reads here).
    crate::helpers::eventually(Duration::from_secs(40), || async {
        let placed = position(app.place_order_answer("cust-rebind").await);
        tokio::time::timeout(Duration::from_secs(2), reader.waiters.position_reached(placed)).await.ok()
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), reader.task).await;
    app.stop().await;
}

/// `find` commands the query side at `addr` has sent to MongoDB (from its `mongodb_commands_total`).
async fn finds(http: &reqwest::Client, addr: std::net::SocketAddr) -> u64 {
    let text =
        http.get(format!("http://{addr}/metrics")).send().await.expect("GET /metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("mongodb_commands_total{command=\"find\"} "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn reads_woken_on_a_replica_that_does_not_project_answer_from_the_notice_without_reading_mongodb() {
    const ORDERS: usize = 20;
    let app = TestApp::spawn().await;
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    config.projector_enabled = false;
    // Nothing else on the replica reads MongoDB while the test counts (the rebuild janitor looks every 10 s).
    config.read_model_sample_rate = 0.0;
    let shutdown = CancellationToken::new();
    let reader = query_service::run::start(config, shutdown.clone()).await.expect("second replica starts");
    let mut bound = reader.notices_bound.clone();
    tokio::time::timeout(Duration::from_secs(20), bound.wait_for(|bound| *bound)).await.expect("bound").expect("up");

    let mut orders = Vec::new();
    for n in 0..ORDERS {
        let (id, _) = app.place_order(&format!("cust-woken-{n}")).await;
        let url = format!("http://{}/queries/orders/{id}?minVersion=1&waitMs=5000", reader.addr);
        assert_eq!(app.http.get(url).send().await.expect("GET answers").status(), 200);
        orders.push(id);
    }
    let reads: Vec<_> = orders
        .iter()
        .map(|id| {
            let url = format!("http://{}/queries/orders/{id}?minVersion=2&waitMs=20000", reader.addr);
            tokio::spawn(app.http.get(url).send())
        })
        .collect();
    let waiters = reader.waiters.clone();
    crate::helpers::eventually(Duration::from_secs(20), || async { (waiters.waiting_reads() == ORDERS).then_some(()) })
        .await;
    // Each read's own first look (a cold read) is done once the count stops moving.
    let mut before = finds(&app.http, reader.addr).await;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = finds(&app.http, reader.addr).await;
        if now == before {
            break;
        }
        before = now;
    }
    let woken = std::time::Instant::now();
    let confirms =
        orders.iter().map(|id| app.http.post(app.command_url(&format!("/commands/orders/{id}/confirm"))).send());
    for confirmed in futures_util::future::join_all(confirms).await {
        assert_eq!(confirmed.expect("POST answers").status(), 200);
    }
    for read in reads {
        let response = read.await.expect("task").expect("GET answers");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["metadata"]["version"], 2);
    }
    let took = woken.elapsed();
    let after = finds(&app.http, reader.addr).await;
    println!(
        "{ORDERS} woken reads on the reading replica: {} finds in {took:?} (before: one or two each)",
        after - before
    );
    // A read that waited longer than its recheck (2 s) looks itself once; none did here unless the machine stalled.
    assert!(after - before <= 2, "woken reads read MongoDB: {} finds for {ORDERS} reads in {took:?}", after - before);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), reader.task).await;
    app.stop().await;
}

/// Two projecting replicas of the order views (one active, one a standby of the single active consumer): the
/// active one dead-letters an event (a gap) and stops; the standby takes over, and the event, redriven, is applied
/// by it. The gap must close, although the replica that closes it did not record it.
#[tokio::test]
async fn a_gap_recorded_by_one_replica_is_closed_by_another_that_applies_its_event() {
    use mongodb::bson::{doc, Document};
    let orders_only = |query: &mut query_service::config::Config| {
        query.projections = vec![query_service::projection::named("orders").expect("the order views")];
    };
    let app = TestApp::spawn_tuned(
        crate::helpers::Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |_| {},
        |query, _| orders_only(query),
    )
    .await;
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    orders_only(&mut config);
    let standby_stop = CancellationToken::new();
    let standby = query_service::run::start(config, standby_stop.clone()).await.expect("standby starts");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let unique = mongodb::IndexModel::builder()
        .keys(doc! { "customerId": 1 })
        .options(mongodb::options::IndexOptions::builder().unique(true).name("one_per_customer".to_owned()).build())
        .build();
    app.mongo.collection::<Document>("order_views").create_index(unique).await.expect("index");
    app.place_order("gap-twice").await;
    let position = app.place_order_answer("gap-twice").await["position"].as_i64().expect("position");
    let gaps = app.mongo.collection::<Document>("read_model_gaps");
    crate::helpers::eventually(Duration::from_secs(60), || async {
        (gaps.count_documents(doc! {}).await.ok()? == 1).then_some(())
    })
    .await;

    // The first replica stops; the standby consumes now. The cause is fixed and the dead letter redriven.
    app.begin_shutdown();
    app.mongo.collection::<Document>("order_views").drop_index("one_per_customer").await.expect("index dropped");
    let settings = crate::helpers::consumer_settings_of(&app.names, "orders");
    assert_eq!(query_service::projection::redrive(&settings).await.expect("redriven"), 1);
    let url = format!("http://{}/queries/orders?customerId=gap-twice&minPosition={position}&waitMs=0", standby.addr);
    let http = reqwest::Client::new();
    crate::helpers::eventually(Duration::from_secs(30), || async {
        let list: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        let both = list["data"].as_array().is_some_and(|views| views.len() == 2);
        (both && list["metadata"]["missingPositions"] == serde_json::json!([])).then_some(())
    })
    .await;
    standby_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), standby.task).await;
    app.stop().await;
}

/// A replica that hears no notices (its listener cannot reach the broker: a notice lost is the same, only shorter)
/// still answers a list read at a position once the read model has reached it: the wait looks at MongoDB itself
/// now and then, as single reads do, instead of answering 202 when its wait runs out.
#[tokio::test]
async fn a_list_read_on_a_replica_that_hears_no_notices_answers_once_the_read_model_is_there() {
    let app = TestApp::spawn().await;
    let mut config = query_config(&app.names, "amqp://guest:guest@127.0.0.1:9/%2f", &mongodb_uri());
    config.projector_enabled = false;
    let shutdown = CancellationToken::new();
    let deaf = query_service::run::start(config, shutdown.clone()).await.expect("a deaf replica starts");
    // The projector is slowed down, so that the read starts before the read model has the order.
    assert_eq!(app.slow_projector(1_500).await, 200);
    let position = app.place_order_answer("deaf").await["position"].as_i64().expect("position");
    let url = format!("http://{}/queries/orders?customerId=deaf&minPosition={position}&waitMs=10000", deaf.addr);
    let started = std::time::Instant::now();
    let list = app.http.get(url).send().await.expect("GET answers");
    assert_eq!(list.status(), 200, "answered after {:?}", started.elapsed());
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), deaf.task).await;
    app.stop().await;
}

/// A second read side on the same events exchange (queues and a store of its own, `AMQP_QUEUE` of its own) shares
/// the notice exchange: its replicas' heartbeats must not take this deployment's partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_another_deployment_on_the_same_exchange_takes_none_of_this_ones_partitions() {
    let names = crate::helpers::Names::new("test");
    let command = crate::helpers::CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.projector_partitions = 2).await;
    let app = command.then_query(&mongodb_uri(), |query, _| query.projector_partitions = 2).await;
    // Another deployment's replica runs the order views, split in two, and says so every second; with the highest
    // id it would take partition 1 if it were counted.
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let notices = query_service::read::notices::notice_exchange(&app.names.exchange);
    let mut headers = lapin::types::FieldTable::default();
    headers.insert("scope".into(), lapin::types::AMQPValue::LongString("another.order-views".into()));
    let heartbeat = query_service::read::projectors::Heartbeat {
        partitions: 2,
        projections: Some(vec!["orders".to_owned()]),
        consuming: Some([("orders".to_owned(), vec![1])].into_iter().collect()),
    };
    let notice = query_service::read::notices::Notice::Projector { replica: uuid::Uuid::max(), heartbeat };
    let body = serde_json::to_vec(&notice).expect("json");
    let properties = lapin::BasicProperties::default().with_headers(headers);
    let beats = async {
        loop {
            channel
                .basic_publish(notices.as_str().into(), "".into(), Default::default(), &body, properties.clone())
                .await
                .expect("a heartbeat published");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    // Orders placed and read while the other deployment's replica keeps saying it is alive.
    let placed_and_read = async {
        let mut last = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            last = app.place_order_answer("cust-scoped").await["position"].as_i64().expect("a position");
        }
        let url = app.query_url(&format!("/queries/orders?customerId=cust-scoped&minPosition={last}&waitMs=20000"));
        let answer = app.http.get(url).send().await.expect("GET answers");
        let status = answer.status();
        (status, answer.json::<serde_json::Value>().await.expect("json"))
    };
    let (status, body) = tokio::select! {
        answer = placed_and_read => answer,
        () = beats => unreachable!("the heartbeats go on"),
    };
    assert_eq!(status, 200, "every partition of this deployment is consumed: {body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(10), "{body}");
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.close(200, "done".into())).await;
    app.stop().await;
}
