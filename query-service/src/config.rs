//! Configuration, read once from the environment (or flags) into a typed struct. `.env.example` lists it all.

use std::net::SocketAddr;

use crate::projection::QueueType;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// RabbitMQ URL the projector consumes from.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Durable topic exchange of order events.
    #[arg(long, env = "AMQP_EXCHANGE", default_value = "orders.events")]
    pub amqp_exchange: String,
    /// Durable queue of the projector; `<queue>.dlq` holds the dead letters.
    #[arg(long, env = "AMQP_QUEUE", default_value = "query-service.order-views")]
    pub amqp_queue: String,
    /// Most unacknowledged deliveries in flight.
    #[arg(long, env = "AMQP_PREFETCH", default_value_t = 64)]
    pub amqp_prefetch: u16,
    /// The type of the projector's queue and its dead-letter queue: `quorum` (replicated across a cluster's nodes)
    /// or `classic` (one node's). A queue that already exists with the other type is reported, never redeclared.
    #[arg(long, env = "AMQP_QUEUE_TYPE", value_enum, default_value_t = QueueType::Quorum)]
    pub amqp_queue_type: QueueType,
    /// Partitions of the projector's queue (`<queue>.<index>` each), shared among the projecting replicas. Must
    /// equal the command-services' setting; changing it is a procedure (docs/operations.md, "Changing the number of
    /// partitions").
    #[arg(long, env = "PROJECTOR_PARTITIONS", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(shared_events::MAX_PARTITIONS)))]
    pub projector_partitions: u16,
    /// The projections this replica runs (with `PROJECTOR_ENABLED`), comma-separated: `orders`, `customer-summary`,
    /// `daily-sales`. Every read model is served by every replica; one whose projection runs nowhere stands still.
    #[arg(long, env = "PROJECTIONS", value_delimiter = ',', default_value = "orders,customer-summary,daily-sales",
        value_parser = projection_named)]
    pub projections: Vec<&'static dyn crate::projection::Projection>,
    /// MongoDB URI of the read store.
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"
    )]
    pub mongodb_uri: String,
    /// Write concern of the read store: `majority` (journaled; survives a replica set failover) or how many
    /// members must acknowledge (`1` for a single server).
    #[arg(long, env = "MONGODB_WRITE_CONCERN", default_value = "majority", value_parser = crate::store::parse_write)]
    pub mongodb_write_concern: mongodb::options::Acknowledgment,
    /// Read concern of the read store: `local`, `available`, `majority` or `linearizable`. Reads may also go to
    /// secondaries (`readPreference` in `MONGODB_URI`): a view found below the version asked for is waited for,
    /// never answered 200.
    #[arg(long, env = "MONGODB_READ_CONCERN", default_value = "local", value_parser = crate::store::parse_read)]
    pub mongodb_read_concern: mongodb::options::ReadConcernLevel,
    /// MongoDB database holding the views.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "orders")]
    pub mongodb_database: String,
    /// Bearer token of the admin endpoints (`/admin/...`) and of the event feed; unset or empty switches them off.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The command-service's event feed, replayed by rebuilds.
    #[arg(long, env = "EVENT_FEED_URL", default_value = "http://127.0.0.1:8080/events")]
    pub event_feed_url: String,
    /// Generations of the views kept, the active one included (the others are for rollback: they take no live
    /// writes, a rollback catches one up from the event feed).
    #[arg(long, env = "READ_MODEL_KEEP", default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=5))]
    pub read_model_keep: u8,
    /// Origins browsers may call this API from: empty = same origin only, `*` = any, or a comma-separated list.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub connections: service_runtime::listener::ConnectionSettings,
    #[command(flatten)]
    pub watchdog: service_runtime::watchdog::WatchdogSettings,
    /// Serve the demo page at `/` (switch it off where browsers should see only the API).
    #[arg(long, env = "DEMO_PAGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_page: bool,
    /// Where the demo page sends commands: the command-service as a browser reaches it. Empty: the page's own host
    /// on port 8080. The command-service must allow the page's origin (its `CORS_ALLOWED_ORIGINS`).
    #[arg(long, env = "DEMO_COMMAND_URL", default_value = "")]
    pub demo_command_url: String,
    /// Orders a second the background check compares with the event log (`0` switches it off).
    #[arg(long, env = "READ_MODEL_SAMPLE_RATE", default_value_t = 2.0)]
    pub read_model_sample_rate: f64,
    /// Run the projector (event consumer) in this process.
    #[arg(long, env = "PROJECTOR_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub projector_enabled: bool,
    #[command(flatten)]
    pub auth: service_runtime::auth::AuthConfig,
    /// The bearer token this service reads the event feed with (rebuilds, the sampler): with `AUTH_MODE=jwt` a
    /// service token with the `events:read` scope. Default: `ADMIN_TOKEN`.
    #[arg(long, env = "EVENT_FEED_TOKEN", hide_env_values = true)]
    pub event_feed_token: Option<String>,
    /// View streams and waiting reads one client may hold open at once (more: 429).
    #[arg(long, env = "READS_PER_CLIENT", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub reads_per_client: u64,
    /// View streams and waiting reads this process holds open at once, all clients together (more: 429). Kept below
    /// `HTTP_MAX_CONNECTIONS`, so that health checks and quick reads always find a connection.
    #[arg(long, env = "READS_MAX", default_value_t = 8_192, value_parser = clap::value_parser!(u64).range(1..))]
    pub reads_max: u64,
}

/// A projection, by name (`PROJECTIONS`).
pub fn projection_named(name: &str) -> Result<&'static dyn crate::projection::Projection, String> {
    crate::projection::named(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = crate::projection::ALL.iter().map(|p| p.name()).collect();
        format!("no projection is called {name:?}; there are {}", names.join(", "))
    })
}

/// Connections kept free of streams and waiting reads, whatever `READS_MAX` says.
pub const CONNECTION_HEADROOM: usize = 64;

impl Config {
    /// The rebuilder of `projection` in this process; `views` is any read model of the configured database.
    pub fn rebuilder(
        &self,
        projection: &'static dyn crate::projection::Projection,
        views: &crate::store::ReadModelStore,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<crate::rebuild::Rebuilder> {
        let views = views.for_model(projection.model());
        Ok(crate::rebuild::Rebuilder::new(projection, views, self.feed()?, usize::from(self.read_model_keep), shutdown))
    }

    /// The queue of `projection` (the stem of its partitions' when split): `AMQP_QUEUE` for the order views,
    /// `<AMQP_QUEUE>.<projection>` for the others.
    pub fn projection_queue(&self, projection: &dyn crate::projection::Projection) -> String {
        crate::projection::projection_queue(&self.amqp_queue, projection)
    }

    /// Orders a second the sampler checks: `READ_MODEL_SAMPLE_RATE`, or 0 without a token for the event feed (it
    /// needs one; without it the feed does not exist or refuses).
    pub fn sample_rate(&self) -> f64 {
        if self.feed_token().is_some() {
            self.read_model_sample_rate
        } else {
            0.0
        }
    }

    /// Whether this replica has a token for the event feed (without one it cannot rebuild a read model).
    pub fn can_read_feed(&self) -> bool {
        self.feed_token().is_some()
    }

    /// The bearer token of the event feed: `EVENT_FEED_TOKEN`, else `ADMIN_TOKEN`.
    fn feed_token(&self) -> Option<String> {
        let set = |token: &Option<String>| token.clone().filter(|token| !token.is_empty());
        set(&self.event_feed_token).or_else(|| set(&self.admin_token))
    }

    /// The views this configuration names: its MongoDB, concerns and partitions (whose lowest position is the
    /// read model's), counting the driver's commands in `commands` when given. Every role connects through here.
    pub async fn views(
        &self,
        commands: Option<prometheus::IntCounterVec>,
    ) -> anyhow::Result<crate::store::ReadModelStore> {
        let views =
            crate::store::connect_counted(&self.mongodb_uri, &self.mongodb_database, &self.concerns(), commands)
                .await?;
        Ok(views.with_partitions(self.projector_partitions))
    }

    /// The read store's write and read concerns.
    pub fn concerns(&self) -> crate::store::Concerns {
        crate::store::Concerns { write: self.mongodb_write_concern.clone(), read: self.mongodb_read_concern.clone() }
    }

    /// The command-service's event feed.
    pub fn feed(&self) -> anyhow::Result<crate::feed::Feed> {
        crate::feed::Feed::new(self.event_feed_url.clone(), self.feed_token())
    }

    /// The slots of view streams and waiting reads: `READS_PER_CLIENT` each, `READS_MAX` in all but never more than
    /// the connections leave after [`CONNECTION_HEADROOM`].
    pub fn read_slots(&self) -> service_runtime::limits::Slots {
        let connections = self.connections.limits().max_connections;
        let total = usize::try_from(self.reads_max).unwrap_or(usize::MAX);
        let total = total.min(connections.saturating_sub(CONNECTION_HEADROOM).max(1));
        service_runtime::limits::Slots::new(usize::try_from(self.reads_per_client).unwrap_or(usize::MAX), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn config(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("query-service").chain(args.iter().copied())).expect("valid flags").config
    }

    #[test]
    fn the_sampler_runs_at_its_rate_only_where_the_event_feed_can_be_read() {
        assert_eq!(config(&["--admin-token", "t", "--read-model-sample-rate", "5"]).sample_rate(), 5.0);
        assert_eq!(config(&["--admin-token", "", "--read-model-sample-rate", "5"]).sample_rate(), 0.0);
        assert_eq!(config(&["--admin-token", "t", "--read-model-sample-rate", "0"]).sample_rate(), 0.0);
    }
}
