//! Relay and projector throughput on a pre-filled backlog, each against its raw baseline: lapin publishing the same
//! payloads with confirms in the same batches, and guarded upserts through the driver at the projector's
//! concurrency (one at a time).

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{Duration, Instant};

use crate::procs::Service;
use crate::stats::{rate, Table};
use crate::Setup;

async fn declare(channel: &Channel, exchange: &str, queue: &str, single_active: bool) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
    let mut arguments = FieldTable::default();
    if single_active {
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    let queue_options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.into(), queue_options, arguments).await?;
    channel
        .queue_bind(queue.into(), exchange.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
}

/// Publishes `bodies` in batches of `batch`, waiting for each batch's confirms.
async fn publish_batches(channel: &Channel, exchange: &str, bodies: &[Vec<u8>], batch: usize) -> anyhow::Result<()> {
    let properties = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    for chunk in bodies.chunks(batch) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for body in chunk {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    "OrderPlaced".into(),
                    BasicPublishOptions::default(),
                    body,
                    properties.clone(),
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
        }
    }
    Ok(())
}

pub async fn relay(setup: &Setup, table: &mut Table, events: i64) -> anyhow::Result<f64> {
    let database = format!("{}_relay", setup.names.database);
    let database_url = format!("{}/{database}", setup.postgres);
    let env = [("DATABASE_URL", database_url.clone()), ("AMQP_URL", setup.amqp_url.clone())];
    let migrate = std::process::Command::new(crate::procs::binary("command-service")?)
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(migrate.success(), "command-service migrate failed");
    let pool = sqlx::PgPool::connect(&database_url).await?;
    crate::prefill_outbox(&pool, events).await?;

    let exchange = format!("{}.relay", setup.names.exchange);
    let queue = format!("{}.relay", setup.names.queue);
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare(&channel, &exchange, &queue, false).await?;

    let mut env = env.to_vec();
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
    relay.stop();
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
    let started = Instant::now();
    publish_batches(&confirming, &exchange, &bodies, 500).await?;
    let raw_rate = rate(bodies.len() as u64, started.elapsed());
    table.add(
        &format!("relay, {events} pre-filled rows"),
        format!("{relay_rate:.0} events/s"),
        format!("lapin + confirms, batches of 500: {raw_rate:.0}/s"),
        Some(relay_rate / raw_rate),
        "≥ 0.50×",
    );

    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
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
    declare(&channel, &exchange, &queue, true).await?;
    let bodies: Vec<Vec<u8>> =
        (0..events).map(|n| serde_json::to_vec(&crate::sample_envelope(n, n as i64 + 1))).collect::<Result<_, _>>()?;
    publish_batches(&channel, &exchange, &bodies, 1_000).await?;

    let env = [
        ("AMQP_URL", setup.amqp_url.clone()),
        ("AMQP_EXCHANGE", exchange.clone()),
        ("AMQP_QUEUE", queue.clone()),
        ("MONGODB_URI", setup.mongodb_uri.clone()),
        ("MONGODB_DATABASE", database.clone()),
    ];
    let client = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let views = client.database(&database).collection::<mongodb::bson::Document>("order_views");
    let started = Instant::now();
    let projector = Service::start("projector", "query-service", &[], &env).await?;
    loop {
        if views.estimated_document_count().await? >= events as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let projector_rate = rate(events as u64, started.elapsed());
    let rss = projector.peak_rss_mib();
    projector.stop();

    // Baseline: the same guarded, journaled upserts, one at a time, into the same collection (same size, same
    // indexes), for orders it does not hold yet.
    let store = query_service::store::connect(&setup.mongodb_uri, &database).await?;
    let collection = store.generation("order_views");
    let samples = events.min(5_000);
    let started = Instant::now();
    for n in events..events + samples {
        query_service::store::apply_to(&collection, &crate::sample_view(n, n as i64 + 1)).await?;
    }
    let raw_rate = rate(samples as u64, started.elapsed());
    table.add(
        &format!("projector, {events} queued events"),
        format!("{projector_rate:.0} events/s"),
        format!("guarded upserts into the same collection, one at a time ({samples}): {raw_rate:.0}/s"),
        Some(projector_rate / raw_rate),
        "≥ 0.80×",
    );
    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = channel.queue_delete(format!("{queue}.dlq").as_str().into(), QueueDeleteOptions::default()).await;
    let _ = channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
    let _ = channel.exchange_delete(format!("{exchange}.view-changed").as_str().into(), Default::default()).await;
    let _ = connection.close(200, "projector measured".into()).await;
    let _ = client.database(&database).drop().await;
    Ok(rss)
}
