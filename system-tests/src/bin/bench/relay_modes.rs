//! The relay's two modes side by side (`--only relay-modes`): the drain of a pre-filled log against raw publishing
//! with confirms, Postgres write work per event (rows marked, WAL bytes), and commit → publish latency at 50 and
//! 200 commands/s.

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};

use crate::procs::Service;
use crate::stats::{rate, Latencies, Table};
use crate::throughput::{declare, publish_copies, read_model_exchanges};
use crate::Setup;

const MODES: [&str; 2] = ["notify", "wal"];

/// A database, exchange and queue of one measurement; removed by [`Run::remove`].
struct Run {
    database: String,
    database_url: String,
    exchange: String,
    /// Every read model's exchange under `exchange`.
    exchanges: Vec<String>,
    queue: String,
    pool: sqlx::PgPool,
    channel: Channel,
}

impl Run {
    async fn prepare(setup: &Setup, connection: &Connection, name: &str) -> anyhow::Result<Self> {
        let (database, database_url, pool) = crate::migrated_database(setup, name).await?;
        let (exchange, queue) = (format!("{}.{name}", setup.names.exchange), format!("{}.{name}", setup.names.queue));
        let channel = connection.create_channel().await?;
        // The relay publishes a copy of every event and checkpoint to each read model's exchange. The order views'
        // events in one queue, counted; everything else in a sink, so that it is routed (a relay holds back what no
        // queue takes).
        let exchanges = read_model_exchanges(&exchange);
        let sink = format!("{queue}.sink");
        for read_model in &exchanges {
            let bindings = if *read_model == shared_events::read_model::exchange_of(&exchange, "orders") {
                vec![
                    (queue.clone(), "OrderPlaced".to_owned()),
                    (sink.clone(), shared_events::CHECKPOINT_TYPE.to_owned()),
                ]
            } else {
                vec![(sink.clone(), "#".to_owned())]
            };
            declare(&channel, read_model, &bindings, false).await?;
        }
        Ok(Self { database, database_url, exchange, exchanges, queue, pool, channel })
    }

    fn env(&self, setup: &Setup, mode: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("AMQP_URL", setup.amqp_url.clone()),
            ("AMQP_EXCHANGE", self.exchange.clone()),
            ("RELAY_MODE", mode.to_owned()),
            ("RELAY_BATCH_SIZE", "500".to_owned()),
        ]
    }

    async fn queued(&self) -> anyhow::Result<u32> {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        Ok(self.channel.queue_declare(self.queue.as_str().into(), passive, Default::default()).await?.message_count())
    }

    async fn wal_lsn(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Waits until a `wal` relay streams from its slot (it created it and published what came before).
    async fn streaming(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let slot: Option<String> =
                sqlx::query_scalar("select slot from relay_progress").fetch_one(&self.pool).await?;
            if slot.is_some() {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the wal relay did not take its slot within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn remove(self, setup: &Setup) {
        for queue in [self.queue.clone(), format!("{}.sink", self.queue)] {
            let _ = self.channel.queue_delete(queue.as_str().into(), Default::default()).await;
        }
        for exchange in &self.exchanges {
            let _ = self.channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
        }
        self.pool.close().await;
        crate::drop_postgres(&setup.postgres, &self.database).await;
    }
}

pub async fn measure(setup: &Setup, table: &mut Table, events: i64) -> anyhow::Result<()> {
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let mut drains = Vec::new();
    for mode in MODES {
        drains.push(drain(setup, &connection, table, mode, events).await?);
    }
    if let [notify, wal] = drains.as_slice() {
        table.add(
            "relay wal vs notify: events/s",
            format!("wal {wal:.0}/s"),
            format!("notify {notify:.0}/s"),
            Some(wal / notify),
            "≥ 1.0×",
        );
    }
    for per_second in [50, 200] {
        for mode in MODES {
            latency(setup, &connection, table, mode, per_second).await?;
        }
    }
    let _ = connection.close(200, "relay modes measured".into()).await;
    Ok(())
}

/// Drains `events` pre-filled rows with a relay in `mode`; returns its events/s.
async fn drain(
    setup: &Setup,
    connection: &Connection,
    table: &mut Table,
    mode: &str,
    events: i64,
) -> anyhow::Result<f64> {
    let run = Run::prepare(setup, connection, &format!("drain_{mode}")).await?;
    let env = run.env(setup, mode);
    if mode == "wal" {
        // The slot exists before the rows commit, so they come through it (not through the catch-up at its creation).
        let relay = Service::start("relay", "command-service", &["relay"], &env).await?;
        run.streaming().await?;
        relay.stop();
    }
    system_tests::prefill_outbox(&run.pool, events).await?;
    let lsn = run.wal_lsn().await?;
    let started = Instant::now();
    let relay = Service::start("relay", "command-service", &["relay"], &env).await?;
    let deadline = started + Duration::from_secs(600);
    while i64::from(run.queued().await?) < events {
        anyhow::ensure!(Instant::now() < deadline, "{mode}: the relay did not drain {events} events in 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relay_rate = rate(events as u64, started.elapsed());
    let wal_bytes = (run.wal_lsn().await? - lsn) as f64 / events as f64;
    let cpu_ms = relay.cpu_seconds() * 1000.0 / events as f64;
    relay.stop();
    let marked: i64 =
        sqlx::query_scalar("select count(*) from outbox where published_at is not null").fetch_one(&run.pool).await?;

    // Baseline: the same envelopes published with confirms in batches of 500.
    let rows = command_service::store::events_after(&run.pool, 0, events).await?;
    let messages: Vec<(String, Vec<u8>)> = rows
        .into_iter()
        .map(|row| Ok((row.event_type.clone(), serde_json::to_vec(&row.into_envelope())?)))
        .collect::<anyhow::Result<_>>()?;
    let confirming = connection.create_channel().await?;
    confirming.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    publish_copies(&confirming, &run.exchanges, &messages, 500).await?;
    let raw_rate = rate(messages.len() as u64, started.elapsed());
    table.add(
        &format!("relay {mode}, {events} pre-filled rows"),
        format!(
            "{relay_rate:.0} events/s; {:.2} rows marked and {wal_bytes:.0} WAL bytes per event while draining; \
             CPU {cpu_ms:.3} ms/event",
            marked as f64 / events as f64
        ),
        format!("lapin + confirms, a copy per read model, batches of 500: {raw_rate:.0} events/s"),
        Some(relay_rate / raw_rate),
        "≥ 0.50×",
    );
    run.remove(setup).await;
    Ok(relay_rate)
}

/// Commands at `per_second` for 10 s through a command-service whose relay runs in `mode`: from the event's
/// `occurredAt` (its transaction's start) to its delivery on a queue bound to the exchange.
async fn latency(
    setup: &Setup,
    connection: &Connection,
    table: &mut Table,
    mode: &str,
    per_second: u64,
) -> anyhow::Result<()> {
    let run = Run::prepare(setup, connection, &format!("latency_{mode}_{per_second}")).await?;
    let service = Service::start("command-service", "command-service", &[], &run.env(setup, mode)).await?;
    if mode == "wal" {
        run.streaming().await?;
    }
    let consume = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut consumer =
        run.channel.basic_consume(run.queue.as_str().into(), "".into(), consume, Default::default()).await?;
    let seconds = 10;
    let total = per_second * seconds;
    let url = service.url("/commands/orders");
    let http = setup.http.clone();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
        let mut sent = Vec::new();
        for n in 0..total {
            tick.tick().await;
            let (http, url) = (http.clone(), url.clone());
            sent.push(tokio::spawn(async move {
                let order = serde_json::json!({"customerId": format!("cust-{}", n % 100), "currency": "EUR",
                    "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": "9.99"}]});
                http.post(url).json(&order).send().await.map(|r| r.status().is_success()).unwrap_or(false)
            }));
        }
        let mut accepted = 0u64;
        for request in sent {
            accepted += u64::from(request.await.unwrap_or(false));
        }
        accepted
    });
    let mut latencies = Latencies::new();
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while latencies.count() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(delivery)) = tokio::time::timeout(left, consumer.next()).await else { break };
        let envelope: shared_events::Envelope = serde_json::from_slice(&delivery?.data)?;
        let age = time::OffsetDateTime::now_utc() - envelope.occurred_at;
        latencies.record(age.try_into().unwrap_or_default());
    }
    let accepted = sender.await?;
    service.stop();
    anyhow::ensure!(latencies.count() == accepted, "{mode}: {} of {accepted} events arrived", latencies.count());
    table.add(
        &format!("commit → publish, relay {mode}, {per_second} commands/s"),
        format!("p50 {:.1} ms, p99 {:.1} ms ({accepted} events)", latencies.ms(0.5), latencies.ms(0.99)),
        "".to_owned(),
        None,
        "",
    );
    run.remove(setup).await;
    Ok(())
}
