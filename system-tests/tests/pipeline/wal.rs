//! The `wal` relay (`RELAY_MODE=wal`) against a real replication slot: SIGKILL mid-stream, a standby taking the
//! slot over, a slot dropped by hand, switching modes both ways. (The rest of the suite runs on a `wal` relay too
//! with `TEST_RELAY_MODE=wal`.)

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::{
    amqp_url, eventually, mongodb_uri, place_order_at, service_binary, spawn_relay_process, terminate, ChildProcess,
    CommandFirst, Names, Tap, TestApp,
};

fn wal_relay(names: &Names, batch: usize) -> ChildProcess {
    spawn_relay_process(names, &names.database_url(), "wal", batch)
}

fn notify_relay(names: &Names) -> ChildProcess {
    spawn_relay_process(names, &names.database_url(), "notify", 10)
}

/// The slot the relay streams from, once it does: `relay_progress` names it and a backend reads it.
async fn streaming(app: &TestApp) -> (String, i32) {
    eventually(Duration::from_secs(30), || async {
        sqlx::query_as::<_, (String, i32)>(
            "select s.slot_name::text, s.active_pid from pg_replication_slots s
             join relay_progress p on p.slot = s.slot_name where s.active_pid is not null",
        )
        .fetch_optional(&app.pool)
        .await
        .ok()
        .flatten()
    })
    .await
}

/// Outbox inserts the slot still holds (not confirmed by its reader), once no backend streams from it.
async fn unconfirmed(app: &TestApp, slot: &str) -> i64 {
    eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_logical_slot_peek_binary_changes($1, null, null,
                 'proto_version', '1', 'publication_names', 'orders_outbox')
             where get_byte(data, 0) = ascii('I')",
        )
        .bind(slot)
        .fetch_one(&app.pool)
        .await
        .ok()
    })
    .await
}

/// Every order has its event, nothing waits to be published, and every order has its view.
async fn all_published_and_projected(app: &TestApp, orders: i64) {
    assert_eq!(app.count("outbox").await, orders, "one event per order");
    eventually(Duration::from_secs(60), || async { (app.unpublished().await == 0).then_some(()) }).await;
    let views = app.mongo.collection::<mongodb::bson::Document>("order_views");
    eventually(Duration::from_secs(60), || async {
        (views.count_documents(mongodb::bson::doc! {}).await.ok()? == orders as u64).then_some(())
    })
    .await;
}

async fn place(app: &TestApp, orders: usize) {
    for n in 0..orders {
        app.place_order(&format!("cust-{n}")).await;
    }
}

/// The event ids of the whole log.
async fn logged(app: &TestApp) -> HashSet<uuid::Uuid> {
    sqlx::query_scalar("select event_id from outbox")
        .fetch_all(&app.pool)
        .await
        .expect("event ids")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_wal_relay_killed_mid_stream_republishes_at_most_its_unconfirmed_tail() {
    let names = Names::new("test");
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let tap = Tap::open(&names).await;
    let mut relay = wal_relay(&names, 1);
    let (slot, _) = streaming(&app).await;
    relay.kill().expect("SIGKILL the relay");
    let _ = relay.wait();

    // The orders wait in the slot; the relay comes back, and is killed as soon as the slot has heard of the first
    // of them confirmed.
    let orders = 500;
    place(&app, orders).await;
    let confirmed = || async {
        sqlx::query_scalar::<_, String>(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1",
        )
        .bind(&slot)
        .fetch_one(&app.pool)
        .await
        .expect("the slot")
    };
    let before = confirmed().await;
    let mut relay = wal_relay(&names, 1);
    eventually(Duration::from_secs(30), || async { (confirmed().await != before).then_some(()) }).await;
    relay.kill().expect("SIGKILL the relay mid-stream");
    let _ = relay.wait();
    let tail = unconfirmed(&app, &slot).await;
    assert!(tail > 0, "the relay streamed everything before it could be killed");
    assert!(tail < orders as i64, "the relay was killed before it published anything");

    let _relay = wal_relay(&names, 100);
    all_published_and_projected(&app, orders as i64).await;
    let log = logged(&app).await;
    let delivered = tap.event_ids(log.len()).await;
    assert_eq!(delivered.iter().copied().collect::<HashSet<_>>(), log, "every event was published");
    let duplicates = delivered.len() - log.len();
    assert!(duplicates as i64 <= tail, "{duplicates} duplicates, more than the {tail} events the slot still held");
    app.stop().await;
}

#[tokio::test]
async fn one_wal_relay_streams_and_a_standby_takes_the_slot_over_when_it_dies() {
    let names = Names::new("test");
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let mut leader = wal_relay(&names, 10);
    let (slot, leader_pid) = streaming(&app).await;
    let _standby = wal_relay(&names, 10);
    place(&app, 20).await;
    all_published_and_projected(&app, 20).await;
    let streams: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where backend_type = 'walsender' and datname = current_database()",
    )
    .fetch_one(&app.pool)
    .await
    .expect("walsenders");
    assert_eq!(streams, 1, "only the leader streams from the slot");

    leader.kill().expect("SIGKILL the leader");
    let _ = leader.wait();
    place(&app, 20).await;
    all_published_and_projected(&app, 40).await;
    let (now_slot, pid) = streaming(&app).await;
    assert_eq!(now_slot, slot);
    assert_ne!(pid, leader_pid, "the standby streams now");
    app.stop().await;
}

#[tokio::test]
async fn a_slot_dropped_by_hand_is_created_again_and_nothing_is_lost() {
    let names = Names::new("test");
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let tap = Tap::open(&names).await;
    let mut relay = wal_relay(&names, 10);
    let (slot, _) = streaming(&app).await;
    place(&app, 20).await;
    all_published_and_projected(&app, 20).await;
    relay.kill().expect("SIGKILL the relay");
    let _ = relay.wait();

    // Orders the slot would have streamed; then the slot goes.
    place(&app, 20).await;
    let refused = std::process::Command::new(service_binary("command-service"))
        .args(["relay", "drop-slot"])
        .env("DATABASE_URL", names.database_url())
        .output()
        .expect("drop-slot runs");
    assert!(refused.status.success(), "{}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(String::from_utf8_lossy(&refused.stdout).trim(), format!("dropped replication slot {slot}"));
    let slots: i64 = sqlx::query_scalar("select count(*) from pg_replication_slots where slot_name = $1")
        .bind(&slot)
        .fetch_one(&app.pool)
        .await
        .expect("slots");
    assert_eq!(slots, 0);

    let _relay = wal_relay(&names, 10);
    assert_eq!(streaming(&app).await.0, slot, "the slot is created again");
    all_published_and_projected(&app, 40).await;
    let log = logged(&app).await;
    assert_eq!(tap.event_ids(log.len()).await.into_iter().collect::<HashSet<_>>(), log);
    app.stop().await;
}

#[tokio::test]
async fn drop_slot_refuses_a_slot_a_relay_is_reading_unless_forced() {
    let names = Names::new("test");
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let _relay = wal_relay(&names, 10);
    let (slot, _) = streaming(&app).await;
    let drop_slot = |force: bool| {
        let mut command = std::process::Command::new(service_binary("command-service"));
        command.args(["relay", "drop-slot"]).env("DATABASE_URL", names.database_url()).env("RUST_LOG", "off");
        if force {
            command.arg("--force");
        }
        command.output().expect("drop-slot runs")
    };
    let refused = drop_slot(false);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop the wal relays first"), "{refused:?}");
    assert!(drop_slot(true).status.success());
    // The running relay loses its stream, creates the slot again and carries on.
    place(&app, 5).await;
    assert_eq!(streaming(&app).await.0, slot);
    all_published_and_projected(&app, 5).await;
    app.stop().await;
}

#[tokio::test]
async fn switching_modes_both_ways_publishes_every_event_once() {
    let names = Names::new("test");
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let tap = Tap::open(&names).await;
    let mut placed = 0;
    for mode in ["notify", "wal", "notify", "wal"] {
        let mut relay = if mode == "wal" { wal_relay(&names, 10) } else { notify_relay(&names) };
        if mode == "wal" {
            streaming(&app).await;
        }
        place(&app, 10).await;
        placed += 10;
        all_published_and_projected(&app, placed).await;
        terminate(&mut relay).await;
    }
    let log = logged(&app).await;
    let delivered = tap.event_ids(log.len()).await;
    assert_eq!(delivered.iter().copied().collect::<HashSet<_>>(), log);
    assert_eq!(delivered.len(), log.len(), "no event was published twice across the switches");
    // The wal relay marked none of the rows it streamed: no UPDATE per event.
    let unmarked: i64 = sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(unmarked, 20, "the rows of the two wal periods");
    app.stop().await;
}

#[tokio::test]
async fn a_slot_retaining_more_than_the_limit_is_measured_and_makes_readiness_degraded() {
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |command| {
            command.relay_mode = command_service::relay::RelayMode::Wal;
            // Any write-ahead log retained is over a limit of 0 MiB.
            command.relay_slot_warn_mib = 0;
        },
        |_, _| {},
    )
    .await;
    let (slot, _) = streaming(&app).await;
    app.place_order("cust-slot").await;
    let ready: serde_json::Value = eventually(Duration::from_secs(20), || async {
        let body: serde_json::Value =
            app.http.get(app.command_url("/health/ready")).send().await.ok()?.json().await.ok()?;
        (body["checks"]["replication_slot"] == "down").then_some(body)
    })
    .await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    let reason = ready["reasons"]["replication_slot"].as_str().expect("a reason");
    assert!(reason.contains(&format!("{slot} retains")) && reason.contains("being read"), "{reason}");
    assert!(reason.contains("relay drop-slot"), "{reason}");

    let metrics = app.http.get(app.command_url("/metrics")).send().await.expect("GET").text().await.expect("text");
    let retained = metrics
        .lines()
        .find(|line| line.starts_with(&format!("relay_slot_retained_bytes{{slot=\"{slot}\"}}")))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("the slot's retained bytes");
    assert!(retained > 0.0, "{metrics}");
    assert!(metrics.contains(&format!("relay_slot_lag_bytes{{slot=\"{slot}\"}}")), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_relay_killed_while_it_publishes_what_a_new_slot_missed_publishes_it_after_a_restart() {
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |config| config.relay_enabled = false).await;
    let pool = sqlx::PgPool::connect(&names.database_url()).await.expect("pool");
    let slot_exists = |slot: String| {
        let pool = pool.clone();
        async move {
            let found: i64 = sqlx::query_scalar("select count(*) from pg_replication_slots where slot_name = $1")
                .bind(slot)
                .fetch_one(&pool)
                .await
                .expect("slots");
            found == 1
        }
    };
    // A relay has streamed (the slot continues the log), then its slot is dropped by hand with orders in it.
    let mut relay = wal_relay(&names, 10);
    let slot: String = eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, Option<String>>("select slot from relay_progress").fetch_one(&pool).await.ok().flatten()
    })
    .await;
    relay.kill().expect("SIGKILL the relay");
    let _ = relay.wait();
    let http = command.http();
    for n in 0..5 {
        place_order_at(&http, &command.command_url("/commands/orders"), &format!("cust-{n}")).await;
    }
    let dropped = std::process::Command::new(service_binary("command-service"))
        .args(["relay", "drop-slot", "--force"])
        .env("DATABASE_URL", names.database_url())
        .output()
        .expect("drop-slot runs");
    assert!(dropped.status.success(), "{}", String::from_utf8_lossy(&dropped.stderr));

    // The next relay creates the slot and has to publish the five orders the old way first; no queue takes them yet,
    // and it is killed before it could.
    let mut relay = wal_relay(&names, 10);
    eventually(Duration::from_secs(30), || async { slot_exists(slot.clone()).await.then_some(()) }).await;
    relay.kill().expect("SIGKILL the relay during its catch-up");
    let _ = relay.wait();

    // The query side comes, and a relay again: the five orders must not be taken for published.
    let app = command.then_query(&mongodb_uri(), |_, _| {}).await;
    let _relay = wal_relay(&names, 10);
    all_published_and_projected(&app, 5).await;
    pool.close().await;
    app.stop().await;
}

/// The last resort of docs/operations.md against a slot that retains too much: `max_slot_wal_keep_size`. PostgreSQL then
/// invalidates the slot (`wal_status = 'lost'`) and it can never be read again. The relay must take it for a dropped
/// one: drop it, create it again and publish from the outbox what was not published, losing nothing. (On a server
/// of the test's own: the setting would invalidate the other tests' slots.)
#[tokio::test]
async fn a_slot_the_server_invalidated_is_created_again_and_nothing_is_lost() {
    let server = system_tests::own_postgres::OwnPostgres::start(&[
        "wal_level=logical",
        "max_wal_senders=10",
        "max_replication_slots=10",
        "max_slot_wal_keep_size=1MB",
        "wal_keep_size=0",
    ])
    .expect("a server of the test's own starts");
    let mut names = Names::new("test");
    names.postgres = server.url();
    let app = TestApp::spawn_with(names.clone(), &amqp_url(), &mongodb_uri(), false).await;
    let mut relay = wal_relay(&names, 10);
    let (slot, _) = streaming(&app).await;
    place(&app, 5).await;
    all_published_and_projected(&app, 5).await;
    relay.kill().expect("SIGKILL the relay");
    let _ = relay.wait();

    // Write-ahead log beyond the limit while no relay reads the slot, then a checkpoint: the server gives it up.
    sqlx::query("create table filler (line text)").execute(&app.pool).await.expect("table");
    let lost = eventually(Duration::from_secs(60), || async {
        sqlx::query("insert into filler select repeat('x', 1000) from generate_series(1, 4000)")
            .execute(&app.pool)
            .await
            .ok()?;
        sqlx::query("select pg_switch_wal()").execute(&app.pool).await.ok()?;
        sqlx::query("checkpoint").execute(&app.pool).await.ok()?;
        let status: Option<String> =
            sqlx::query_scalar("select wal_status from pg_replication_slots where slot_name = $1")
                .bind(&slot)
                .fetch_one(&app.pool)
                .await
                .ok()?;
        (status.as_deref() == Some("lost")).then_some(())
    });
    lost.await;

    place(&app, 3).await;
    let _relay = wal_relay(&names, 10);
    all_published_and_projected(&app, 8).await;
    assert_eq!(streaming(&app).await.0, slot, "the slot is created again and streams");
    app.stop().await;
    drop(server);
}
