//! The fault suite (`scripts/chaos`): drives commands at a steady rate against the real services, run as processes
//! of their own, while it kills and restarts them and the servers under them; then, once the backlog has drained,
//! checks that nothing was lost, duplicated or invented, and prints a summary table. Exits non-zero on any finding.
//!
//! The command side is deployed first and takes orders before any query-service exists; then two query-service
//! replicas start, the queues split into [`PARTITIONS`]: the first runs every projection, the second
//! [`QUERY2_PROJECTIONS`], and the replicas that run a projection share its partitions. Faults, in order, repeated
//! until the commands are sent:
//! SIGKILL the relay; SIGKILL a query-service; RabbitMQ `stop_app` / `start_app`; restart PostgreSQL; SIGKILL the
//! MongoDB-wire server (restarted on its data directory); duplicate and reordered copies of logged events published
//! to the exchange; poison messages; a rebuild during a rolling restart of both replicas with a MongoDB SIGKILL in
//! the middle; the view-changed exchange deleted (its notices dropped) under waiting reads; an event of an unknown
//! schema version committed by a "newer writer"; a partition's queue of a projection deleted while orders flow; a
//! read model's exchange deleted (its bindings with it) while orders flow; both query-services killed, a partition's
//! queue deleted meanwhile, and both started again; the customer summary's store dropped while orders flow; an
//! upgrade from a release that kept only the order views (the summary's and the dashboard's queues and stores gone
//! while the query side is down); in `wal` mode, the relay's slot invalidated by `max_slot_wal_keep_size`. At the
//! end (after a rebuild of the order views if none switched during the run), once the dead letters are redriven,
//! the order views are rolled back to the generation kept before the last rebuild, and the checks read that
//! generation; `query-service verify` checks every view against the log too, and no service may say it is ready
//! while naming a stalled stage, nor — all through the run — while a queue of a projection it runs holds events
//! that nobody consumes.
//!
//! `chaos` sends 1,000 commands at 40/s (CI); `chaos --full` 10,000 at 100/s; `--relay-mode wal` runs the relay in
//! `wal` mode (streaming from a replication slot) instead of `notify`. Loopback only. It stops RabbitMQ and
//! PostgreSQL of this machine for a few seconds, and in `wal` mode sets `max_slot_wal_keep_size` on the server for a
//! few seconds (other inactive slots on it are invalidated too): run it alone, not beside the tests.

mod checks;
mod clients;
mod explore;
mod faults;
mod report;
mod stores;
mod suite;
mod watch;

use anyhow::ensure;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::checks::{active_views, backlog, check, dead_letter_checks, read_models, readiness, verify};
use crate::clients::{drive, Clients};
use crate::faults::{inject, rebuild_unless_one_switched, roll_back_after_the_redrive};
use crate::report::Report;
use crate::suite::Suite;

pub const ADMIN_TOKEN: &str = "chaos-admin-token";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// `PROJECTOR_PARTITIONS` of every process of the run: the queues split in two.
pub const PARTITIONS: u16 = 2;
/// `PROJECTIONS` of the second query-service replica (the first runs them all): a read model run by one replica
/// only, beside ones both run, each split into partitions.
pub const QUERY2_PROJECTIONS: &str = "orders,daily-sales";
/// Statuses a client may see: the documented answers, and 503 while PostgreSQL restarts.
pub const DOCUMENTED: [u16; 5] = [200, 201, 409, 422, 503];
/// Poison messages published per poison fault.
pub const POISON: [&[u8]; 4] = [b"not json at all", b"{}", b"\xff\xfe\x00garbage", br#"{"eventType":"OrderPlaced"}"#];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(options) = explore::Options::parse(&args)? {
        return explore::explore(options).await;
    }
    let full = args.iter().any(|a| a == "--full");
    let relay_mode = match args.iter().position(|a| a == "--relay-mode").and_then(|i| args.get(i + 1)) {
        None => "notify",
        Some(mode) if mode == "notify" => "notify",
        Some(mode) if mode == "wal" => "wal",
        Some(other) => anyhow::bail!("--relay-mode takes notify or wal, not {other}"),
    };
    let (commands, rate) = if full { (10_000, 100.0) } else { (1_000, 40.0) };
    let id = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let suite = Suite::start(&id, relay_mode).await?;
    eprintln!("chaos: relay mode {relay_mode}");
    let outcome = run(&suite, commands, rate).await;
    suite.stop().await;
    let report = outcome?;
    report.print();
    ensure!(report.findings.is_empty(), "{} finding(s): {}", report.findings.len(), report.findings.join("; "));
    Ok(())
}

async fn run(suite: &Suite, commands: u64, rate: f64) -> anyhow::Result<Report> {
    let clients = Arc::new(Mutex::new(Clients::default()));
    let started = Instant::now();
    let driving = Duration::from_secs_f64(commands as f64 / rate);
    eprintln!("chaos: {commands} commands at {rate}/s over {:.0} s, faults in between", driving.as_secs_f64());

    let max_lag = Arc::new(Mutex::new(0f64));
    let lag_probe = {
        // Whichever replica projects now: both are asked.
        let urls = ["query", "query2"].map(|which| suite.query_url(which, "/queries/_status"));
        let (http, max_lag) = (suite.http.clone(), max_lag.clone());
        tokio::spawn(async move {
            loop {
                for url in &urls {
                    if let Ok(answer) = http.get(url).send().await {
                        if let Ok(status) = answer.json::<Value>().await {
                            let lag = status["projector"]["lagMs"].as_f64().unwrap_or(0.0);
                            if let Ok(mut max) = max_lag.lock() {
                                *max = max.max(lag);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let watch = watch::Watch::start(suite);
    let driver = drive(suite, clients.clone(), commands, rate);
    let faults = inject(suite, driving);
    let (driven, injected) = tokio::join!(driver, faults);
    driven?;
    let mut injected = injected?;
    let faults = std::mem::take(&mut injected.faults);
    let last_command = Instant::now();
    eprintln!("chaos: commands sent in {:.0} s; waiting for the backlog to drain", started.elapsed().as_secs_f64());

    // Everything back up, then the backlog drains.
    suite.wait_ready(suite.command_port).await?;
    suite.wait_ready(suite.query_port).await?;
    suite.wait_ready(suite.query2_port).await?;
    let pool = sqlx::PgPool::connect(&suite.names.database_url()).await?;
    let mongo = mongodb::Client::with_uri_str(suite.mongodb_uri()).await?.database(&suite.names.database);
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let (unpublished, behind, building) = backlog(&pool, &mongo).await?;
        if unpublished == 0 && behind == 0 && !building {
            break;
        }
        if Instant::now() > until {
            eprintln!(
                "chaos: not drained after 300 s: {unpublished} unpublished, {behind} views behind, rebuilding {building}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain = last_command.elapsed();
    lag_probe.abort();
    let mut readiness_findings = readiness(suite).await;
    let mut watched = watch.stop();
    readiness_findings.append(&mut std::mem::take(&mut watched.findings));

    let mut clients = std::mem::take(&mut *clients.lock().map_err(|_| anyhow::anyhow!("clients poisoned"))?);
    let unreadable = faults.get("poison").copied().unwrap_or(0) * (POISON.len() as u32 + 1)
        + faults.get("newer writer's event").copied().unwrap_or(0);
    let mut rebuild_findings = Vec::new();
    rebuild_unless_one_switched(suite, &mut rebuild_findings).await?;
    let (dead_letters, redriven, mut dlq_findings) = dead_letter_checks(suite, unreadable).await?;
    dlq_findings.append(&mut rebuild_findings);
    let rolled_back = roll_back_after_the_redrive(suite, &mut dlq_findings).await?;
    let views = active_views(&mongo).await?;
    let generation = match rolled_back {
        Some(rollback) => format!("{} (rolled back after the redrive: {rollback})", views.name()),
        None => views.name().to_owned(),
    };
    let mut checked = check(suite, &pool, &views, &clients).await?;
    let mut read_models = read_models(suite, &pool).await?;
    pool.close().await;
    let (verify, mut verify_findings) = verify(suite).await?;
    let mut findings = std::mem::take(&mut checked.findings);
    findings.append(&mut clients.findings);
    findings.append(&mut dlq_findings);
    findings.append(&mut injected.findings);
    findings.append(&mut verify_findings);
    findings.append(&mut read_models.findings);
    findings.append(&mut readiness_findings);
    for (status, count) in &clients.statuses {
        if !DOCUMENTED.contains(status) {
            findings.push(format!("{count} answer(s) with undocumented status {status}"));
        }
    }
    if !clients.unanswered.is_empty() {
        findings.push(format!(
            "{} request(s) without an answer, e.g. {}",
            clients.unanswered.len(),
            clients.unanswered.first().map_or("", String::as_str)
        ));
    }
    Ok(Report {
        commands,
        clients,
        faults,
        checked,
        read_models,
        dead_letters,
        redriven,
        max_lag_ms: max_lag.lock().map(|m| *m).unwrap_or(0.0),
        drain,
        notice_reads: injected.notice_reads,
        generation,
        verify,
        watched,
        findings,
    })
}
