//! Read throughput: `GET /queries/orders/{id}` at concurrency 64 against `find_one` through the driver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::stats::{rate, Latencies, Table};
use crate::Setup;

const CONCURRENCY: usize = 64;

/// Runs `read(id)` from `CONCURRENCY` workers for `duration`; returns (reads/s, latencies).
async fn closed_loop<F, Fut>(ids: &[String], duration: Duration, read: F) -> (f64, Latencies)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let all = Arc::new(Mutex::new(Latencies::new()));
    let ids = Arc::new(ids.to_vec());
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (stop, all, ids, read) = (stop.clone(), all.clone(), ids.clone(), read.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = Latencies::new();
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[n % ids.len()].clone();
                n += CONCURRENCY;
                let sent = Instant::now();
                if read(id).await {
                    mine.record(sent.elapsed());
                }
            }
            all.lock().await.add(&mine);
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let all = std::mem::replace(&mut *all.lock().await, Latencies::new());
    (rate(all.count(), elapsed), all)
}

pub async fn measure(setup: &Setup, table: &mut Table, ids: &[String], seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(!ids.is_empty(), "no orders to read");
    let duration = Duration::from_secs(seconds);
    let (http, base) = (setup.http.clone(), setup.query.url("/queries/orders/"));
    let (http_rate, http_latency) = closed_loop(ids, duration, move |id| {
        let (http, url) = (http.clone(), format!("{base}{id}"));
        async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let client = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let views = client.database(&setup.names.database).collection::<mongodb::bson::Document>("order_views");
    let (raw_rate, raw_latency) = closed_loop(ids, duration, move |id| {
        let views = views.clone();
        async move { matches!(views.find_one(mongodb::bson::doc! { "_id": id }).await, Ok(Some(_))) }
    })
    .await;
    table.add(
        "reads by id, c=64",
        format!("{http_rate:.0}/s, {}", http_latency.summary()),
        format!("find_one {raw_rate:.0}/s, {}", raw_latency.summary()),
        Some(http_rate / raw_rate),
        "",
    );
    Ok(())
}
