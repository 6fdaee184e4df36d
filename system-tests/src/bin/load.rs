//! A simple load run against running services (`scripts/run`): places orders at a fixed concurrency and, for
//! each, reads it back with `minVersion` right after the POST. Prints commands/s, POST latency, and the time from
//! the POST's answer (the commit) until the view answered 200 (visible in the read model), as p50/p99/max.
//!
//! `cargo run --release -p system-tests --bin load -- [orders] [concurrency]`
//! with `COMMAND_URL` (http://127.0.0.1:8080) and `QUERY_URL` (http://127.0.0.1:8081).

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<6} p50={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let orders: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let command_url = std::env::var("COMMAND_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let query_url = std::env::var("QUERY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".to_owned());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;

    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, next, command_url, query_url) = (http.clone(), next.clone(), command_url.clone(), query_url.clone());
        workers.push(tokio::spawn(async move {
            let (mut post, mut visible, mut not_in_one_read) = (Vec::new(), Vec::new(), 0_usize);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < orders {
                let body = serde_json::json!({
                    "customerId": "load", "currency": "EUR",
                    "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99"}]
                });
                let sent = Instant::now();
                let response = http.post(format!("{command_url}/commands/orders")).json(&body).send().await?;
                anyhow::ensure!(response.status() == 201, "POST answered {}", response.status());
                let committed = Instant::now();
                post.push(committed - sent);
                let placed: serde_json::Value = response.json().await?;
                let (id, version) = (placed["orderId"].as_str().unwrap_or_default(), placed["sequenceId"].clone());
                let read = http.get(format!("{query_url}/queries/orders/{id}?minVersion={version}")).send().await?;
                if read.status() == 200 {
                    visible.push(committed.elapsed());
                } else {
                    not_in_one_read += 1;
                }
            }
            anyhow::Ok((post, visible, not_in_one_read))
        }));
    }
    let (mut post, mut visible, mut missed) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (p, v, m) = worker.await??;
        post.extend(p);
        visible.extend(v);
        missed += m;
    }
    let elapsed = started.elapsed();
    println!("orders={orders} concurrency={concurrency} elapsed={:.2} s", elapsed.as_secs_f64());
    println!("commands/s (POST + waiting GET per order): {:.0}", orders as f64 / elapsed.as_secs_f64());
    row("POST latency", post);
    row("commit -> visible in view", visible);
    println!("read-your-writes in one request: {} of {orders} ({missed} answered 202)", orders - missed);
    Ok(())
}
