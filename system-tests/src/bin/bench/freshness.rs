//! Freshness, open loop: commands at a fixed arrival rate (so a slow answer cannot hold the next command back), each
//! followed by a waiting read; commit → visible is the time from the POST's answer to the read's 200. Baseline: the
//! raw hops measured alone — publish + confirm on RabbitMQ, publish → delivery, one guarded upsert on MongoDB.

use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::stats::{Latencies, Table};
use crate::Setup;

/// Commands at `per_second` for `seconds`; returns (command latency from the scheduled send, freshness, reads 200).
pub async fn run_at(setup: &Setup, per_second: u64, seconds: u64) -> (Latencies, Latencies, usize, usize) {
    let commands = Arc::new(Mutex::new(Latencies::new()));
    let fresh = Arc::new(Mutex::new(Latencies::new()));
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let start = tokio::time::Instant::now();
    let total = per_second * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = start + interval * n as u32;
        tokio::time::sleep_until(scheduled).await;
        let (http, command_url, query, commands, fresh, ok) = (
            setup.http.clone(),
            setup.command.url("/commands/orders"),
            setup.query.url(""),
            commands.clone(),
            fresh.clone(),
            ok.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"customerId": format!("fresh-{}", n % 100), "items": [{"sku": "S", "quantity": 1, "unitPrice": 1}]});
            let Ok(response) = http.post(command_url).json(&body).send().await else { return };
            let committed = Instant::now();
            commands.lock().await.record(tokio::time::Instant::now() - scheduled);
            let Ok(placed) = response.json::<serde_json::Value>().await else { return };
            let url = format!("{query}/queries/orders/{}?minVersion=1&waitMs=30000", placed["orderId"].as_str().unwrap_or_default());
            if let Ok(read) = http.get(url).send().await {
                if read.status() == 200 {
                    fresh.lock().await.record(committed.elapsed());
                    ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let commands = std::mem::replace(&mut *commands.lock().await, Latencies::new());
    let fresh = std::mem::replace(&mut *fresh.lock().await, Latencies::new());
    (commands, fresh, ok.load(std::sync::atomic::Ordering::Relaxed), total as usize)
}

/// The raw hops, each measured alone `samples` times.
async fn hops(setup: &Setup, samples: usize) -> anyhow::Result<(Latencies, Latencies, Latencies)> {
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = format!("{}.hops", setup.names.queue);
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.as_str().into(), durable, Default::default()).await?;
    let body = serde_json::to_vec(&serde_json::json!({"x": "y".repeat(600)}))?;
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut confirm = Latencies::new();
    for _ in 0..samples {
        let sent = Instant::now();
        channel
            .basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &body, persistent.clone())
            .await?
            .await?;
        confirm.record(sent.elapsed());
    }
    channel.queue_purge(queue.as_str().into(), Default::default()).await?;
    let consumer_channel = connection.create_channel().await?;
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut deliveries =
        consumer_channel.basic_consume(queue.as_str().into(), "".into(), no_ack, Default::default()).await?;
    let mut consume = Latencies::new();
    for _ in 0..samples {
        let sent = Instant::now();
        channel
            .basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &body, persistent.clone())
            .await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), deliveries.next()).await;
        consume.record(sent.elapsed());
    }
    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = connection.close(200, "hops measured".into()).await;

    let views = query_service::store::connect(&setup.mongodb_uri, &setup.names.database, &Default::default()).await?;
    let collection = views.generation("hops");
    let mut upsert = Latencies::new();
    for n in 0..samples {
        let view = crate::sample_view(n, 1);
        let sent = Instant::now();
        query_service::store::apply_to(&collection, &view).await?;
        upsert.record(sent.elapsed());
    }
    views.drop_generation("hops").await?;
    Ok((confirm, consume, upsert))
}

/// The raw hops' p50 and p99 (sums of the three), measured alone.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub p50: f64,
    pub p99: f64,
}

pub async fn measure(setup: &Setup, table: &mut Table, seconds: u64) -> anyhow::Result<Floor> {
    let (confirm, consume, upsert) = hops(setup, 300).await?;
    let floor50 = confirm.ms(0.5) + consume.ms(0.5) + upsert.ms(0.5);
    let floor99 = confirm.ms(0.99) + consume.ms(0.99) + upsert.ms(0.99);
    table.add(
        "raw hops (alone): confirm / consume / upsert",
        format!("p50 {:.2} / {:.2} / {:.2} ms", confirm.ms(0.5), consume.ms(0.5), upsert.ms(0.5)),
        format!("sum p50 {floor50:.2} ms, p99 {floor99:.2} ms"),
        None,
        "",
    );
    for per_second in [50, 200, 500] {
        let load = Load::start(setup);
        let (commands, fresh, ok, total) = run_at(setup, per_second, seconds).await;
        let busiest = load.busiest();
        table.add(
            &format!("freshness at {per_second} commands/s ({total})"),
            format!("{} (commands {}); busiest: {busiest}", fresh.summary(), commands.summary()),
            format!("{floor50:.2} / {floor99:.2} ms (p50 / p99 of hops)"),
            Some(fresh.ms(0.99) / floor99),
            if per_second == 200 { "p99 ≤ 25 ms" } else { "" },
        );
        table.add(
            &format!("read-your-writes at {per_second}/s"),
            format!("{:.2} % answered 200 in one (waiting) read", ok as f64 * 100.0 / total as f64),
            "—".to_owned(),
            None,
            "",
        );
    }
    Ok(Floor { p50: floor50, p99: floor99 })
}

/// CPU use of every process on the pipeline over one run, and of the whole machine, to tell what saturates.
pub struct Load {
    started: Instant,
    processes: Vec<(String, String, f64)>,
    machine: (f64, f64),
}

/// Busy and total CPU time of the whole machine so far, in ticks (`/proc/stat`).
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

impl Load {
    /// Starts counting: the services, the bench, the MongoDB-wire server and RabbitMQ (found by their command line).
    pub fn start(setup: &Setup) -> Self {
        Self::of(vec![
            ("command-service".to_owned(), setup.command.stat_path()),
            ("query-service".to_owned(), setup.query.stat_path()),
            ("bench".to_owned(), "/proc/self/stat".to_owned()),
        ])
    }

    /// Starts counting `processes` (name, stat path), the MongoDB-wire server and RabbitMQ.
    pub fn of(mut processes: Vec<(String, String)>) -> Self {
        for (name, needle) in [("MongoDB stand-in", "secantusd"), ("RabbitMQ", "beam.smp")] {
            if let Some(pid) = crate::procs::find_process(needle) {
                processes.push((name.to_owned(), format!("/proc/{pid}/stat")));
            }
        }
        let processes = processes
            .into_iter()
            .map(|(name, path)| {
                let cpu = crate::procs::cpu_seconds(&path);
                (name, path, cpu)
            })
            .collect();
        Self { started: Instant::now(), processes, machine: machine_ticks() }
    }

    /// CPU use since [`Load::start`], per process, as a share of one core: busiest first.
    pub fn shares(&self) -> Vec<(String, f64)> {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut shares: Vec<(String, f64)> = self
            .processes
            .iter()
            .map(|(name, path, before)| (name.clone(), (crate::procs::cpu_seconds(path) - before) / elapsed))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares
    }

    /// `machine 96 % of 2 cores; MongoDB stand-in 58 %, query-service 31 %`: how busy the machine was, and the two
    /// busiest processes (in shares of one core).
    pub fn busiest(&self) -> String {
        let shares = self.shares();
        let (busy, total) = machine_ticks();
        let machine = (busy - self.machine.0) / (total - self.machine.1).max(1.0);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let top: Vec<String> =
            shares.iter().take(2).map(|(name, share)| format!("{name} {:.0} %", share * 100.0)).collect();
        format!("machine {:.0} % of {cores} cores; {}", machine * 100.0, top.join(", "))
    }
}
