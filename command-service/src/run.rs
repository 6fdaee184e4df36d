//! Wiring: connects the pool, applies migrations, serves HTTP and runs the relay under one shutdown token.

use anyhow::Context as _;
use service_runtime::listener::GuardedListener;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{build_app, AppState, Readiness};
use crate::metrics::CommandMetrics;
use crate::{relay, store};
use service_runtime::admin::AdminToken;
use service_runtime::auth::Auth;
use std::sync::Arc;

/// A started service: where it listens, and the task that ends when it has shut down.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub task: JoinHandle<anyhow::Result<()>>,
}

fn connect_options(config: &Config) -> anyhow::Result<PgConnectOptions> {
    config.database_url.parse().context("DATABASE_URL is not a valid Postgres URL")
}

/// Prepares the database, binds `HTTP_ADDR` and starts serving (with the relay when `RELAY_ENABLED`).
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    // Every setting is checked before the service connects to anything or listens.
    let cors = service_runtime::cors::layer(&config.cors_allowed_origins)?;
    let auth = Auth::new(&config.auth)?;
    if config.relay_enabled {
        config.replication_target()?;
    }
    let options = connect_options(&config)?;
    let pool = store::pool(options.clone(), config.database_max_connections);
    store::prepare(&config.database_url, &pool).await?;
    let listener = service_runtime::listener::bind(config.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let listener = GuardedListener::new(listener, config.connections.limits());
    tracing::info!(%addr, relay = config.relay_enabled, "command-service listening");

    let metrics = CommandMetrics::new()?;
    let watchdog = config.watchdog.watchdog().registered(&metrics.registry)?;
    // The background tasks, under one supervisor: one that ends before shutdown fails readiness and stops the
    // process with an error.
    let supervisor = service_runtime::supervisor::Supervisor::new(shutdown.clone());
    let relay_status = config.relay_enabled.then(|| Arc::new(relay::RelayStatus::default()));
    if let Some(status) = relay_status.clone() {
        let settings = config.relay_settings(metrics.relay.clone(), status.clone())?;
        supervisor.spawn("relay", relay::run(pool.clone(), options, settings, shutdown.clone()));
        supervisor.spawn("relay watchdog", relay::watch(pool.clone(), status, watchdog.clone(), shutdown.clone()));
    }
    supervisor.spawn(
        "idempotency purge",
        store::idempotency::purge_expired(pool.clone(), Duration::from_secs(600), shutdown.clone()),
    );
    auth.announce("command-service");
    let mut app = build_app(AppState {
        pool: pool.clone(),
        limiter: config.command_limiter(auth.mode()),
        auth,
        admin: AdminToken::new(config.admin_token.as_deref()),
        metrics,
        readiness: Readiness {
            amqp_url: config.amqp_url.clone(),
            relay: relay_status,
            slot_warn_bytes: config.relay_slot_warn_mib.saturating_mul(1 << 20),
            tasks: supervisor.health(),
            watchdog,
        },
    });
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    let task = tokio::spawn(async move {
        // Whatever ends the server ends the relay too, so the process exits as a whole.
        let served = service_runtime::serve(listener, app, shutdown).await;
        let tasks = supervisor.wait().await;
        pool.close().await;
        served.context("HTTP server failed")?;
        tasks
    });
    Ok(Running { addr, task })
}

/// Runs only the relay (no HTTP) until shutdown.
pub async fn relay_only(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let options = connect_options(&config)?;
    let pool = store::pool(options.clone(), 4);
    store::prepare(&config.database_url, &pool).await?;
    tracing::info!("command-service relay started");
    let metrics = crate::metrics::RelayMetrics::register(&prometheus::Registry::new())?;
    let status = Arc::new(relay::RelayStatus::default());
    relay::run(pool.clone(), options, config.relay_settings(metrics, status)?, shutdown).await;
    pool.close().await;
    Ok(())
}
