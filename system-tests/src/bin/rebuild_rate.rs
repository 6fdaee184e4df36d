//! Rebuild rate vs live projection rate, in one run, on the same servers.
//!
//! `cargo run --release -p system-tests --bin rebuild_rate -- [events]` (default 100,000)
//!
//! Fills a fresh database's outbox with `events` `OrderPlaced` events (one per order, so a rebuild gains nothing
//! from keeping only the newest version of an order), then:
//! 1. **live**: starts the relay and measures how long the projector takes until every event is in a view;
//! 2. **rebuild**: replays the same log into a new generation (`query-service rebuild`'s code path).
//!
//! Prints both rates and their ratio. Uses `TEST_POSTGRES_URL`, `TEST_AMQP_URL`, `TEST_MONGODB_URI` (the test
//! defaults), and removes its database, queues and Mongo database at the end.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let postgres = env_or("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432");
    let amqp_url = env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let mongodb_uri = env_or("TEST_MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false");
    let names = system_tests::Names::new("bench");
    let database = names.database.clone();
    let token = "bench-admin-token".to_owned();
    let shutdown = CancellationToken::new();

    // The command side without its relay: migrates the database and serves the event feed.
    let command_config = |relay_enabled: bool| command_service::config::Config {
        admin_token: Some(token.clone()),
        cors_allowed_origins: String::new(),
        relay_enabled,
        relay_batch_size: 500,
        ..system_tests::command_config(&names, &amqp_url)
    };
    let command = command_service::run::start(command_config(false), shutdown.clone()).await?;
    let pool = sqlx::PgPool::connect(&format!("{postgres}/{database}")).await?;
    let filled = Instant::now();
    system_tests::prefill_outbox(&pool, events).await?;
    eprintln!("{events} events written to the outbox in {:.1} s", filled.elapsed().as_secs_f64());

    let query_config = query_service::config::Config {
        admin_token: Some(token.clone()),
        event_feed_url: format!("http://{}/events", command.addr),
        cors_allowed_origins: String::new(),
        read_model_sample_rate: 0.0,
        ..system_tests::query_config(&names, &amqp_url, &mongodb_uri)
    };
    let query = query_service::run::start(query_config.clone(), shutdown.clone()).await?;
    let http = reqwest::Client::new();
    // The projector's queue must exist before the relay publishes.
    let bound = format!("http://{}/queries/orders?limit=1", query.addr);
    while http.get(&bound).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 1. Live: relay + projector until the read model's position reaches the last event.
    let live_started = Instant::now();
    let relay = tokio::spawn(command_service::run::relay_only(command_config(true), shutdown.clone()));
    let caught_up = format!("http://{}/queries/orders?limit=1&minPosition={events}&waitMs=30000", query.addr);
    loop {
        let status = http.get(&caught_up).send().await?.status();
        if status == 200 {
            break;
        }
        anyhow::ensure!(status == 202, "reading the position answered {status}");
        let applied = query_service::store::connect(&mongodb_uri, &database, &Default::default())
            .await?
            .count("order_views")
            .await?;
        eprint!("\rlive: {applied}/{events} views, {:.0} s   ", live_started.elapsed().as_secs_f64());
    }
    let live = live_started.elapsed();
    eprintln!();

    // 2. Rebuild: the same log into a new generation.
    let views = query_service::store::connect(&mongodb_uri, &database, &Default::default()).await?;
    let orders =
        query_service::projection::named("orders").ok_or_else(|| anyhow::anyhow!("no order views projection"))?;
    let rebuilder = query_config.rebuilder(orders, &views, shutdown.clone())?;
    let generation = rebuilder.claim().await?;
    let (progress, _) = tokio::sync::watch::channel(query_service::rebuild::Progress::default());
    let rebuild_started = Instant::now();
    let report = rebuilder.run(&generation, &progress).await?;
    let rebuild_wall = rebuild_started.elapsed();

    let live_rate = events as f64 / live.as_secs_f64();
    let rebuild_rate = report.events_per_second();
    println!("| run | events | seconds | events/s |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| live projector (relay → RabbitMQ → projector → view) | {events} | {:.1} | {live_rate:.0} |",
        live.as_secs_f64()
    );
    println!(
        "| rebuild replay (feed → bulk load) | {} | {:.1} | {rebuild_rate:.0} |",
        report.events,
        report.replay.as_secs_f64()
    );
    println!(
        "| rebuild, claim to switch (incl. 2 × 2 s grace) | {} | {:.1} | |",
        report.events,
        rebuild_wall.as_secs_f64()
    );
    println!("rebuild / live = {:.2}×", rebuild_rate / live_rate);

    shutdown.cancel();
    let _ = relay.await;
    let _ = query.task.await;
    let _ = command.task.await;
    pool.close().await;
    names.remove(&amqp_url, &mongodb_uri).await;
    Ok(())
}
