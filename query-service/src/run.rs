//! Wiring: connects MongoDB, serves HTTP and runs the projections under one shutdown token.

use anyhow::Context as _;
use service_runtime::listener::GuardedListener;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{build_app, AppState, DemoPage, Readiness, Sampling};
use crate::metrics::ProjectorMetrics;
use crate::metrics::QueryMetrics;
use crate::projection::{self, ConsumerSettings, Projection, Slowdown};
use crate::read::{self, Boards, VersionWaiters, ViewReader};
use service_runtime::admin::AdminToken;
use service_runtime::supervisor::Supervisor;
use service_runtime::watchdog::Watchdog;

/// A started service: where it listens, and the task that ends when it has shut down.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub waiters: VersionWaiters,
    /// True while this replica's view-changed queue is bound (it hears every notice).
    pub notices_bound: watch::Receiver<bool>,
    /// The background tasks: one that ends before shutdown fails readiness and ends `task` with an error.
    pub supervisor: Supervisor,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Where `projection` consumes from, as `config` says.
pub fn consumer_settings(
    config: &Config,
    projection: &'static dyn Projection,
    metrics: ProjectorMetrics,
    consuming: projection::Consuming,
    slowdown: Slowdown,
    watchdog: Watchdog,
) -> ConsumerSettings {
    ConsumerSettings {
        projection,
        metrics,
        consuming,
        slowdown,
        amqp_url: config.amqp_url.clone(),
        exchange: config.amqp_exchange.clone(),
        stem: config.amqp_queue.clone(),
        queue: config.projection_queue(projection),
        partition: shared_events::Partition { index: 0, count: config.projector_partitions },
        queue_type: config.amqp_queue_type,
        prefetch: config.amqp_prefetch,
        feed: config.can_read_feed().then(|| config.feed().ok()).flatten(),
        watchdog,
        handled: Default::default(),
    }
}

/// Binds `HTTP_ADDR` and starts serving (with the projections when `PROJECTOR_ENABLED`).
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    // Every setting is checked before the service connects to anything or listens.
    let cors = service_runtime::cors::layer(&config.cors_allowed_origins)?;
    let auth = service_runtime::auth::Auth::new(&config.auth)?;
    let feed = config.feed()?;
    let demo = config.demo_page.then(|| DemoPage::new(&config.demo_command_url)).transpose()?;
    let metrics = QueryMetrics::new()?;
    let watchdog = config.watchdog.watchdog().registered(&metrics.registry)?;
    // The background tasks, under one supervisor: one that ends before shutdown fails readiness and stops the
    // process with an error.
    let supervisor = Supervisor::new(shutdown.clone());
    let commands = Some(metrics.mongodb_commands.clone());
    let views = config.views(commands).await?;
    // One handle per read model, shared by its projector, rebuilder and reads: one cached pointer each.
    let read_models: Vec<(&'static dyn Projection, crate::store::Views)> =
        projection::ALL.iter().map(|p| (*p, views.for_model(p.model()))).collect();
    for (projection, views) in &read_models {
        let indexed = match views.generations().current().await {
            Ok(pointer) => views.ensure_indexes(&pointer.active).await,
            Err(err) => Err(err),
        };
        if let Err(err) = indexed {
            // MongoDB may be down at start; reads answer 503 until it is back, and the next start creates them.
            tracing::warn!(projection = projection.name(), error = %err, "creating the read model's indexes failed");
        }
    }
    let boards = Boards::default();
    let waiters = boards.orders();
    let listener = service_runtime::listener::bind(config.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let listener = GuardedListener::new(listener, config.connections.limits());
    tracing::info!(%addr, projector = config.projector_enabled, "query-service listening");

    // Every projection has its own consumer (readiness, partitions); they share the slowdown and the heartbeat.
    let projected: Vec<&(&'static dyn Projection, crate::store::Views)> = read_models
        .iter()
        .filter(|(p, _)| config.projector_enabled && config.projections.iter().any(|c| c.name() == p.name()))
        .collect();
    let consuming: Vec<(&'static str, projection::Consuming)> =
        projected.iter().map(|(p, _)| (p.name(), projection::Consuming::default())).collect();
    let slowdown = config.projector_enabled.then(Slowdown::default);
    let projectors = read::projectors::Projectors::default();
    let replica = projection::Replica::default();
    if let Some(slowdown) = &slowdown {
        for (index, ((projection, views), (_, consumer))) in projected.iter().copied().zip(&consuming).enumerate() {
            let projection = *projection;
            let settings = consumer_settings(
                &config,
                projection,
                metrics.projector(projection.name()),
                consumer.clone(),
                slowdown.clone(),
                watchdog.clone(),
            );
            if index == 0 {
                let heartbeat =
                    projection::heartbeat(settings.clone(), replica.clone(), consuming.clone(), shutdown.clone());
                supervisor.spawn("projector heartbeat", heartbeat);
                let topology = projection::keep_topology(settings.clone(), views.clone(), shutdown.clone());
                supervisor.spawn("projector topology", topology);
            }
            let waiters = boards.of(projection.model());
            let run = projection::run(
                settings,
                views.clone(),
                waiters,
                projectors.clone(),
                replica.clone(),
                shutdown.clone(),
            );
            supervisor.spawn(format!("projector {}", projection.name()), run);
        }
    }
    // Every replica reports the partitions nobody consumes; a projecting one, its own stages too.
    supervisor.spawn(
        "projection watchdog",
        projection::watch(
            projectors.clone(),
            boards.clone(),
            consuming.clone(),
            config.projector_partitions,
            watchdog.clone(),
            shutdown.clone(),
        ),
    );
    let (bound, notices_bound) = watch::channel(false);
    supervisor.spawn(
        "view-changed listener",
        read::notices::listen(
            config.amqp_url.clone(),
            read::notices::NoticeRoute::new(&config.amqp_exchange, &config.amqp_queue),
            read::notices::Heard { boards: boards.clone(), projectors, watchdog: watchdog.clone() },
            bound,
            shutdown.clone(),
        ),
    );
    let rebuilders = read_models
        .iter()
        .map(|(projection, views)| {
            Ok(config.rebuilder(*projection, views, shutdown.clone())?.watched(watchdog.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Each read model is looked after on every replica; one that does not hold the log from its start builds itself
    // where the event feed can be read (decision 0019).
    if !config.can_read_feed() {
        tracing::info!("no token for the event feed: a read model that must be built from the log cannot be");
    }
    for rebuilder in &rebuilders {
        let name = format!("read model keeper {}", rebuilder.views().model().name);
        supervisor.spawn(name, rebuilder.clone().tend(config.can_read_feed()));
    }
    if config.sample_rate() == 0.0 && config.read_model_sample_rate > 0.0 {
        tracing::info!("no ADMIN_TOKEN: the read-model sampler is off (it reads the admin event feed)");
    }
    let findings = crate::verify::sampler::Findings::default();
    supervisor.spawn(
        "read-model sampler",
        crate::verify::sampler::run(
            views.clone(),
            feed,
            config.sample_rate(),
            metrics.clone(),
            findings.clone(),
            shutdown.clone(),
        ),
    );
    auth.announce("query-service");
    let state = AppState {
        auth,
        slots: config.read_slots(),
        reader: ViewReader::new(views.clone()),
        views,
        waiters: waiters.clone(),
        boards,
        shutdown: shutdown.clone(),
        admin: AdminToken::new(config.admin_token.as_deref()),
        rebuilders: rebuilders.clone(),
        metrics,
        readiness: Readiness { amqp_url: config.amqp_url.clone(), consuming, tasks: supervisor.health(), watchdog },
        slowdown,
        demo,
        sampling: Sampling { rate: config.sample_rate(), findings },
    };
    let mut app = build_app(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    let supervised = supervisor.clone();
    let task = tokio::spawn(async move {
        let served = service_runtime::serve(listener, app, shutdown).await;
        for rebuilder in &rebuilders {
            rebuilder.wait().await;
        }
        let tasks = supervised.wait().await;
        served.context("HTTP server failed")?;
        tasks
    });
    Ok(Running { addr, waiters, notices_bound, supervisor, task })
}
