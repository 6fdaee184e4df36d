//! What is checked once the backlog has drained: the write store, the log, the views, the customer summaries and the
//! sales dashboard against SQL aggregates of the write model, the dead letters, and `query-service verify`.

use anyhow::{bail, ensure, Context as _};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection};
use query_service::store::StoredView;
use serde_json::Value;
use shared_events::OrderEvent;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::clients::Clients;
use crate::faults::channel_with_confirms;
use crate::report::Checked;
use crate::suite::{binary, Suite};
use crate::{ADMIN_TOKEN, AMQP, PARTITIONS};

/// The order views' generation pointer, if one was written.
async fn views_pointer(mongo: &mongodb::Database) -> anyhow::Result<Option<mongodb::bson::Document>> {
    let pointers = mongo.collection::<mongodb::bson::Document>("read_model_generations");
    Ok(pointers.find_one(mongodb::bson::doc! { "_id": "orders" }).await?)
}

/// Whether a read model's pointer names a generation being built or rejoining (a rollback catching it up), or says
/// that its active generation does not hold the log from its start (a rebuild is still to come: decision 0019).
pub async fn rebuilding(mongo: &mongodb::Database) -> anyhow::Result<bool> {
    use futures_util::TryStreamExt as _;
    let pointers = mongo.collection::<mongodb::bson::Document>("read_model_generations");
    let pointers: Vec<mongodb::bson::Document> = pointers.find(mongodb::bson::doc! {}).await?.try_collect().await?;
    Ok(pointers.iter().any(|pointer| {
        let first = pointer.get_str("_id").ok().and_then(query_service::store::models::named).map(|m| m.collection);
        let incomplete = pointer.get_bool("firstComplete") == Ok(false) && pointer.get_str("active").ok() == first;
        pointer.get_document("building").is_ok() || pointer.get_str("rejoining").is_ok() || incomplete
    }))
}

/// What is still to drain: events the relay has not published, order views not at their newest readable version
/// (`usize::MAX` when that cannot be told now), and whether a read model is being built or rolled back.
pub async fn backlog(pool: &sqlx::PgPool, mongo: &mongodb::Database) -> anyhow::Result<(i64, usize, bool)> {
    let unpublished: i64 = sqlx::query_scalar("select count(*) from outbox_backlog").fetch_one(pool).await?;
    let behind = match active_views(mongo).await {
        Ok(views) => views_behind(pool, &views).await.unwrap_or(usize::MAX),
        Err(_) => usize::MAX,
    };
    Ok((unpublished, behind, rebuilding(mongo).await.unwrap_or(true)))
}

/// The active generation of the views, as the pointer names it (the first one before any rebuild).
pub async fn active_views(mongo: &mongodb::Database) -> anyhow::Result<mongodb::Collection<StoredView>> {
    let pointer = views_pointer(mongo).await?;
    let active = pointer.as_ref().and_then(|p| p.get_str("active").ok()).unwrap_or("order_views");
    Ok(mongo.collection::<StoredView>(active))
}

/// `query-service verify` against the run's services: its JSON summary of each read model (by projection), and a
/// finding if it found anything.
pub async fn verify(suite: &Suite) -> anyhow::Result<(Value, Vec<String>)> {
    let output = Command::new(binary("query-service")?)
        .arg("verify")
        .env("PROJECTOR_PARTITIONS", PARTITIONS.to_string())
        .env("MONGODB_URI", suite.mongodb_uri())
        .env("MONGODB_DATABASE", &suite.names.database)
        .env("EVENT_FEED_URL", suite.command_url("/events"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "error")
        .output()?;
    let lines: Option<serde_json::Map<String, Value>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let summary: Value = serde_json::from_str(line).ok()?;
            Some((summary["projection"].as_str()?.to_owned(), summary))
        })
        .collect();
    let summary = lines.filter(|l| !l.is_empty()).map_or(Value::Null, Value::Object);
    let mut findings = Vec::new();
    if !output.status.success() || summary.is_null() {
        findings.push(format!("query-service verify: {summary} {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok((summary, findings))
}

/// What comparing the read models of whole customers and days with the write model found.
#[derive(Debug, Default)]
pub struct ReadModelsChecked {
    pub customers: usize,
    pub summaries_differing: usize,
    pub days: usize,
    pub days_differing: usize,
    pub findings: Vec<String>,
}

/// Every customer's summary and the dashboard of every active day, read from the query-service at the log's head,
/// against the same aggregates in SQL over the write model — each order as its newest event this build can read
/// says (an order held back by a newer writer's event counts as the read models have it).
pub async fn read_models(suite: &Suite, pool: &sqlx::PgPool) -> anyhow::Result<ReadModelsChecked> {
    use system_tests::aggregates::{self, Orders};
    let orders = Orders::ReadableUpTo(shared_events::upcast::CURRENT_SCHEMA_VERSION as i32);
    let head: i64 = sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox").fetch_one(pool).await?;
    let read = |path: String| async move {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = suite.query_url("query", &format!("{path}{separator}minPosition={head}&waitMs=30000"));
        // Longer than the wait the read asks for: a read model still catching up answers 202, said below.
        let answer = suite.http.get(url).timeout(Duration::from_secs(45)).send().await?;
        let status = answer.status();
        let body = answer.json::<Value>().await?;
        ensure!(status == 200, "{path} at {head} answered {status}: {}", body["metadata"]);
        Ok::<Value, anyhow::Error>(body["data"].clone())
    };
    let mut checked = ReadModelsChecked::default();
    for customer in aggregates::customers(pool).await? {
        let expected = aggregates::summary_in_sql(pool, orders, &customer).await?;
        let answered = aggregates::summary_of(&read(format!("/queries/customers/{customer}/summary")).await?);
        checked.customers += 1;
        if answered.as_ref() != Ok(&expected) {
            checked.summaries_differing += 1;
            checked.findings.push(format!("summary of {customer}: {answered:?}, SQL says {expected:?}"));
        }
    }
    if let Some((from, to)) = aggregates::active_days(pool).await? {
        let expected = aggregates::dashboard_in_sql(pool, orders, &from, &to).await?;
        let answered = read(format!("/queries/dashboard/daily?from={from}&to={to}")).await?;
        let answered = aggregates::dashboard_of(&answered).map_err(anyhow::Error::msg)?;
        let differences = aggregates::differences(&expected, &answered);
        checked.days = expected.len().max(answered.len());
        checked.days_differing = differences.len();
        checked.findings.extend(differences.into_iter().map(|d| format!("dashboard {d}")));
    }
    Ok(checked)
}

/// How many orders' views are not yet at the newest version this build can read (the write model's, but for an
/// order whose newest event came from a newer writer).
pub async fn views_behind(pool: &sqlx::PgPool, views: &mongodb::Collection<StoredView>) -> anyhow::Result<usize> {
    use futures_util::TryStreamExt as _;
    let written: Vec<(Uuid, i64)> =
        sqlx::query_as("select order_id, max(order_version) from outbox where schema_version <= $1 group by order_id")
            .bind(shared_events::upcast::CURRENT_SCHEMA_VERSION as i32)
            .fetch_all(pool)
            .await?;
    let seen: HashMap<String, i64> =
        views.find(mongodb::bson::doc! {}).await?.map_ok(|v| (v.id, v.version)).try_collect().await?;
    Ok(written.iter().filter(|(id, version)| seen.get(&id.to_string()) != Some(version)).count())
}

/// Every unreadable message (poison, and the newer writer's events) is in the dead-letter queue with its reason; `query-service dlq redrive` moves them back
/// once, together with logged events dead-lettered by an earlier build (put there here, as such a build would
/// have): those are applied (changing nothing, their views are newer) and leave the queue, the poison returns with
/// `x-redrive-count` 1. Returns (dead letters found, redriven, findings).
pub async fn dead_letter_checks(suite: &Suite, expected: u32) -> anyhow::Result<(u32, u32, Vec<String>)> {
    let mut findings = Vec::new();
    let dlq = format!("{}.dlq", suite.names.queue);
    let (connection, channel) = channel_with_confirms().await?;
    let (count, reasons) = inspect_dead_letters(&connection, &dlq).await?;
    if count != expected {
        findings.push(format!("{count} dead letters, {expected} unreadable messages published or logged"));
    }
    if reasons.iter().any(|(reason, _)| reason.is_empty()) {
        findings.push("a dead letter without x-dead-letter-reason".to_owned());
    }
    // Logged events an earlier build could not read.
    let feed = suite.feed(0, 3).await?;
    let readable = feed["data"].as_array().cloned().unwrap_or_default();
    for envelope in &readable {
        let mut headers = FieldTable::default();
        headers.insert("x-dead-letter-reason".into(), AMQPValue::LongString(LongString::from("unsupported schema")));
        let properties = BasicProperties::default()
            .with_type(envelope["eventType"].as_str().unwrap_or("OrderPlaced").into())
            .with_headers(headers)
            .with_delivery_mode(2);
        channel
            .basic_publish(
                "".into(),
                dlq.as_str().into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(envelope)?,
                properties,
            )
            .await?
            .await?;
    }
    let output = Command::new(binary("query-service")?)
        .args(["dlq", "redrive"])
        .env("PROJECTOR_PARTITIONS", PARTITIONS.to_string())
        .env("AMQP_URL", AMQP)
        .env("AMQP_EXCHANGE", &suite.names.exchange)
        .env("AMQP_QUEUE", &suite.names.queue)
        .env("RUST_LOG", "error")
        .output()?;
    ensure!(output.status.success(), "dlq redrive failed: {}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let redriven: u32 = stderr
        .lines()
        .find_map(|line| line.strip_prefix("redrove "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if redriven != count + readable.len() as u32 {
        findings.push(format!("redrive moved {redriven}, the queue held {}", count + readable.len() as u32));
    }
    // The poison comes back (once the projector has seen it again), redriven once; the readable events do not.
    let until = Instant::now() + Duration::from_secs(60);
    let (after, reasons) = loop {
        let (after, reasons) = inspect_dead_letters(&connection, &dlq).await?;
        if after >= count || Instant::now() > until {
            break (after, reasons);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (settled, _) = inspect_dead_letters(&connection, &dlq).await?;
    if after != count || settled != count {
        findings.push(format!("after the redrive {settled} dead letters, expected the {count} poison messages"));
    }
    if reasons.iter().any(|(_, redrives)| *redrives != 1) {
        findings.push("a redriven poison message without x-redrive-count 1".to_owned());
    }
    let _ = connection.close(200, "dlq checked".into()).await;
    Ok((count, redriven, findings))
}

/// The dead letters' count and (reason, redrive count) of each, leaving them in the queue.
pub async fn inspect_dead_letters(connection: &Connection, dlq: &str) -> anyhow::Result<(u32, Vec<(String, i64)>)> {
    let inspector = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let count = inspector.queue_declare(dlq.into(), passive, FieldTable::default()).await?.message_count();
    let mut reasons = Vec::new();
    while let Some(message) = inspector.basic_get(dlq.into(), BasicGetOptions::default()).await? {
        let headers = message.delivery.properties.headers().clone().unwrap_or_default();
        let reason = match headers.inner().get("x-dead-letter-reason") {
            Some(AMQPValue::LongString(reason)) => reason.to_string(),
            _ => String::new(),
        };
        let redrives = match headers.inner().get(query_service::projection::REDRIVE_COUNT) {
            Some(AMQPValue::LongLongInt(n)) => n.to_owned(),
            _ => 0,
        };
        reasons.push((reason, redrives));
        if reasons.len() as u32 >= count {
            break;
        }
    }
    // Closing the channel returns every unacked message to the queue.
    inspector.close(200, "inspected".into()).await?;
    Ok((count, reasons))
}

/// Compares the write store, the log and the views, order by order.
pub async fn check(
    suite: &Suite,
    pool: &sqlx::PgPool,
    views: &mongodb::Collection<StoredView>,
    clients: &Clients,
) -> anyhow::Result<Checked> {
    use futures_util::TryStreamExt as _;
    let mut findings = Vec::new();
    // The log, through the event feed: (order, version) → (event, published).
    let published: HashMap<i64, bool> =
        // Published in either relay mode: not in `outbox_backlog` (unmarked rows after the wal relay's record).
        sqlx::query_as::<_, (i64, bool)>(
            "select sequence, sequence not in (select sequence from outbox_backlog) from outbox",
        )
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let mut log: HashMap<(Uuid, i64), OrderEvent> = HashMap::new();
    // Logged events this build cannot read (a newer writer's): (order, version).
    let mut unreadable: Vec<(Uuid, i64)> = Vec::new();
    let mut after = 0i64;
    loop {
        let page = suite.feed(after, 5000).await?;
        let events = page["data"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for envelope in events {
            let event = match shared_events::decode(&serde_json::to_vec(&envelope)?) {
                Ok(event) => event,
                Err(shared_events::DecodeError::UnknownSchemaVersion { .. }) => {
                    let order = envelope["orderId"].as_str().and_then(|id| Uuid::parse_str(id).ok());
                    unreadable.push((order.context("orderId")?, envelope["version"].as_i64().context("version")?));
                    continue;
                }
                Err(err) => bail!("a logged event does not decode: {err}"),
            };
            if log.insert((event.order_id, event.version), event).is_some() {
                findings.push("two logged events for one (order, version)".to_owned());
            }
        }
        after = page["metadata"]["nextAfter"].as_i64().context("nextAfter")?;
    }
    let written: Vec<(Uuid, i64, String)> =
        sqlx::query_as("select id, version, status from customer_order").fetch_all(pool).await?;
    let stored: HashMap<String, StoredView> =
        views.find(mongodb::bson::doc! {}).await?.map_ok(|v| (v.id.clone(), v)).try_collect().await?;

    let mut lost = 0;
    for (id, version) in &clients.accepted {
        let event = log.get(&(*id, *version));
        let is_published = event.is_some_and(|e| published.get(&e.sequence).copied().unwrap_or(false));
        let in_view = stored.get(&id.to_string()).is_some_and(|v| v.version >= *version);
        if !is_published || !in_view {
            lost += 1;
            findings.push(format!(
                "accepted {id} v{version}: logged {}, published {is_published}, in view {in_view}",
                event.is_some()
            ));
        }
    }
    let mut mismatched = 0;
    let mut held_back = 0;
    for (id, version, status) in &written {
        // An order whose newest event this build cannot read keeps the view of its newest readable one.
        let readable = (1..=*version).rev().find(|v| !unreadable.contains(&(*id, *v)));
        if readable != Some(*version) {
            held_back += 1;
            let newest = readable.and_then(|v| log.get(&(*id, v)));
            if newest.map(StoredView::from_event).as_ref() != stored.get(&id.to_string()) {
                mismatched += 1;
                findings.push(format!("view of {id} is not its newest readable event (v{readable:?})"));
            }
            continue;
        }
        let newest = log.get(&(*id, *version));
        let expected = newest.map(StoredView::from_event);
        let view = stored.get(&id.to_string());
        if newest.is_none_or(|e| e.state.status.as_str() != status) || expected.as_ref() != view {
            mismatched += 1;
            if mismatched <= 5 {
                findings
                    .push(format!("view of {id} (write model v{version} {status}) is {view:?}, expected {expected:?}"));
            }
        }
    }
    let mut invented = 0;
    for view in stored.values() {
        let logged = Uuid::parse_str(&view.id).ok().and_then(|id| log.get(&(id, view.version)));
        if logged.is_none_or(|e| e.sequence != view.last_sequence) {
            invented += 1;
            findings.push(format!("view {} at v{} matches no logged event", view.id, view.version));
        }
    }
    if stored.len() != written.len() {
        findings.push(format!("{} views for {} orders", stored.len(), written.len()));
    }
    if clients.accepted.is_empty() {
        bail!("no command was accepted: the suite did not run");
    }
    let events = log.len() + unreadable.len();
    Ok(Checked { orders: written.len(), views: stored.len(), events, lost, mismatched, invented, held_back, findings })
}

/// What each service says of itself once the backlog has drained: nothing may be stalled or still building while
/// it answers ready (every event is applied, so no stage has work waiting). Findings, if any.
pub async fn readiness(suite: &Suite) -> Vec<String> {
    let mut findings = Vec::new();
    let services = [
        ("command-service", suite.command_port),
        ("query-service", suite.query_port),
        ("query-service 2", suite.query2_port),
    ];
    for (name, port) in services {
        let url = format!("http://127.0.0.1:{port}/health/ready");
        let answer = match suite.http.get(&url).send().await {
            Ok(answer) => answer,
            Err(err) => {
                findings.push(format!("{name}: readiness did not answer: {err}"));
                continue;
            }
        };
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or_default();
        if status != 200 {
            findings.push(format!("{name}: not ready after the drain: {body}"));
        }
        for check in ["stalled", "building"] {
            if let Some(reason) = body["reasons"][check].as_str() {
                findings.push(format!("{name}: {check} after the drain: {reason}"));
            }
        }
    }
    findings
}
