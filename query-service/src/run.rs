//! Wiring: connects MongoDB, serves HTTP and runs the projector under one shutdown token.

use anyhow::Context as _;
use service_runtime::listener::GuardedListener;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{build_app, AppState, DemoPage, Readiness, Sampling};
use crate::metrics::QueryMetrics;
use crate::projection::{self, ConsumerSettings, Slowdown};
use crate::read::{self, VersionWaiters, ViewReader};
use service_runtime::admin::AdminToken;

/// A started service: where it listens, and the task that ends when it has shut down.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub waiters: VersionWaiters,
    /// True while this replica's view-changed queue is bound (it hears every notice).
    pub notices_bound: watch::Receiver<bool>,
    pub task: JoinHandle<anyhow::Result<()>>,
}

pub fn consumer_settings(
    config: &Config,
    metrics: QueryMetrics,
    consuming: projection::Consuming,
    slowdown: Slowdown,
) -> ConsumerSettings {
    ConsumerSettings {
        metrics,
        consuming,
        slowdown,
        amqp_url: config.amqp_url.clone(),
        exchange: config.amqp_exchange.clone(),
        queue: config.amqp_queue.clone(),
        partition: shared_events::Partition { index: 0, count: config.projector_partitions },
        queue_type: config.amqp_queue_type,
        prefetch: config.amqp_prefetch,
    }
}

/// Binds `HTTP_ADDR` and starts serving (with the projector when `PROJECTOR_ENABLED`).
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let cors = service_runtime::cors::layer(&config.cors_allowed_origins)?;
    let demo = config.demo_page.then(|| DemoPage::new(&config.demo_command_url)).transpose()?;
    let metrics = QueryMetrics::new()?;
    let commands = Some(metrics.mongodb_commands.clone());
    let views = config.views(commands).await?;
    let indexed = match views.generations().current().await {
        Ok(pointer) => views.ensure_indexes(&pointer.active).await,
        Err(err) => Err(err),
    };
    if let Err(err) = indexed {
        // MongoDB may be down at start; reads answer 503 until it is back, and the next start creates the indexes.
        tracing::warn!(error = %err, "creating the view indexes failed");
    }
    let waiters = VersionWaiters::default();
    let listener = service_runtime::listener::bind(config.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let listener = GuardedListener::new(listener, config.connections.limits());
    tracing::info!(%addr, projector = config.projector_enabled, "query-service listening");

    let projector_consuming = config.projector_enabled.then(projection::Consuming::default);
    let slowdown = config.projector_enabled.then(Slowdown::default);
    let projectors = read::notices::Projectors::default();
    let projector = projector_consuming.clone().zip(slowdown.clone()).map(|(consuming, slowdown)| {
        let settings = consumer_settings(&config, metrics.clone(), consuming, slowdown);
        let run = projection::run(settings, views.clone(), waiters.clone(), projectors.clone(), shutdown.clone());
        tokio::spawn(run)
    });
    let (bound, notices_bound) = watch::channel(false);
    let notices = tokio::spawn(read::notices::listen(
        config.amqp_url.clone(),
        read::notices::notice_exchange(&config.amqp_exchange),
        waiters.clone(),
        projectors,
        bound,
        shutdown.clone(),
    ));
    let rebuilder = config.rebuilder(views.clone(), shutdown.clone())?;
    let janitor = tokio::spawn(crate::rebuild::Rebuilder::clear_abandoned(views.clone(), shutdown.clone()));
    if config.sample_rate() == 0.0 && config.read_model_sample_rate > 0.0 {
        tracing::info!("no ADMIN_TOKEN: the read-model sampler is off (it reads the admin event feed)");
    }
    let findings = crate::verify::sampler::Findings::default();
    let sampler = tokio::spawn(crate::verify::sampler::run(
        views.clone(),
        config.feed()?,
        config.sample_rate(),
        metrics.clone(),
        findings.clone(),
        shutdown.clone(),
    ));
    let auth = service_runtime::auth::Auth::new(&config.auth)?;
    auth.announce("query-service");
    let state = AppState {
        auth,
        slots: config.read_slots(),
        reader: ViewReader::new(views.clone()),
        views,
        waiters: waiters.clone(),
        shutdown: shutdown.clone(),
        admin: AdminToken::new(config.admin_token.as_deref()),
        rebuilder: rebuilder.clone(),
        metrics,
        readiness: Readiness { amqp_url: config.amqp_url.clone(), projector_consuming },
        slowdown,
        demo,
        sampling: Sampling { rate: config.sample_rate(), findings },
    };
    let mut app = build_app(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    let task = tokio::spawn(async move {
        let served = service_runtime::serve(listener, app, shutdown).await;
        notices.await.context("view-changed listener panicked")?;
        rebuilder.wait().await;
        janitor.await.context("rebuild janitor panicked")?;
        sampler.await.context("read-model sampler panicked")?;
        if let Some(projector) = projector {
            projector.await.context("projector task panicked")?;
        }
        served.context("HTTP server failed")
    });
    Ok(Running { addr, waiters, notices_bound, task })
}
