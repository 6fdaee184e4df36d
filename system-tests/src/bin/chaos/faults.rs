//! The faults, one after another, and the scenarios that need more than a kill.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use shared_events::Partition;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::stores;
use crate::suite::{broker_up, port_open, restart_postgres, run_tool, wait_until, Suite};
use crate::{ADMIN_TOKEN, AMQP, PARTITIONS, POISON};

/// What the faults did, besides striking.
#[derive(Default)]
pub struct Injected {
    pub faults: BTreeMap<&'static str, u32>,
    /// Waiting reads made while the view-changed exchange was gone: (answered 200, made, answered 202 while the
    /// view was still behind when they answered: the projector's lag, not a lost wake-up).
    pub notice_reads: (u32, u32, u32),
    pub findings: Vec<String>,
}

/// Deploys the query side once the command side has taken orders alone for a while, then injects the faults one
/// after another, spread over `driving`, at least once each.
pub async fn inject(suite: &Suite, driving: Duration) -> anyhow::Result<Injected> {
    const FAULTS: [&str; 16] = [
        "projection queue deleted",
        "queue deleted, query side down",
        "read model exchange deleted",
        "relay SIGKILL",
        "query-service SIGKILL",
        "summary store lost",
        "rabbitmq stop_app",
        "postgres restart",
        "mongo SIGKILL",
        "duplicates+reorder",
        "poison",
        "rebuild+rolling restart+mongo SIGKILL",
        "upgrade from the order views alone",
        "notice exchange deleted",
        "slot invalidated",
        "newer writer's event",
    ];
    // A `notify` relay reads no slot.
    let faults: Vec<&str> =
        FAULTS.into_iter().filter(|f| *f != "slot invalidated" || suite.relay_mode == "wal").collect();
    let mut injected = Injected::default();
    let started = Instant::now();
    // Spread over a short run; every 4 s in a long one, so that each fault strikes again and again.
    let gap = (driving / (faults.len() as u32 + 2)).clamp(Duration::from_secs(2), Duration::from_secs(4));
    tokio::time::sleep(gap).await;
    eprintln!(
        "chaos: t={:>5.1} s  query side deployed (the command side took orders alone)",
        started.elapsed().as_secs_f64()
    );
    suite.deploy_query_side().await?;
    injected.faults.insert("query side deployed late", 1);
    let mut round = 0usize;
    loop {
        let fault = faults[round % faults.len()];
        if round >= faults.len() && started.elapsed() + gap > driving {
            break;
        }
        tokio::time::sleep(gap).await;
        eprintln!("chaos: t={:>5.1} s  {fault}", started.elapsed().as_secs_f64());
        match fault {
            "relay SIGKILL" => {
                suite.kill("relay")?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                suite.spawn("relay")?;
            }
            "query-service SIGKILL" => {
                suite.kill("query")?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                suite.spawn("query")?;
                suite.wait_live(suite.query_port).await?;
            }
            "rabbitmq stop_app" => {
                run_tool("rabbitmqctl", &["-q", "stop_app"])?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                broker_up().await?;
            }
            "postgres restart" => restart_postgres().await?,
            "mongo SIGKILL" => restart_mongo(suite).await?,
            "summary store lost" => injected.findings.extend(stores::lose_the_summary_store(suite).await?),
            "upgrade from the order views alone" => {
                injected.findings.extend(stores::upgrade_from_the_order_views_alone(suite).await?)
            }
            "slot invalidated" => invalidate_the_slot(suite).await?,
            "duplicates+reorder" => publish_duplicates(suite).await?,
            "poison" => publish_poison(suite).await?,
            "rebuild+rolling restart+mongo SIGKILL" => rebuild_while_rolling(suite, &mut injected.findings).await?,
            "projection queue deleted" => delete_a_projection_queue(suite).await?,
            "queue deleted, query side down" => delete_a_queue_while_the_query_side_is_down(suite).await?,
            "read model exchange deleted" => delete_a_read_model_exchange(suite).await?,
            "notice exchange deleted" => {
                let (reached, made, behind) = reads_without_notices(suite).await?;
                injected.notice_reads.0 += reached;
                injected.notice_reads.1 += made;
                injected.notice_reads.2 += behind;
                if reached + behind < made {
                    injected.findings.push(format!(
                        "{} waiting read(s) answered 202 while the notice exchange was gone and the view was there",
                        made - reached - behind
                    ));
                }
            }
            _ => commit_as_newer_writer(suite).await?,
        }
        *injected.faults.entry(fault).or_insert(0) += 1;
        round += 1;
    }
    Ok(injected)
}

/// The relay SIGKILLed while orders flow; `max_slot_wal_keep_size` set to 1 MB on the server and write-ahead log
/// written past it until the server invalidates the slot (`wal_status = 'lost'`, never readable again); the setting
/// set back as it was; the relay started again: it must create the slot anew and publish from the outbox what the
/// lost slot held. (The setting is the server's: other inactive slots on it are invalidated too.)
pub async fn invalidate_the_slot(suite: &Suite) -> anyhow::Result<()> {
    suite.kill("relay")?;
    let invalidated = invalidate_slots_of(&suite.names.database_url(), &suite.names.database).await;
    suite.spawn("relay")?;
    invalidated
}

/// The replication slot of `database` invalidated (its relay stopped first): `max_slot_wal_keep_size` set to 1 MB and
/// write-ahead log written past it, then the setting set back as it was.
pub async fn invalidate_slots_of(database_url: &str, database: &str) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(database_url).await?;
    // What `ALTER SYSTEM` set before, if anything, is set again afterwards.
    let before: Option<String> = sqlx::query_scalar(
        "select setting from pg_file_settings
         where name = 'max_slot_wal_keep_size' and sourcefile like '%postgresql.auto.conf' order by seqno desc limit 1",
    )
    .fetch_optional(&pool)
    .await?;
    let invalidated = invalidate(&pool, database).await;
    let reset = async {
        match &before {
            Some(setting) => {
                let quoted = setting.replace('\'', "''");
                sqlx::query(&format!("alter system set max_slot_wal_keep_size = '{quoted}'")).execute(&pool).await?
            }
            None => sqlx::query("alter system reset max_slot_wal_keep_size").execute(&pool).await?,
        };
        sqlx::query("select pg_reload_conf()").execute(&pool).await?;
        sqlx::query("drop table if exists chaos_wal_filler").execute(&pool).await?;
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    invalidated.and(reset)
}

/// Writes WAL past a 1 MB `max_slot_wal_keep_size` and checkpoints until the slot of `database` is lost.
async fn invalidate(pool: &sqlx::PgPool, database: &str) -> anyhow::Result<()> {
    sqlx::query("alter system set max_slot_wal_keep_size = '1MB'").execute(pool).await?;
    sqlx::query("select pg_reload_conf()").execute(pool).await?;
    sqlx::query("create table if not exists chaos_wal_filler (line text)").execute(pool).await?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        sqlx::query("insert into chaos_wal_filler select repeat('x', 1000) from generate_series(1, 4000)")
            .execute(pool)
            .await?;
        sqlx::query("select pg_switch_wal()").execute(pool).await?;
        sqlx::query("checkpoint").execute(pool).await?;
        let lost: Option<bool> =
            sqlx::query_scalar("select bool_and(wal_status = 'lost') from pg_replication_slots where database = $1")
                .bind(database)
                .fetch_one(pool)
                .await?;
        match lost {
            Some(true) => return Ok(()),
            None => anyhow::bail!("the relay of {database} holds no replication slot to invalidate"),
            Some(false) if Instant::now() < until => sqlx::query("truncate chaos_wal_filler").execute(pool).await?,
            Some(false) => anyhow::bail!("the slot of {database} was not invalidated within 60 s"),
        };
    }
}

pub async fn restart_mongo(suite: &Suite) -> anyhow::Result<()> {
    suite.kill("mongo")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    suite.spawn("mongo")?;
    wait_until("the MongoDB-wire server listens again", Duration::from_secs(60), || port_open(suite.mongo_port)).await
}

/// A rebuild started on the second replica; then a rolling restart: the first replica stopped (SIGTERM) and started
/// again, MongoDB SIGKILLed and restarted, the second replica (the rebuild's builder) stopped and started. That
/// rebuild either switches or is given up; then another is started (once the first is cleared) and left to run
/// beside the faults that follow, so that the run usually ends on a rebuilt generation, which the checks then read.
pub async fn rebuild_while_rolling(suite: &Suite, findings: &mut Vec<String>) -> anyhow::Result<()> {
    let rebuild = suite.query_url("query2", "/admin/read-models/orders/rebuild");
    let answer = suite.http.post(&rebuild).bearer_auth(ADMIN_TOKEN).send().await?;
    if ![202, 409].contains(&answer.status().as_u16()) {
        findings.push(format!("starting a rebuild answered {}", answer.status()));
    }
    suite.stop_gracefully("query").await?;
    suite.spawn("query")?;
    suite.wait_ready(suite.query_port).await?;
    restart_mongo(suite).await?;
    suite.stop_gracefully("query2").await?;
    suite.spawn("query2")?;
    suite.wait_ready(suite.query2_port).await?;
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let status = suite.http.post(&rebuild).bearer_auth(ADMIN_TOKEN).send().await.map(|a| a.status().as_u16());
        match status {
            Ok(202) => return Ok(()),
            // The interrupted rebuild is still claimed until it is given up, or the janitor clears it.
            Ok(409 | 503) | Err(_) if Instant::now() < until => tokio::time::sleep(Duration::from_secs(2)).await,
            other => {
                findings.push(format!("a rebuild after the rolling restart could not start: {other:?}"));
                return Ok(());
            }
        }
    }
}

/// Deletes the view-changed exchange (every replica's binding goes with it, and the notices sent meanwhile are
/// dropped), places an order and reads it on both replicas with `minVersion` (at least one of them does not project
/// it, so only a notice or its own look at MongoDB can wake it). Returns (answered 200, reads made, answered 202
/// with the view still behind right after: the projector's lag under the run's load, which no notice could cure).
pub async fn reads_without_notices(suite: &Suite) -> anyhow::Result<(u32, u32, u32)> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let notices = query_service::read::notices::notice_exchange(&suite.names.exchange);
    channel.exchange_delete(notices.as_str().into(), Default::default()).await?;
    let _ = connection.close(200, "notices deleted".into()).await;
    let placed = suite.place("chaos-notice").await?;
    let (id, version) = (placed["orderId"].as_str().unwrap_or_default(), placed["sequenceId"].as_i64().unwrap_or(1));
    let read = |which: &'static str| {
        let url = suite.query_url(which, &format!("/queries/orders/{id}?minVersion={version}&waitMs=15000"));
        let http = suite.http.clone();
        async move { http.get(url).timeout(Duration::from_secs(20)).send().await.map(|r| r.status().as_u16()) }
    };
    let (first, second) = tokio::join!(read("query"), read("query2"));
    let reached = [&first, &second].iter().filter(|status| matches!(status, Ok(200))).count() as u32;
    let mut behind = 0;
    for (which, answer) in [("query", first), ("query2", second)] {
        if matches!(answer, Ok(202)) {
            // A waiting read looks at MongoDB once more before it answers 202: if the view is still behind now, the
            // wait ran out before the projector got there.
            let url = suite.query_url(which, &format!("/queries/orders/{id}?minVersion={version}&waitMs=0"));
            if suite.http.get(url).send().await?.status() == 202 {
                behind += 1;
            }
        }
    }
    Ok((reached, 2, behind))
}

/// Commits, as a newer command-service deployed first would, a change to an order with its event in schema
/// version 3 (which this build cannot read): the projector dead-letters it and records a gap, and the order's view
/// stays at its last readable version.
pub async fn commit_as_newer_writer(suite: &Suite) -> anyhow::Result<()> {
    let placed = suite.place("chaos-newer").await?;
    let id = Uuid::parse_str(placed["orderId"].as_str().unwrap_or_default())?;
    let pool = sqlx::PgPool::connect(&suite.names.database_url()).await?;
    let mut tx = pool.begin().await?;
    // The append barrier, as every writer of the outbox takes it (0x61707064, "appd").
    sqlx::query("select pg_advisory_xact_lock_shared(1634758756)").execute(&mut *tx).await?;
    let version: i64 = sqlx::query_scalar(
        "update customer_order set version = version + 1, status = 'Confirmed', updated_at = now()
         where id = $1 returning version",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, occurred_at)
         select $1, 'OrderConfirmed', 3, order_id, $2,
                payload || jsonb_build_object('status', 'Confirmed', 'loyaltyTier', 'gold'), now()
         from outbox where order_id = $3 and order_version = 1",
    )
    .bind(Uuid::now_v7())
    .bind(version)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

pub async fn channel_with_confirms() -> anyhow::Result<(Connection, lapin::Channel)> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok((connection, channel))
}

/// Publishes `body` as an event of type `kind` to every read model's exchange, as the relay does: routed to the
/// partition of `order_id` (a message of no order, to the first), `mandatory`, each copy again until a queue takes
/// it (for 30 s: a queue or exchange an earlier fault deleted is declared again within seconds). `channel`, with
/// confirms, is opened again on `connection` when the broker closed it (an exchange missing).
pub async fn publish(
    connection: &Connection,
    channel: &mut lapin::Channel,
    names: &system_tests::Names,
    kind: &str,
    order_id: Option<Uuid>,
    body: &[u8],
) -> anyhow::Result<()> {
    let properties = BasicProperties::default()
        .with_type(kind.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let partition = order_id.map_or(Partition { index: 0, count: PARTITIONS }, |id| Partition::of(id, PARTITIONS));
    let key = partition.routing_key(kind);
    let until = Instant::now() + Duration::from_secs(30);
    for exchange in names.read_model_exchanges() {
        loop {
            if !channel.status().connected() {
                *channel = connection.create_channel().await?;
                channel.confirm_select(ConfirmSelectOptions::default()).await?;
            }
            let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            let sent = channel
                .basic_publish(exchange.as_str().into(), key.as_str().into(), mandatory, body, properties.clone())
                .await;
            let confirm = match sent {
                Ok(confirm) => confirm.await,
                Err(err) => Err(err),
            };
            match confirm {
                Ok(lapin::Confirmation::Ack(None)) => break,
                Ok(lapin::Confirmation::Nack(_)) => anyhow::bail!("the broker refused a message"),
                _ if Instant::now() < until => tokio::time::sleep(Duration::from_millis(250)).await,
                other => anyhow::bail!("a message to {exchange} was not routed within 30 s: {other:?}"),
            }
        }
    }
    Ok(())
}

/// Deletes the queue of one partition of the customer summary while orders flow (as an operator cleaning up by
/// hand would): what it held is lost, the projector catches the partition up from the event feed, the topology is
/// declared again within seconds, and the relay keeps what could not be routed meanwhile.
pub async fn delete_a_projection_queue(suite: &Suite) -> anyhow::Result<()> {
    let queue = format!("{}.customer-summary.{}", suite.names.queue, PARTITIONS - 1);
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.queue_delete(queue.as_str().into(), Default::default()).await?;
    let _ = connection.close(200, "queue deleted".into()).await;
    Ok(())
}

/// Stops both query-services (SIGKILL), deletes a partition's queue of the order views with what it holds, lets
/// orders flow a second (their copies for that partition find no queue and wait in the outbox), then starts both
/// again: the first to declare the topology records the loss, and the partition is caught up from the event feed.
pub async fn delete_a_queue_while_the_query_side_is_down(suite: &Suite) -> anyhow::Result<()> {
    suite.kill("query")?;
    suite.kill("query2")?;
    let queue = format!("{}.{}", suite.names.queue, PARTITIONS - 1);
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.queue_delete(queue.as_str().into(), Default::default()).await?;
    let _ = connection.close(200, "queue deleted".into()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    suite.spawn("query")?;
    suite.spawn("query2")?;
    suite.wait_live(suite.query_port).await?;
    suite.wait_live(suite.query2_port).await
}

/// Once the backlog has drained: when no rebuild of the order views switched during the run (the faults that
/// followed gave it up), one is started now and waited for, so that the redrive and the rollback after it always
/// meet a generation kept before a rebuild.
pub async fn rebuild_unless_one_switched(suite: &Suite, findings: &mut Vec<String>) -> anyhow::Result<()> {
    let status_url = suite.query_url("query", "/admin/read-models/orders");
    let status = || async {
        let answer = suite.http.get(&status_url).bearer_auth(ADMIN_TOKEN).send().await?;
        anyhow::Ok(answer.json::<serde_json::Value>().await?)
    };
    let kept = |status: &serde_json::Value| status["previous"].as_array().is_some_and(|p| !p.is_empty());
    if kept(&status().await?) {
        return Ok(());
    }
    let until = Instant::now() + Duration::from_secs(300);
    let rebuild = suite.query_url("query", "/admin/read-models/orders/rebuild");
    loop {
        let started = suite.http.post(&rebuild).bearer_auth(ADMIN_TOKEN).send().await?.status().as_u16();
        match started {
            202 => break,
            // One given up is still claimed until the janitor clears it.
            409 if Instant::now() < until => tokio::time::sleep(Duration::from_secs(2)).await,
            other => {
                findings.push(format!("a rebuild after the drain answered {other}"));
                return Ok(());
            }
        }
    }
    loop {
        let now = status().await?;
        if kept(&now) && now["building"].is_null() {
            return Ok(());
        }
        if Instant::now() > until {
            findings.push(format!("the rebuild after the drain did not switch within 300 s: {now}"));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After the dead letters were redriven, rolls the order views back to the generation kept before the last rebuild
/// (when a rebuild switched): the rollback catches it up from the log, and the checks that follow read it. Returns
/// what was rolled back (`from → to`), or `None` when there was nothing to roll back to.
pub async fn roll_back_after_the_redrive(suite: &Suite, findings: &mut Vec<String>) -> anyhow::Result<Option<String>> {
    let status_url = suite.query_url("query", "/admin/read-models/orders");
    let status = || async {
        let answer = suite.http.get(&status_url).bearer_auth(ADMIN_TOKEN).send().await?;
        anyhow::Ok(answer.json::<serde_json::Value>().await?)
    };
    let before = status().await?;
    let Some(previous) = before["previous"].as_array().and_then(|p| p.first()).and_then(|p| p.as_str()) else {
        return Ok(None);
    };
    let (from, to) = (before["active"].as_str().unwrap_or_default().to_owned(), previous.to_owned());
    let url = suite.query_url("query", "/admin/read-models/orders/rollback");
    let began = Instant::now();
    let started = suite.http.post(&url).bearer_auth(ADMIN_TOKEN).send().await?;
    let answered = began.elapsed().as_secs_f64() * 1000.0;
    if started.status().as_u16() != 202 {
        let body = started.text().await.unwrap_or_default();
        findings.push(format!("the rollback after the redrive answered {body}, not 202"));
        return Ok(None);
    }
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let now = status().await?;
        if now["active"].as_str() == Some(to.as_str()) && now["rejoining"].is_null() {
            // The request that started it answered at once; the catch-up ran as a job, however long.
            let took = began.elapsed().as_secs_f64();
            return Ok(Some(format!("{from} → {to}: 202 in {answered:.0} ms, caught up and active after {took:.1} s")));
        }
        if Instant::now() > until {
            findings.push(format!("the rollback from {from} to {to} did not finish within 180 s: {now}"));
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the dashboard's exchange (and with it the bindings of its queues) while orders flow; it is declared
/// again, by the relay or a query-service, and joined again by the query-services.
pub async fn delete_a_read_model_exchange(suite: &Suite) -> anyhow::Result<()> {
    let exchange = shared_events::read_model::exchange_of(&suite.names.exchange, "daily-sales");
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.exchange_delete(exchange.as_str().into(), Default::default()).await?;
    let _ = connection.close(200, "exchange deleted".into()).await;
    Ok(())
}

/// The newest 100 logged events, published again twice each, newest first (duplicates, out of order).
pub async fn publish_duplicates(suite: &Suite) -> anyhow::Result<()> {
    let feed = suite.feed(0, 5000).await?;
    let events = feed["data"].as_array().cloned().unwrap_or_default();
    let (connection, mut channel) = channel_with_confirms().await?;
    for envelope in events.iter().rev().take(100).chain(events.iter().rev().take(100)) {
        let kind = envelope["eventType"].as_str().unwrap_or("OrderPlaced");
        let order_id = envelope["orderId"].as_str().and_then(|id| id.parse().ok());
        publish(&connection, &mut channel, &suite.names, kind, order_id, &serde_json::to_vec(envelope)?).await?;
    }
    let _ = connection.close(200, "duplicates sent".into()).await;
    Ok(())
}

/// Messages no projector can read, plus one of a schema version from the future.
pub async fn publish_poison(suite: &Suite) -> anyhow::Result<()> {
    let (connection, mut channel) = channel_with_confirms().await?;
    for body in POISON {
        publish(&connection, &mut channel, &suite.names, "OrderPlaced", None, body).await?;
    }
    let mut future = system_tests::sample_envelope(Uuid::new_v4(), 1, 1);
    future["schemaVersion"] = json!(99);
    let order_id = future["orderId"].as_str().and_then(|id| id.parse().ok());
    let future = serde_json::to_vec(&future)?;
    publish(&connection, &mut channel, &suite.names, "OrderPlaced", order_id, &future).await?;
    let _ = connection.close(200, "poison sent".into()).await;
    Ok(())
}
