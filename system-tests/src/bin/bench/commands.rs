//! Command throughput and latency, closed loop, against the same store calls made directly through sqlx; and
//! read-your-writes right after each POST.

use futures_util::StreamExt as _;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

use crate::stats::{rate, Latencies, Table};
use crate::Setup;

fn order_json(n: usize) -> serde_json::Value {
    serde_json::json!({
        "customerId": format!("bench-{}", n % 100), "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99"}, {"sku": "SKU-2", "quantity": 1, "unitPrice": "5.00"}]
    })
}

/// `count` POSTs at `concurrency`; returns (orders/s, latencies, placed (id, version)).
async fn http_run(
    setup: &Setup,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, Latencies, Vec<(String, i64)>)> {
    let latencies = Arc::new(Mutex::new(Latencies::new()));
    let placed = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let url = setup.command.url("/commands/orders");
    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(concurrency, |n| {
            let (http, url, latencies, placed) = (&setup.http, &url, latencies.clone(), placed.clone());
            async move {
                let sent = Instant::now();
                let Ok(response) = http.post(url).json(&order_json(n)).send().await else { return };
                let elapsed = sent.elapsed();
                if response.status() == 201 {
                    latencies.lock().await.record(elapsed);
                    if let Ok(body) = response.json::<serde_json::Value>().await {
                        let id = body["orderId"].as_str().unwrap_or_default().to_owned();
                        placed.lock().await.push((id, body["sequenceId"].as_i64().unwrap_or(1)));
                    }
                }
            }
        })
        .await;
    let elapsed = started.elapsed();
    let latencies = Arc::try_unwrap(latencies).map_err(|_| anyhow::anyhow!("latencies still shared"))?.into_inner();
    let placed = Arc::try_unwrap(placed).map_err(|_| anyhow::anyhow!("orders still shared"))?.into_inner();
    Ok((rate(latencies.count(), elapsed), latencies, placed))
}

/// The limit of a command: its one statement (`store::place`), issued raw through sqlx on a pool of the service's
/// size at the same concurrency.
async fn sql_run(setup: &Setup, count: usize, concurrency: usize) -> anyhow::Result<(f64, Latencies)> {
    let latencies = Arc::new(Mutex::new(Latencies::new()));
    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(concurrency, |n| {
            let (pool, latencies) = (&setup.pool, latencies.clone());
            async move {
                let command = serde_json::from_value(order_json(n)).expect("a valid command");
                let order = command_service::domain::NewOrder::parse(command).expect("a valid order");
                let sent = Instant::now();
                let placing = command_service::domain::Command::Place(order);
                let Ok(change) = command_service::domain::decide(None, &placing, time::OffsetDateTime::now_utc())
                else {
                    return;
                };
                let Ok(mut conn) = pool.acquire().await else { return };
                if command_service::store::place(&mut conn, uuid::Uuid::now_v7(), &change, None, None).await.is_ok() {
                    latencies.lock().await.record(sent.elapsed());
                }
            }
        })
        .await;
    let elapsed = started.elapsed();
    let latencies = Arc::try_unwrap(latencies).map_err(|_| anyhow::anyhow!("latencies still shared"))?.into_inner();
    Ok((rate(latencies.count(), elapsed), latencies))
}

/// Closed-loop command runs at concurrency 1, 16 and 64, each with its SQL baseline. Returns the placed orders.
pub async fn measure(setup: &Setup, table: &mut Table, scale: usize) -> anyhow::Result<Vec<(String, i64)>> {
    let mut all = Vec::new();
    for (concurrency, count) in [(1, 500 * scale), (16, 2_000 * scale), (64, 2_000 * scale)] {
        let (sql_rate, sql) = sql_run(setup, count, concurrency).await?;
        let (http_rate, http, placed) = http_run(setup, count, concurrency).await?;
        all.extend(placed);
        table.add(
            &format!("commands, c={concurrency} ({count})"),
            format!("{http_rate:.0}/s, {}", http.summary()),
            format!("SQL {sql_rate:.0}/s, {}", sql.summary()),
            Some(http_rate / sql_rate),
            "≥ 0.80×",
        );
    }
    Ok(all)
}

/// Read-your-writes: each POST is followed at once by `GET ?minVersion`; the share answered 200 in that request.
pub async fn read_your_writes(setup: &Setup, table: &mut Table, count: usize) -> anyhow::Result<()> {
    let latencies = Arc::new(Mutex::new(Latencies::new()));
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    futures_util::stream::iter(0..count)
        .for_each_concurrent(16, |n| {
            let (setup, latencies, ok) = (setup, latencies.clone(), ok.clone());
            async move {
                let Ok(response) =
                    setup.http.post(setup.command.url("/commands/orders")).json(&order_json(n)).send().await
                else {
                    return;
                };
                let Ok(body) = response.json::<serde_json::Value>().await else { return };
                let (id, version) =
                    (body["orderId"].as_str().unwrap_or_default(), body["sequenceId"].as_i64().unwrap_or(1));
                let sent = Instant::now();
                let url = setup.query.url(&format!("/queries/orders/{id}?minVersion={version}"));
                if let Ok(read) = setup.http.get(url).send().await {
                    latencies.lock().await.record(sent.elapsed());
                    if read.status() == 200 {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        })
        .await;
    let ok = ok.load(std::sync::atomic::Ordering::Relaxed);
    let latencies = latencies.lock().await;
    table.add(
        &format!("read-your-writes, c=16 ({count})"),
        format!("{:.2} % in one request, GET {}", ok as f64 * 100.0 / count as f64, latencies.summary()),
        "—".to_owned(),
        None,
        "≥ 99 %",
    );
    Ok(())
}
