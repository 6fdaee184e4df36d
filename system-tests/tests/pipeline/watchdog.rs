//! The services tell the truth about their progress: a stage with work waiting and no progress for `STALL_AFTER_S`,
//! a partition no live replica consumes and a relay whose terms keep failing are named by readiness (`stalled`) and
//! shown by `stage_stalled`, each within `STALL_AFTER_S` + 10 s; a background task that dies fails readiness at once
//! and ends the service with an error.

use std::time::Duration;

use lapin::ConnectionProperties;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::helpers::{amqp_url, eventually, mongodb_uri, place_order_at, CommandFirst, Names, TestApp, ADMIN_TOKEN};
use crate::proxies::{bson_field, mongodb_address, through, Proxy};

/// The `STALL_AFTER_S` of these tests.
const STALL_AFTER_S: u64 = 2;
/// How soon after its cause began a stall must be reported.
const REPORTED_WITHIN: Duration = Duration::from_secs(STALL_AFTER_S + 10);

/// Readiness of the service at `url`: its status code and body.
async fn readiness(http: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = http.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Waits until the service at `url` is ready (its projectors consuming, after it starts).
async fn until_ready(http: &reqwest::Client, url: &str) {
    eventually(Duration::from_secs(30), || async {
        let (status, _) = readiness(http, url).await?;
        (status == 200).then_some(())
    })
    .await;
}

/// Waits until readiness at `url` names a stalled stage whose reason contains `expected`; the answer.
async fn stalled(http: &reqwest::Client, url: &str, expected: &str, since: Instant) -> (u16, Value) {
    let mut last = None;
    while since.elapsed() < REPORTED_WITHIN {
        if let Some((status, body)) = readiness(http, url).await {
            if body["reasons"]["stalled"].as_str().is_some_and(|reason| reason.contains(expected)) {
                return (status, body);
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no stall naming {expected:?} within {REPORTED_WITHIN:?}; readiness last said {last:?}");
}

/// Waits up to `within` until readiness at `url` names no stalled stage.
async fn until_no_stall(http: &reqwest::Client, url: &str, within: Duration) {
    eventually(within, || async {
        let (_, body) = readiness(http, url).await?;
        body["reasons"]["stalled"].is_null().then_some(())
    })
    .await;
}

/// The value of `stage_stalled` for the stage with `labels` in the metrics at `url`, if it is there.
async fn stage_stalled(http: &reqwest::Client, url: &str, labels: &str) -> Option<u8> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let prefix = format!("stage_stalled{{{labels}}} ");
    text.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|value| value.trim().parse().ok())
}

/// A replica of `names`' deployment started in process, on `partitions`, with these tests' `STALL_AFTER_S`; and the
/// token that stops it.
async fn start_replica(names: &Names, partitions: u16) -> (query_service::run::Running, CancellationToken) {
    let stop = CancellationToken::new();
    let mut config = crate::helpers::query_config(names, &amqp_url(), &mongodb_uri());
    config.projector_partitions = partitions;
    config.watchdog.stall_after_s = STALL_AFTER_S;
    let replica = query_service::run::start(config, stop.clone()).await.expect("the replica starts");
    (replica, stop)
}

/// Stops a replica [`start_replica`] started, and waits up to 15 s for it to end.
async fn stop_replica((replica, stop): (query_service::run::Running, CancellationToken)) {
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), replica.task).await;
}

#[tokio::test]
async fn a_projection_partition_with_events_waiting_and_no_progress_is_reported_stalled_and_then_not() {
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |_| {},
        |query, _| query.watchdog.stall_after_s = STALL_AFTER_S,
    )
    .await;
    let ready = app.query_url("/health/ready");
    until_ready(&app.http, &ready).await;
    // Every batch held for 10 s (the demo's slowdown): the projector has an event in hand and moves for 10 s.
    assert_eq!(app.slow_projector(10_000).await, 200);
    let placed = Instant::now();
    app.place_order("stalled-partition").await;
    let (status, body) = stalled(&app.http, &ready, "projection orders partition 0", placed).await;
    assert_eq!(status, 200, "a stalled stage degrades readiness, it does not fail it: {body}");
    assert_eq!(body["status"], "degraded", "{body}");
    let labels = r#"partition="0",projection="orders",stage="projection""#;
    assert_eq!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(1));

    // Moving again: no longer stalled.
    assert_eq!(app.slow_projector(0).await, 200);
    until_no_stall(&app.http, &ready, Duration::from_secs(30)).await;
    assert_eq!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(0));
    app.stop().await;
}

#[tokio::test]
async fn a_partition_no_live_replica_consumes_is_reported_stalled() {
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.projector_partitions = 2).await;
    let app = command
        .then_query(&mongodb_uri(), |query, _| {
            query.projector_partitions = 2;
            query.watchdog.stall_after_s = STALL_AFTER_S;
        })
        .await;
    let ready = app.query_url("/health/ready");
    until_ready(&app.http, &ready).await;
    // A second replica that runs the dashboard is alive (its heartbeats arrive) but consumes nothing: hung in its
    // consumer, say. It owns partition 1 of the dashboard (the highest id ranks last), which nobody consumes now.
    let hung = HungReplica::start(&names).await;
    let started = Instant::now();
    let (status, body) =
        stalled(&app.http, &ready, "projection daily-sales partition 1: no live replica consumes it", started).await;
    assert_eq!(status, 200, "the order views are served: {body}");
    let labels = r#"partition="1",projection="daily-sales",stage="projection""#;
    assert_eq!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(1));

    // The hung replica gone (its heartbeats stop): the live one takes the partition again, and the stall ends.
    drop(hung);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = readiness(&app.http, &ready).await.expect("readiness answers");
        if body["reasons"]["stalled"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "still stalled 30 s after the hung replica went: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(0));
    app.stop().await;
}

/// A replica that says every second it is alive and runs the dashboard, split in two, and consumes none of it.
struct HungReplica {
    heartbeats: tokio::task::JoinHandle<()>,
}

impl HungReplica {
    async fn start(names: &Names) -> Self {
        use query_service::read::notices::{self, Notice};
        use query_service::read::projectors::Heartbeat;
        let connection = lapin::Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        let route = notices::NoticeRoute::new(&names.exchange, &names.queue);
        let heartbeat = Heartbeat {
            partitions: 2,
            projections: Some(vec!["daily-sales".to_owned()]),
            consuming: Some([("daily-sales".to_owned(), Vec::new())].into_iter().collect()),
        };
        let heartbeats = tokio::spawn(async move {
            let _connection = connection;
            loop {
                let notice = Notice::Projector { replica: uuid::Uuid::max(), heartbeat: heartbeat.clone() };
                notices::publish(&channel, &route, notice).await.expect("a heartbeat published");
                tokio::time::sleep(query_service::read::projectors::HEARTBEAT_EVERY).await;
            }
        });
        Self { heartbeats }
    }
}

impl Drop for HungReplica {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// A vhost of its own, deleted however the test ends.
struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.0]).status();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl").args(args).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

#[tokio::test]
async fn a_relay_whose_terms_keep_failing_is_reported_stalled() {
    let names = Names::new("test");
    // The broker lets the command-service in and declare, but not publish (a permission set wrong): every relay
    // term fails while RabbitMQ itself is reachable.
    let vhost = Vhost(names.database.clone());
    rabbitmqctl(&["-q", "add_vhost", &vhost.0]);
    rabbitmqctl(&["-q", "set_permissions", "-p", &vhost.0, "guest", ".*", "^$", ".*"]);
    let base = amqp_url();
    let url = format!("{}/{}", base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server), vhost.0);
    let command = CommandFirst::spawn(names, &url, |c| c.watchdog.stall_after_s = STALL_AFTER_S).await;
    let http = command.http();
    let placed = Instant::now();
    // Commands are still taken: the outbox keeps them.
    place_order_at(&http, &command.command_url("/commands/orders"), "relay-failing").await;
    let (status, body) = stalled(&http, &command.command_url("/health/ready"), "relay: ", placed).await;
    assert_eq!(status, 200, "{body}");
    let reason = body["reasons"]["stalled"].as_str().expect("a reason");
    assert!(reason.contains("the last relay term failed"), "readiness says why: {reason}");
    let labels = r#"partition="",projection="",stage="relay""#;
    assert_eq!(stage_stalled(&http, &command.command_url("/metrics"), labels).await, Some(1));
}

#[tokio::test]
async fn a_background_task_that_dies_fails_readiness_at_once_and_ends_the_service_with_an_error() {
    let mut app = TestApp::spawn().await;
    let ready = app.query_url("/health/ready");
    until_ready(&app.http, &ready).await;
    app.query_tasks.spawn("doomed", async { panic!("injected") });
    // Within one readiness cache period, long before the service stops (supervisor::DRAIN).
    let body = eventually(Duration::from_secs(3), || async {
        let (status, body) = readiness(&app.http, &ready).await?;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["down"], serde_json::json!(["tasks"]), "{body}");
    let why = body["reasons"]["tasks"].as_str().expect("why");
    assert!(why.contains("background task doomed panicked: injected"), "{why}");
    let ended = app.ended(Duration::from_secs(30)).await;
    let query = ended[0].as_ref().expect("the query-service stopped on its own");
    let error = query.as_ref().expect_err("and ended with an error, for main to exit non-zero");
    assert!(error.to_string().contains("doomed"), "{error}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_does_not_report_a_stall_while_the_active_one_moves_the_backlog() {
    // The active replica takes two messages at a time, each batch held 400 ms: a backlog it moves steadily.
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |_| {},
        |query, _| {
            query.amqp_prefetch = 2;
        },
    )
    .await;
    until_ready(&app.http, &app.query_url("/health/ready")).await;
    assert_eq!(app.slow_projector(400).await, 200);
    // A hot standby of the same deployment: registered on the same queues, it sees events wait there.
    let standby = start_replica(&app.names, 1).await;
    let ready = format!("http://{}/health/ready", standby.0.addr);
    until_ready(&app.http, &ready).await;
    let mut last = 0;
    for n in 0..20 {
        last = app.place_order_answer(&format!("backlog-{n}")).await["position"].as_i64().expect("position");
    }
    // While the backlog drains (well past STALL_AFTER_S), the standby never names a stall.
    let drained = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = readiness(&app.http, &ready).await.expect("readiness answers");
        assert!(body["reasons"]["stalled"].is_null(), "the active replica moves the backlog: {body}");
        if app.waiters.position() >= last || Instant::now() > drained {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(app.waiters.position() >= last, "the backlog drained");
    stop_replica(standby).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_the_broker_stopped_feeding_is_reported_stalled_and_consumes_again() {
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |_| {},
        |query, _| query.watchdog.stall_after_s = STALL_AFTER_S,
    )
    .await;
    let ready = app.query_url("/health/ready");
    until_ready(&app.http, &ready).await;
    assert_eq!(app.slow_projector(3_000).await, 200);
    for _ in 0..5 {
        app.place_order_answer("held").await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // With a batch in hand, an operator deletes the summary's queue and declares it again at once.
    let connection = lapin::Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let queue = format!("{}.customer-summary", app.names.queue);
    channel.queue_delete(queue.as_str().into(), Default::default()).await.expect("deleted");
    let settings = crate::helpers::consumer_settings_of(&app.names, "customer-summary");
    query_service::projection::declare_topology(&channel, &settings).await.expect("declared again");
    let _ = connection.close(200, "done".into()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.slow_projector(0).await, 200);
    let last = app.place_order_answer("held").await["position"].as_i64().expect("position");
    // The consumer the broker no longer feeds is reported stalled and consumes afresh; the messages lost with the
    // old queue are caught up from the event feed: the summary gets every order, never a silent 202 for ever.
    let url = app.query_url(&format!("/queries/customers/held/summary?minPosition={last}&waitMs=2000"));
    let body = eventually(Duration::from_secs(STALL_AFTER_S + 30), || async {
        let answer = app.http.get(&url).send().await.ok()?;
        (answer.status() == 200).then_some(answer)?.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(body["data"]["orders"], 6, "{body}");
    app.stop().await;
}

/// A replica started again while nothing is placed, every position stored and no checkpoint marker on its way,
/// stays ready once a read at the head reached the store: each partition's consumer announces its stored position
/// as it opens, so that none stays "behind the other read models'" for as long as the system is idle (the
/// explorer's seed 93).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_again_while_nothing_is_placed_stays_ready_after_a_read_at_the_head() {
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.projector_partitions = 2).await;
    let (http, orders) = (command.http(), command.command_url("/commands/orders"));
    let first = start_replica(&names, 2).await;
    let mut last = 0;
    for _ in 0..4 {
        last = place_order_at(&http, &orders, "idle").await["position"].as_i64().expect("position");
    }
    let at_head = |addr: std::net::SocketAddr| {
        let http = &http;
        async move {
            let url = format!("http://{addr}/queries/orders?minPosition={last}&waitMs=2000");
            let answer = http.get(url).send().await.ok()?;
            (answer.status() == 200).then_some(())
        }
    };
    eventually(Duration::from_secs(60), || at_head(first.0.addr)).await;
    stop_replica(first).await;

    let second = start_replica(&names, 2).await;
    let ready = format!("http://{}/health/ready", second.0.addr);
    until_ready(&http, &ready).await;
    eventually(Duration::from_secs(10), || at_head(second.0.addr)).await;
    let watched = Instant::now();
    while watched.elapsed() < REPORTED_WITHIN {
        let (_, body) = readiness(&http, &ready).await.expect("readiness answers");
        assert!(body["reasons"]["stalled"].is_null(), "stalled with nothing placed: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop_replica(second).await;
    drop(command);
}

/// A read model left behind the others while the system is idle (its queue purged of the last order and the
/// marker after it while the replica was down, no event feed to catch up from) is reported stalled, and stays
/// reported while its consumer opens again every stall period: an opening says where the partition is, which is no
/// progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_left_behind_while_idle_stays_reported_stalled_while_its_consumer_opens_again() {
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |_| {}).await;
    let (http, orders) = (command.http(), command.command_url("/commands/orders"));
    let summary = |addr: std::net::SocketAddr, position: i64, wait_ms: u64| {
        format!("http://{addr}/queries/customers/behind/summary?minPosition={position}&waitMs={wait_ms}")
    };
    let first = start_replica(&names, 1).await;
    let placed = place_order_at(&http, &orders, "behind").await["position"].as_i64().expect("position");
    eventually(Duration::from_secs(60), || async {
        let answer = http.get(summary(first.0.addr, placed, 2000)).send().await.ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    stop_replica(first).await;

    // With the replica down, the next order and the marker after it reach the summary's queue, and are purged.
    let last = place_order_at(&http, &orders, "behind").await["position"].as_i64().expect("position");
    let connection = lapin::Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
    let queue = format!("{}.customer-summary", names.queue);
    let channel = eventually(Duration::from_secs(30), || async {
        let channel = connection.create_channel().await.ok()?;
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.as_str().into(), passive, Default::default()).await.ok()?;
        (declared.message_count() >= 2).then_some(channel)
    })
    .await;
    channel.queue_purge(queue.as_str().into(), Default::default()).await.expect("purged");
    let _ = connection.close(200, "purged".into()).await;

    let second = start_replica(&names, 1).await;
    let ready = format!("http://{}/health/ready", second.0.addr);
    let behind = "projection customer-summary partition 0: its position is behind";
    stalled(&http, &ready, behind, Instant::now()).await;
    // From then on every look names it, through several openings of the summary's consumer.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(4 * STALL_AFTER_S) {
        let (_, body) = readiness(&http, &ready).await.expect("readiness answers");
        let named = body["reasons"]["stalled"].as_str().is_some_and(|reason| reason.contains(behind));
        assert!(named, "the summary stays behind, unreported: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = http.get(summary(second.0.addr, last, 0)).send().await.expect("the summary answers");
    assert_eq!(answer.status(), 202, "the summary is behind indeed");
    stop_replica(second).await;
    drop(command);
}

/// A rebuild whose steps keep failing (a store that cannot take its pages) keeps trying for as long as its
/// generation is wanted; it is a stage like any other: named stalled by readiness and shown by `stage_stalled` until
/// it moves again.
#[tokio::test]
async fn a_rebuild_whose_steps_keep_failing_is_reported_stalled_and_then_not() {
    let proxy =
        Proxy::losing_every_answer_to(mongodb_address(&mongodb_uri()), bson_field("insert", "order_views_v1")).await;
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &through(&mongodb_uri(), &proxy),
        |_| {},
        |query, _| query.watchdog.stall_after_s = STALL_AFTER_S,
    )
    .await;
    let ready = app.query_url("/health/ready");
    until_ready(&app.http, &ready).await;
    app.place_order("stalled-rebuild").await;
    let rebuild = app.http.post(app.query_url("/admin/read-models/orders/rebuild")).bearer_auth(ADMIN_TOKEN);
    assert_eq!(rebuild.send().await.expect("answers").status(), 202);
    // Its first page is loaded once every process writes the new generation, and fails one operation later.
    let first_failure = Instant::now() + query_service::rebuild::GRACE + query_service::store::OPERATION_TIMEOUT;
    let (status, body) = stalled(&app.http, &ready, "rebuild of orders", first_failure).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("degraded")), "{body}");
    let labels = r#"partition="",projection="orders",stage="rebuild""#;
    assert_eq!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(1));

    proxy.stop_losing();
    until_no_stall(&app.http, &ready, Duration::from_secs(60)).await;
    assert_ne!(stage_stalled(&app.http, &app.query_url("/metrics"), labels).await, Some(1));
    app.stop().await;
}
