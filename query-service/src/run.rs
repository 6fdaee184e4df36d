//! Wiring: connects MongoDB, serves HTTP and runs the projections under one shutdown token.

use anyhow::Context as _;
use service_runtime::listener::GuardedListener;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed::Feed;
use crate::http::{build_app, AppState, DemoPage, Readiness, Sampling};
use crate::metrics::ProjectorMetrics;
use crate::metrics::QueryMetrics;
use crate::projection::{self, ConsumerSettings, Projection, Slowdown};
use crate::read::{self, Boards, VersionWaiters, ViewReader};
use crate::rebuild::Rebuilder;
use crate::store::ReadModelStore;
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
    let wiring = Wiring { config: &config, supervisor: Supervisor::new(shutdown.clone()), watchdog, shutdown };
    let views = config.views(Some(metrics.mongodb_commands.clone())).await?;
    let read_models = read_models(&views).await;
    let listener = service_runtime::listener::bind(config.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let listener = GuardedListener::new(listener, config.connections.limits());
    tracing::info!(%addr, projector = config.projector_enabled, "query-service listening");

    let boards = Boards::default();
    let projectors = wiring.projectors(&read_models, &boards, &metrics);
    let notices_bound = wiring.listeners(&boards, &projectors);
    let rebuilders = wiring.keepers(&read_models)?;
    let findings = wiring.sampler(&views, feed, &metrics);
    auth.announce("query-service");
    let Wiring { supervisor, watchdog, shutdown, .. } = wiring;
    let waiters = boards.orders();
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
        readiness: Readiness {
            amqp_url: config.amqp_url.clone(),
            consuming: projectors.consuming,
            tasks: supervisor.health(),
            watchdog,
        },
        slowdown: projectors.slowdown,
        demo,
        sampling: Sampling { rate: config.sample_rate(), findings },
    };
    let mut app = build_app(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    let task = tokio::spawn(serve(listener, app, rebuilders, supervisor.clone(), shutdown));
    Ok(Running { addr, waiters, notices_bound, supervisor, task })
}

/// Serves `app` until shutdown, then waits for the rebuilds and the background tasks to end.
async fn serve(
    listener: GuardedListener,
    app: axum::Router,
    rebuilders: Vec<Rebuilder>,
    supervisor: Supervisor,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let served = service_runtime::serve(listener, app, shutdown).await;
    for rebuilder in &rebuilders {
        rebuilder.wait().await;
    }
    let tasks = supervisor.wait().await;
    served.context("HTTP server failed")?;
    tasks
}

/// One handle per read model, shared by its projector, rebuilder and reads (one cached pointer each), with the
/// active generation's indexes created. MongoDB may be down at start: reads answer 503 until it is back, and the
/// next start creates the indexes.
async fn read_models(views: &ReadModelStore) -> Vec<(&'static dyn Projection, ReadModelStore)> {
    let read_models: Vec<(&'static dyn Projection, ReadModelStore)> =
        projection::ALL.iter().map(|p| (*p, views.for_model(p.model()))).collect();
    for (projection, views) in &read_models {
        let indexed = match views.generations().current().await {
            Ok(pointer) => views.ensure_indexes(&pointer.active).await,
            Err(err) => Err(err),
        };
        if let Err(err) = indexed {
            tracing::warn!(projection = projection.name(), error = %err, "creating the read model's indexes failed");
        }
    }
    read_models
}

/// What the background tasks are started with.
struct Wiring<'a> {
    config: &'a Config,
    supervisor: Supervisor,
    watchdog: Watchdog,
    shutdown: CancellationToken,
}

/// The projections this replica runs: whether each consumes, and the slowdown they share (`None` when the
/// replica does not project).
struct Projectors {
    consuming: Vec<(&'static str, projection::Consuming)>,
    slowdown: Option<Slowdown>,
    running: read::projectors::Projectors,
}

impl Wiring<'_> {
    /// Starts a consumer per projection this replica runs (readiness, partitions), sharing the slowdown and the
    /// heartbeat, and the watchdog of the partitions nobody consumes (every replica reports those).
    fn projectors(
        &self,
        read_models: &[(&'static dyn Projection, ReadModelStore)],
        boards: &Boards,
        metrics: &QueryMetrics,
    ) -> Projectors {
        let (config, shutdown) = (self.config, &self.shutdown);
        let projected: Vec<&(&'static dyn Projection, ReadModelStore)> = read_models
            .iter()
            .filter(|(p, _)| config.projector_enabled && config.projections.iter().any(|c| c.name() == p.name()))
            .collect();
        let consuming: Vec<(&'static str, projection::Consuming)> =
            projected.iter().map(|(p, _)| (p.name(), projection::Consuming::default())).collect();
        let slowdown = config.projector_enabled.then(Slowdown::default);
        let running = read::projectors::Projectors::default();
        let replica = projection::Replica::default();
        for (index, ((projection, views), (_, consumer))) in projected.iter().copied().zip(&consuming).enumerate() {
            let Some(slowdown) = &slowdown else { break };
            let metrics = metrics.projector(projection.name());
            let (watchdog, consumer) = (self.watchdog.clone(), consumer.clone());
            let settings = consumer_settings(config, *projection, metrics, consumer, slowdown.clone(), watchdog);
            if index == 0 {
                let heartbeat =
                    projection::heartbeat(settings.clone(), replica.clone(), consuming.clone(), shutdown.clone());
                self.supervisor.spawn("projector heartbeat", heartbeat);
                let topology = projection::keep_topology(settings.clone(), views.clone(), shutdown.clone());
                self.supervisor.spawn("projector topology", topology);
            }
            let waiters = boards.of(projection.model());
            let run = projection::project(
                settings,
                views.clone(),
                waiters,
                running.clone(),
                replica.clone(),
                shutdown.clone(),
            );
            self.supervisor.spawn(format!("projector {}", projection.name()), run);
        }
        let partitions = config.projector_partitions;
        let watch = projection::watch(
            running.clone(),
            boards.clone(),
            consuming.clone(),
            partitions,
            self.watchdog.clone(),
            shutdown.clone(),
        );
        self.supervisor.spawn("projection watchdog", watch);
        Projectors { consuming, slowdown, running }
    }

    /// Starts the view-changed listener, which wakes this replica's waiting reads; the receiver says whether its
    /// queue is bound.
    fn listeners(&self, boards: &Boards, projectors: &Projectors) -> watch::Receiver<bool> {
        let config = self.config;
        let (bound, notices_bound) = watch::channel(false);
        let heard = read::notices::Heard {
            boards: boards.clone(),
            projectors: projectors.running.clone(),
            watchdog: self.watchdog.clone(),
        };
        let route = read::notices::NoticeRoute::new(&config.amqp_exchange, &config.amqp_queue);
        let listen = read::notices::listen(config.amqp_url.clone(), route, heard, bound, self.shutdown.clone());
        self.supervisor.spawn("view-changed listener", listen);
        notices_bound
    }

    /// Starts the keeper of each read model, on every replica: one that does not hold the log from its start builds
    /// itself where the event feed can be read (decision 0019). Returns the rebuilders.
    fn keepers(&self, read_models: &[(&'static dyn Projection, ReadModelStore)]) -> anyhow::Result<Vec<Rebuilder>> {
        let config = self.config;
        let rebuilders = read_models
            .iter()
            .map(|(projection, views)| {
                Ok(config.rebuilder(*projection, views, self.shutdown.clone())?.watched(self.watchdog.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !config.can_read_feed() {
            tracing::info!("no token for the event feed: a read model that must be built from the log cannot be");
        }
        for rebuilder in &rebuilders {
            let name = format!("read model keeper {}", rebuilder.views().model().name);
            self.supervisor.spawn(name, rebuilder.clone().tend(config.can_read_feed()));
        }
        Ok(rebuilders)
    }

    /// Starts the read-model sampler (off without a token for the event feed); its findings.
    fn sampler(&self, views: &ReadModelStore, feed: Feed, metrics: &QueryMetrics) -> crate::verify::sampler::Findings {
        let config = self.config;
        if config.sample_rate() == 0.0 && config.read_model_sample_rate > 0.0 {
            tracing::info!("no token for the event feed: the read-model sampler is off (it reads the event feed)");
        }
        let findings = crate::verify::sampler::Findings::default();
        let run = crate::verify::sampler::run(
            views.clone(),
            feed,
            config.sample_rate(),
            metrics.clone(),
            findings.clone(),
            self.shutdown.clone(),
        );
        self.supervisor.spawn("read-model sampler", run);
        findings
    }
}
