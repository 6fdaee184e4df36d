//! The benchmark suite: every figure next to the raw limit of the component underneath, measured in the same run,
//! and what each unit of work costs in machine-independent units (round trips, MongoDB commands, CPU per unit).
//!
//! `scripts/bench` (builds the release binaries, then runs this); `scripts/bench --full` for the long form (5× the
//! commands and open-loop durations, 100k projector events); `--only cost,reads,memory,sweep,relay,relay-modes,projector,partitions` for
//! some stages (the closed-loop commands and the fixed freshness rows always run). Needs PostgreSQL, RabbitMQ and the MongoDB-wire server (`scripts/dev-services`;
//! `TEST_POSTGRES_URL`, `TEST_AMQP_URL`, `TEST_MONGODB_URI` as for the tests). Starts the services as processes of
//! their own on fresh databases and queues, prints each row as it is measured and a Markdown table at the end, and
//! removes what it made.

mod commands;
mod cost;
mod freshness;
mod memory;
mod procs;
mod projections;
mod reads;
mod relay_modes;
mod stats;
mod sweep;
mod throughput;

use std::time::{Duration, Instant};
use uuid::Uuid;

use procs::Service;
use stats::Table;
use system_tests::Names;

/// The servers, the services under test and clients to reach them.
#[derive(Debug)]
pub struct Setup {
    pub names: Names,
    pub postgres: String,
    pub amqp_url: String,
    pub mongodb_uri: String,
    pub http: reqwest::Client,
    pub pool: sqlx::PgPool,
    pub command: Service,
    pub query: Service,
}

impl Setup {
    /// The environment of one more query-service on this run's exchange and database that does not project (its
    /// queue, named with `role`, is never consumed).
    pub fn replica_env(&self, role: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AMQP_URL", self.amqp_url.clone()),
            ("AMQP_EXCHANGE", self.names.exchange.clone()),
            ("AMQP_QUEUE", format!("{}.{role}", self.names.queue)),
            ("MONGODB_URI", self.mongodb_uri.clone()),
            ("MONGODB_DATABASE", self.names.database.clone()),
            ("PROJECTOR_ENABLED", "false".to_owned()),
        ]
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A synthetic `OrderPlaced` envelope of this run.
pub fn sample_envelope(n: usize, sequence: i64) -> serde_json::Value {
    system_tests::sample_envelope(run_id(), n, sequence)
}

/// The view of [`sample_envelope`].
pub fn sample_view(n: usize, sequence: i64) -> query_service::store::StoredView {
    query_service::store::StoredView::from_event(&system_tests::sample_event(run_id(), n, sequence))
}

fn run_id() -> Uuid {
    static RUN: std::sync::OnceLock<Uuid> = std::sync::OnceLock::new();
    *RUN.get_or_init(Uuid::new_v4)
}

pub async fn prefill_outbox(pool: &sqlx::PgPool, events: i64) -> anyhow::Result<()> {
    Ok(system_tests::prefill_outbox(pool, events).await?)
}

/// A Postgres database of this run, `<run database>_<suffix>`, with the command side's schema (`command-service
/// migrate`): its name, URL and a pool on it.
pub async fn migrated_database(setup: &Setup, suffix: &str) -> anyhow::Result<(String, String, sqlx::PgPool)> {
    let database = format!("{}_{suffix}", setup.names.database);
    let database_url = format!("{}/{database}", setup.postgres);
    let migrate = std::process::Command::new(procs::binary("command-service")?)
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(migrate.success(), "command-service migrate failed");
    let pool = sqlx::PgPool::connect(&database_url).await?;
    Ok((database, database_url, pool))
}

pub async fn drop_postgres(server: &str, database: &str) {
    system_tests::drop_postgres(server, database).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--full");
    let scale = if full { 5 } else { 1 };
    let started = Instant::now();
    let id = &run_id().simple().to_string()[..10];
    let names = Names::new("bench");
    let (postgres, amqp_url, mongodb_uri) = (
        env_or("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        env_or("TEST_MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"),
    );
    println!(
        "machine: {} cores; run {id}{}",
        std::thread::available_parallelism().map_or(0, usize::from),
        if full { " (full)" } else { "" }
    );
    let env = [
        ("DATABASE_URL", format!("{postgres}/{}", names.database)),
        ("AMQP_URL", amqp_url.clone()),
        ("AMQP_EXCHANGE", names.exchange.clone()),
        ("AMQP_QUEUE", names.queue.clone()),
        ("MONGODB_URI", mongodb_uri.clone()),
        ("MONGODB_DATABASE", names.database.clone()),
    ];
    // The query side first, so that its queue is bound before the first event is published.
    let query = Service::start("query-service", "query-service", &[], &env).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let command = Service::start("command-service", "command-service", &[], &env).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&format!("{postgres}/{}", names.database))
        .await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(256).build()?;
    let setup = Setup { names, postgres, amqp_url, mongodb_uri, http, pool, command, query };

    let mut table = Table::default();
    // `--only a,b`: just those stages (commands always run: the others read their orders).
    let only: Option<Vec<String>> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .map(|stages| stages.split(',').map(str::to_owned).collect());
    let runs = |stage: &str| only.as_ref().is_none_or(|only| only.iter().any(|s| s == stage));
    if runs("cost") {
        cost::commands(&setup, &mut table).await?;
    }
    let placed = commands::measure(&setup, &mut table, scale).await?;
    commands::read_your_writes(&setup, &mut table, 2_000 * scale).await?;
    let ids: Vec<String> = placed.into_iter().map(|(id, _)| id).collect();
    if runs("cost") {
        cost::reads(&setup, &mut table, &ids).await?;
    }
    let floor = freshness::measure(&setup, &mut table, 10 * scale as u64).await?;
    if runs("reads") {
        reads::measure(&setup, &mut table, &ids, 10).await?;
    }
    let (command_rss, query_rss) = (setup.command.peak_rss_mib(), setup.query.peak_rss_mib());
    if runs("memory") {
        memory::measure(&setup, &mut table, &ids).await?;
    }
    if runs("sweep") {
        let points = sweep::measure(&setup, &mut table, 10 * scale as u64, floor).await?;
        if std::path::Path::new("docs").is_dir() {
            sweep::plot(&points, "docs/freshness.svg")?;
            println!("  plot: docs/freshness.svg");
        }
    }
    let relay_rss = if runs("relay") { throughput::relay(&setup, &mut table, 100_000).await? } else { 0.0 };
    // The stand-in's writes slow down as a collection grows: 100k events alone take about ten minutes here.
    let projector_events = if full { 100_000 } else { 20_000 };
    let projector_rss =
        if runs("projector") { throughput::projector(&setup, &mut table, projector_events).await? } else { 0.0 };
    if runs("projections") {
        projections::measure(&setup, &mut table, if full { 20_000 } else { 5_000 }).await?;
    }
    if runs("relay-modes") {
        relay_modes::measure(&setup, &mut table, 20_000).await?;
    }
    if runs("partitions") {
        throughput::partitions(&setup, &mut table, if full { 40_000 } else { 8_000 }).await?;
    }
    for (name, rss) in [
        ("peak RSS command-service (serve + relay)", command_rss),
        ("peak RSS query-service (serve + projector)", query_rss),
        ("peak RSS command-service relay (100k drain)", relay_rss),
        ("peak RSS query-service projector (queue drain)", projector_rss),
    ] {
        table.add(name, format!("{rss:.1} MiB"), "".to_owned(), None, "≤ 64 MiB");
    }

    let Setup { names, mongodb_uri, amqp_url, pool, command, query, .. } = setup;
    command.stop();
    query.stop();
    pool.close().await;
    names.remove(&amqp_url, &mongodb_uri).await;
    table.print();
    println!("\nwhole suite: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
