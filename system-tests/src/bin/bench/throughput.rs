//! Relay and projector throughput on a pre-filled backlog, each against its raw baseline: lapin publishing the same
//! payloads with confirms in the same batches, and the projector's guarded upserts sent raw through the driver in
//! `update` commands of the projector's mean batch (and one at a time, to see what batching buys).

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{Duration, Instant};

use shared_events::Partition;

use crate::procs::Service;
use crate::stats::{rate, Table};
use crate::Setup;

/// Declares the topic exchange and each `(queue, binding)` on it; `single_active` queues as the query-service
/// declares the projector's (quorum, one active consumer).
pub(crate) async fn declare(
    channel: &Channel,
    exchange: &str,
    queues: &[(String, String)],
    single_active: bool,
) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
    let mut arguments = FieldTable::default();
    if single_active {
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    let queue_options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    for (queue, binding) in queues {
        channel.queue_declare(queue.as_str().into(), queue_options, arguments.clone()).await?;
        let bind = QueueBindOptions::default();
        channel
            .queue_bind(queue.as_str().into(), exchange.into(), binding.as_str().into(), bind, FieldTable::default())
            .await?;
    }
    Ok(())
}

/// Removes what a query-service declared under `exchange` and `AMQP_QUEUE` = `stem` with its queues split into
/// `partitions`: every projection's queue (and partitions') and dead-letter queue, and the three exchanges.
pub(crate) async fn remove_topology(channel: &Channel, exchange: &str, stem: &str, partitions: u16) {
    for projection in query_service::projection::ALL {
        let queue = query_service::projection::projection_queue(stem, projection);
        let split = Partition::all(partitions).filter(|p| p.is_split()).map(|p| format!("{queue}.{}", p.index));
        for name in [queue.clone(), format!("{queue}.dlq")].into_iter().chain(split) {
            let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
        }
    }
    let read_models =
        shared_events::READ_MODELS.iter().map(|name| shared_events::read_model::exchange_of(exchange, name));
    let exchanges = [exchange.to_owned(), format!("{exchange}.view-changed")];
    for name in exchanges.into_iter().chain(read_models) {
        let _ = channel.exchange_delete(name.as_str().into(), Default::default()).await;
    }
}

/// Publishes `messages` (routing key, body) in batches of `batch`, waiting for each batch's confirms.
pub(crate) async fn publish_batches(
    channel: &Channel,
    exchange: &str,
    messages: &[(String, Vec<u8>)],
    batch: usize,
) -> anyhow::Result<()> {
    publish_copies(channel, &[exchange.to_owned()], messages, batch).await
}

/// The exchange of every read model under `stem` (`AMQP_EXCHANGE`): where the relay publishes a copy of each event.
pub(crate) fn read_model_exchanges(stem: &str) -> Vec<String> {
    shared_events::READ_MODELS.iter().map(|name| shared_events::read_model::exchange_of(stem, name)).collect()
}

/// Publishes `messages` as the relay does, a copy of each to every one of `exchanges`, in batches of `batch`
/// messages (each with its copies), waiting for each batch's confirms.
pub(crate) async fn publish_copies(
    channel: &Channel,
    exchanges: &[String],
    messages: &[(String, Vec<u8>)],
    batch: usize,
) -> anyhow::Result<()> {
    let properties = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    for chunk in messages.chunks(batch) {
        let mut confirms = Vec::with_capacity(chunk.len() * exchanges.len());
        for (key, body) in chunk {
            for exchange in exchanges {
                let options = BasicPublishOptions::default();
                let confirm = channel
                    .basic_publish(exchange.as_str().into(), key.as_str().into(), options, body, properties.clone())
                    .await?;
                confirms.push(confirm);
            }
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
        }
    }
    Ok(())
}

/// `bodies`, each with the routing key of an unsplit stream.
fn unsplit(bodies: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    bodies.into_iter().map(|body| ("OrderPlaced".to_owned(), body)).collect()
}

pub async fn relay(setup: &Setup, table: &mut Table, events: i64) -> anyhow::Result<f64> {
    let (database, database_url, pool) = crate::migrated_database(setup, "relay").await?;
    let env = [("DATABASE_URL", database_url.clone()), ("AMQP_URL", setup.amqp_url.clone())];
    crate::prefill_outbox(&pool, events).await?;

    let exchange = format!("{}.relay", setup.names.exchange);
    let queue = format!("{}.relay", setup.names.queue);
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // One sink for the copies the relay publishes to every read model's exchange.
    let exchanges = read_model_exchanges(&exchange);
    for read_model in &exchanges {
        declare(&channel, read_model, &[(queue.clone(), "#".to_owned())], false).await?;
    }

    // The relay's Postgres connections pass through a counting proxy: round trips per relayed event.
    let upstream = setup.postgres.rsplit_once('@').and_then(|(_, host)| host.parse().ok());
    let proxy = system_tests::wire::PgRoundTrips::start(
        upstream.ok_or_else(|| anyhow::anyhow!("TEST_POSTGRES_URL must name host:port"))?,
    )
    .await?;
    let mut env = env.to_vec();
    env[0].1 = proxy.url(&database_url);
    env.push(("AMQP_EXCHANGE", exchange.clone()));
    env.push(("RELAY_BATCH_SIZE", "500".to_owned()));
    let started = Instant::now();
    let relay = Service::start("relay", "command-service", &["relay"], &env).await?;
    loop {
        let left: i64 =
            sqlx::query_scalar("select count(*) from outbox where published_at is null").fetch_one(&pool).await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let relay_rate = rate(events as u64, started.elapsed());
    let rss = relay.peak_rss_mib();
    let cpu_ms = relay.cpu_seconds() * 1000.0 / events as f64;
    relay.stop();
    let trips = proxy.seen();
    channel.queue_purge(queue.as_str().into(), Default::default()).await?;

    // Baseline: the same envelopes, read beforehand, published with confirms in batches of 500.
    let mut bodies = Vec::with_capacity(events as usize);
    let mut after = 0;
    loop {
        let rows = command_service::store::events_after(&pool, after, 5_000).await?;
        let Some(last) = rows.last().map(|row| row.sequence) else { break };
        after = last;
        for row in rows {
            bodies.push(serde_json::to_vec(&row.into_envelope())?);
        }
    }
    let confirming = connection.create_channel().await?;
    confirming.confirm_select(ConfirmSelectOptions::default()).await?;
    let messages = unsplit(bodies);
    let (cpu_before, started) = (crate::procs::own_cpu_seconds(), Instant::now());
    publish_copies(&confirming, &exchanges, &messages, 500).await?;
    let raw_rate = rate(messages.len() as u64, started.elapsed());
    let raw_cpu_ms = (crate::procs::own_cpu_seconds() - cpu_before) * 1000.0 / messages.len().max(1) as f64;
    table.add(
        &format!("relay, {events} pre-filled rows"),
        format!(
            "{relay_rate:.0} events/s; {:.4} Postgres round trips per event ({} in all); CPU {cpu_ms:.3} ms/event",
            trips.total() as f64 / events as f64,
            trips.total()
        ),
        format!(
            "lapin + confirms, a copy per read model, batches of 500: {raw_rate:.0} events/s, bench CPU \
             {raw_cpu_ms:.3} ms/event"
        ),
        Some(relay_rate / raw_rate),
        "≥ 0.50×",
    );

    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    for read_model in &exchanges {
        let _ = channel.exchange_delete(read_model.as_str().into(), Default::default()).await;
    }
    let _ = connection.close(200, "relay measured".into()).await;
    pool.close().await;
    crate::drop_postgres(&setup.postgres, &database).await;
    Ok(rss)
}

pub async fn projector(setup: &Setup, table: &mut Table, events: usize) -> anyhow::Result<f64> {
    let database = format!("{}_projector", setup.names.database);
    let exchange = format!("{}.projector", setup.names.exchange);
    let queue = format!("{}.projector", setup.names.queue);
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    declare(&channel, &exchange, &[(queue.clone(), "#".to_owned())], true).await?;
    let bodies: Vec<Vec<u8>> =
        (0..events).map(|n| serde_json::to_vec(&crate::sample_envelope(n, n as i64 + 1))).collect::<Result<_, _>>()?;
    publish_batches(&channel, &exchange, &unsplit(bodies), 1_000).await?;

    let env = [
        ("AMQP_URL", setup.amqp_url.clone()),
        ("AMQP_EXCHANGE", exchange.clone()),
        ("AMQP_QUEUE", queue.clone()),
        ("MONGODB_URI", setup.mongodb_uri.clone()),
        ("MONGODB_DATABASE", database.clone()),
        // The order views alone (the `projections` stage measures the others).
        ("PROJECTIONS", "orders".to_owned()),
    ];
    let watcher = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let views = watcher.database(&database).collection::<mongodb::bson::Document>("order_views");
    let started = Instant::now();
    let projector = Service::start("projector", "query-service", &[], &env).await?;
    let load = crate::freshness::Load::of(vec![
        ("query-service".to_owned(), projector.stat_path()),
        ("bench".to_owned(), "/proc/self/stat".to_owned()),
    ]);
    loop {
        if views.estimated_document_count().await? >= events as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let projector_rate = rate(events as u64, started.elapsed());
    let projector_load = load.busiest();
    let rss = projector.peak_rss_mib();
    let counters = crate::cost::mongo_counters(&setup.http, &projector).await;
    let cpu_ms = projector.cpu_seconds() * 1000.0 / events as f64;
    projector.stop();
    let batches = counters.get("projector_batch_views_count").copied().unwrap_or(0.0).max(1.0);
    let batch = (counters.get("projector_batch_views_sum").copied().unwrap_or(0.0) / batches).round().max(1.0) as usize;
    let updates = counters.get("update").copied().unwrap_or(0.0);

    // Baselines, into the same collection (same size, same indexes), for orders it does not hold yet: the same
    // guarded, journaled upserts sent raw through the driver — in `update` commands of the projector's mean batch,
    // and one at a time.
    let client = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let database_handle = client.database(&database);
    let samples = events.min(5_000);
    let load = crate::freshness::Load::of(vec![("bench".to_owned(), "/proc/self/stat".to_owned())]);
    let (cpu_before, started) = (crate::procs::own_cpu_seconds(), Instant::now());
    let mut n = events;
    while n < events + samples {
        let views: Vec<_> =
            (n..(n + batch).min(events + samples)).map(|n| crate::sample_view(n, n as i64 + 1)).collect();
        n += views.len();
        raw_bulk_upsert(&database_handle, "order_views", &views).await?;
    }
    let bulk_rate = rate(samples as u64, started.elapsed());
    let bulk_load = load.busiest();
    let bulk_cpu_ms = (crate::procs::own_cpu_seconds() - cpu_before) * 1000.0 / samples as f64;
    let store = query_service::store::connect(&setup.mongodb_uri, &database, &Default::default()).await?;
    let collection = store.generation("order_views");
    let singles = samples.min(2_000);
    let started = Instant::now();
    for n in events + samples..events + samples + singles {
        query_service::store::apply_to(&collection, &crate::sample_view(n, n as i64 + 1)).await?;
    }
    let single_rate = rate(singles as u64, started.elapsed());
    table.add(
        &format!("projector, {events} queued events"),
        format!(
            "{projector_rate:.0} events/s; {:.2} update commands per batch of {batch} (mean); CPU {cpu_ms:.3} ms/event; {projector_load}",
            updates / batches
        ),
        format!(
            "raw bulk upserts, {batch} per update ({samples}): {bulk_rate:.0}/s, bench CPU {bulk_cpu_ms:.3} ms/event, {bulk_load}; one at a time ({singles}): {single_rate:.0}/s"
        ),
        Some(projector_rate / bulk_rate),
        "≥ 1.0× bulk, ≤ 1 update per batch",
    );
    remove_topology(&channel, &exchange, &queue, 1).await;
    let _ = connection.close(200, "projector measured".into()).await;
    let _ = client.database(&database).drop().await;
    Ok(rss)
}

/// Projection of one backlog split into 1, 2 and 4 partitions, one projecting replica per partition (the replicas
/// share them as in production, the hand-out of the first seconds included): events/s of each, against the
/// one-partition rate. Every partition writes to the same single-process stand-in read store, which caps them all.
pub async fn partitions(setup: &Setup, table: &mut Table, events: usize) -> anyhow::Result<()> {
    let mut one = None;
    for count in [1u16, 2, 4] {
        let database = format!("{}_partitions{count}", setup.names.database);
        let exchange = format!("{}.partitions{count}", setup.names.exchange);
        let queue = format!("{}.partitions{count}", setup.names.queue);
        // The partitions' queues, as the query-service declares them.
        let queues: Vec<(String, String)> = Partition::all(count)
            .map(|p| (if p.is_split() { format!("{queue}.{}", p.index) } else { queue.clone() }, p.binding()))
            .collect();
        let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare(&channel, &exchange, &queues, true).await?;
        let mut messages = Vec::with_capacity(events);
        for n in 0..events {
            let envelope = crate::sample_envelope(n, n as i64 + 1);
            let order_id: uuid::Uuid = serde_json::from_value(envelope["orderId"].clone())?;
            messages.push((Partition::of(order_id, count).routing_key("OrderPlaced"), serde_json::to_vec(&envelope)?));
        }
        publish_batches(&channel, &exchange, &messages, 1_000).await?;

        let env = [
            ("AMQP_URL", setup.amqp_url.clone()),
            ("AMQP_EXCHANGE", exchange.clone()),
            ("AMQP_QUEUE", queue.clone()),
            ("PROJECTOR_PARTITIONS", count.to_string()),
            ("PROJECTIONS", "orders".to_owned()),
            ("MONGODB_URI", setup.mongodb_uri.clone()),
            ("MONGODB_DATABASE", database.clone()),
            ("READ_MODEL_SAMPLE_RATE", "0".to_owned()),
        ];
        let watcher = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
        let views = watcher.database(&database).collection::<mongodb::bson::Document>("order_views");
        let started = Instant::now();
        let mut replicas = Vec::new();
        for index in 0..count {
            replicas.push(Service::start(&format!("projector-{index}"), "query-service", &[], &env).await?);
        }
        let load = crate::freshness::Load::of(
            replicas.iter().enumerate().map(|(i, r)| (format!("projector {i}"), r.stat_path())).collect(),
        );
        while views.estimated_document_count().await? < events as u64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events_per_second = rate(events as u64, started.elapsed());
        let busiest = load.busiest();
        for replica in replicas {
            replica.stop();
        }
        let baseline = *one.get_or_insert(events_per_second);
        table.add(
            &format!("projector, {count} partition(s), {count} replica(s), {events} queued events"),
            format!("{events_per_second:.0} events/s; {busiest}"),
            format!("1 partition: {baseline:.0}/s (all partitions write to the one stand-in process)"),
            Some(events_per_second / baseline),
            "",
        );
        for name in queues.into_iter().map(|(name, _)| name) {
            let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
        }
        remove_topology(&channel, &exchange, &queue, count).await;
        let _ = connection.close(200, "partitions measured".into()).await;
        let _ = watcher.database(&database).drop().await;
    }
    Ok(())
}

/// The projector's write, raw: one journaled `update` command of version-guarded upserts.
pub async fn raw_bulk_upsert(
    database: &mongodb::Database,
    collection: &str,
    views: &[query_service::store::StoredView],
) -> anyhow::Result<()> {
    use mongodb::bson::doc;
    let updates = views
        .iter()
        .map(|view| {
            let set = mongodb::bson::to_document(view)?;
            Ok(doc! { "q": { "_id": &view.id, "version": { "$lt": view.version } }, "u": { "$set": set }, "upsert": true })
        })
        .collect::<Result<Vec<_>, mongodb::bson::ser::Error>>()?;
    let command = doc! { "update": collection, "updates": updates, "ordered": false, "writeConcern": { "j": true } };
    database.run_command(command).await?;
    Ok(())
}
