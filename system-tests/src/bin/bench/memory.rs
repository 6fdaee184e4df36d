//! Memory per parked read: the resident set of a query-service with 1,000 and then 10,000 waiting reads parked on
//! versions that never come; the slope between the two is what one more parked read costs — next to what an open
//! connection costs before it sends anything. Run for each allocator setting the process can be started with
//! (mimalloc, which needs another build, was measured apart: docs/benchmarks.md).

use std::time::{Duration, Instant};

use crate::procs::Service;
use crate::stats::Table;
use crate::Setup;

/// Parked reads at the two ends of the slope.
const FEW: usize = 1_000;
const MANY: usize = 10_000;

/// Waits until the service's `reads_waiting` gauge reaches `count` (or 60 s pass).
async fn parked(http: &reqwest::Client, service: &Service, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http.get(service.url("/metrics")).send().await?.text().await?;
        let waiting = text
            .lines()
            .find_map(|line| line.strip_prefix("reads_waiting "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if waiting as usize >= count {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {waiting} of {count} reads parked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The RSS slope per parked read, in KiB, for a query-service started with `extra` environment.
async fn slope(setup: &Setup, ids: &[String], extra: &[(&'static str, String)]) -> anyhow::Result<(f64, f64, f64)> {
    let mut env = setup.replica_env("memory");
    env.push(("READS_PER_CLIENT", (MANY + 100).to_string()));
    env.push(("READS_MAX", (MANY + 100).to_string()));
    env.extend(extra.iter().cloned());
    let service = Service::start("query-service (parked reads)", "query-service", &[], &env).await?;
    // One connection per parked read, as browsers and clients hold them.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(120)).build()?;
    let park = |from: usize, to: usize| {
        (from..to)
            .map(|n| {
                let url = service.url(&format!("/queries/orders/{}?minVersion=1000&waitMs=30000", ids[n % ids.len()]));
                let http = http.clone();
                tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
            })
            .collect::<Vec<_>>()
    };
    let mut reads = park(0, FEW);
    parked(&setup.http, &service, FEW).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let few = service.rss_kib();
    reads.extend(park(FEW, MANY));
    parked(&setup.http, &service, MANY).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let many = service.rss_kib();
    for read in &reads {
        read.abort();
    }
    service.stop();
    Ok(((many - few) / (MANY - FEW) as f64, few / 1024.0, many / 1024.0))
}

/// The RSS slope per open connection that has sent nothing yet, in KiB: what a connection costs before any request.
async fn connection_slope(setup: &Setup) -> anyhow::Result<f64> {
    let env = setup.replica_env("memory");
    let service = Service::start("query-service (open connections)", "query-service", &[], &env).await?;
    let address = format!("127.0.0.1:{}", service.port);
    let mut open = Vec::with_capacity(MANY);
    let mut connect = async |count: usize| -> anyhow::Result<f64> {
        while open.len() < count {
            open.push(tokio::net::TcpStream::connect(&address).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(service.rss_kib())
    };
    let few = connect(FEW).await?;
    let many = connect(MANY).await?;
    drop(open);
    service.stop();
    Ok((many - few) / (MANY - FEW) as f64)
}

pub async fn measure(setup: &Setup, table: &mut Table, ids: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(!ids.is_empty(), "no orders to park reads on");
    let per_connection = connection_slope(setup).await?;
    table.add(
        "memory per open connection, no request yet (glibc malloc)",
        format!("{per_connection:.1} KiB"),
        "".to_owned(),
        None,
        "",
    );
    for (allocator, extra) in [
        ("glibc malloc (default)", vec![]),
        ("glibc malloc, MALLOC_ARENA_MAX=2", vec![("MALLOC_ARENA_MAX", "2".to_owned())]),
    ] {
        let (per_read, few, many) = slope(setup, ids, &extra).await?;
        table.add(
            &format!("memory per parked read, {allocator}"),
            format!("{per_read:.1} KiB (RSS {few:.1} MiB at {FEW}, {many:.1} MiB at {MANY})"),
            "".to_owned(),
            None,
            "≤ 16 KiB",
        );
    }
    Ok(())
}
