//! Configuration, read once from the environment (or flags) into a typed struct. `.env.example` lists it all.

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::auth::AuthMode;
use service_runtime::limits::RateLimiter;

use crate::relay::{RelayMode, RelaySettings, ReplicationTarget};

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Postgres URL of the write store; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/orders")]
    pub database_url: String,
    /// Most Postgres connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// RabbitMQ URL the relay publishes to.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Durable topic exchange of order events (routing key = event type, then `.<partition>` when partitioned).
    #[arg(long, env = "AMQP_EXCHANGE", default_value = "orders.events")]
    pub amqp_exchange: String,
    /// Partitions of the projector's queue: the relay routes each order's events to partition
    /// `order id (128-bit big-endian) mod N`. Must equal the query-services' setting.
    #[arg(long, env = "PROJECTOR_PARTITIONS", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(shared_events::MAX_PARTITIONS)))]
    pub projector_partitions: u16,
    /// Bearer token of the admin endpoints (`GET /events`); unset or empty switches them off (404).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Origins browsers may call this API from: empty = same origin only, `*` = any, or a comma-separated list.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub connections: service_runtime::listener::ConnectionSettings,
    /// Run the outbox relay inside the HTTP server process.
    #[arg(long, env = "RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay_enabled: bool,
    /// Most outbox rows published per round of confirms.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub relay_batch_size: i64,
    /// How the relay reads the outbox: `notify` (NOTIFY, select, mark published) or `wal` (stream committed inserts
    /// from a logical replication slot; needs `wal_level=logical` and a user allowed to replicate).
    #[arg(long, env = "RELAY_MODE", value_enum, default_value_t = RelayMode::Notify)]
    pub relay_mode: RelayMode,
    /// The replication slot of `wal` mode (default: `orders_relay_<database>`).
    #[arg(long, env = "RELAY_SLOT")]
    pub relay_slot: Option<String>,
    #[command(flatten)]
    pub watchdog: service_runtime::watchdog::WatchdogSettings,
    /// Write-ahead log a replication slot of this database may retain before readiness warns, in MiB.
    #[arg(long, env = "RELAY_SLOT_WARN_MIB", default_value_t = 1024)]
    pub relay_slot_warn_mib: u64,
    /// Safety-net poll of the outbox when no NOTIFY arrives, in milliseconds (`notify` mode).
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS", default_value_t = 5_000)]
    pub relay_poll_interval_ms: u64,
    #[command(flatten)]
    pub auth: service_runtime::auth::AuthConfig,
    /// Commands one client may send per second on average (a token bucket per client; 0 = no limit). Default: no
    /// limit with `AUTH_MODE=none`, 10 with `jwt`.
    #[arg(long, env = "COMMAND_RATE_PER_CLIENT", value_parser = finite_rate)]
    pub command_rate_per_client: Option<f64>,
    /// Commands one client may send at once before its rate applies (default: twice the rate).
    #[arg(long, env = "COMMAND_BURST_PER_CLIENT", value_parser = finite_rate)]
    pub command_burst_per_client: Option<f64>,
}

/// A rate or a burst: a finite number, 0 or more. A negative, infinite or NaN one is refused at start rather than
/// taken for "no limit".
fn finite_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!("{raw:?} is not a finite number of 0 or more")),
    }
}

/// Commands a second one client may send by default in `AUTH_MODE=jwt`.
pub const DEFAULT_JWT_COMMAND_RATE: f64 = 10.0;

impl Config {
    /// The per-client limit of commands, if there is one in `mode`.
    pub fn command_limiter(&self, mode: AuthMode) -> Option<RateLimiter> {
        let default = match mode {
            AuthMode::None => 0.0,
            AuthMode::Jwt => DEFAULT_JWT_COMMAND_RATE,
        };
        let rate = self.command_rate_per_client.unwrap_or(default);
        (rate > 0.0 && rate.is_finite())
            .then(|| RateLimiter::new(rate, self.command_burst_per_client.unwrap_or(2.0 * rate)))
    }

    pub fn relay_settings(
        &self,
        metrics: crate::metrics::RelayMetrics,
        status: std::sync::Arc<crate::relay::RelayStatus>,
    ) -> anyhow::Result<RelaySettings> {
        Ok(RelaySettings {
            mode: self.relay_mode,
            replication: self.replication_target()?,
            amqp_url: self.amqp_url.clone(),
            exchange: self.amqp_exchange.clone(),
            partitions: self.projector_partitions,
            batch_size: self.relay_batch_size,
            poll_interval: Duration::from_millis(self.relay_poll_interval_ms),
            standby_interval: Duration::from_secs(1),
            metrics,
            status,
        })
    }

    /// The slot of `wal` mode and how to reach the server for streaming.
    pub fn replication_target(&self) -> anyhow::Result<ReplicationTarget> {
        ReplicationTarget::new(&self.database_url, self.relay_slot.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_a_finite_number_of_0_or_more() {
        assert_eq!(finite_rate("0"), Ok(0.0));
        assert_eq!(finite_rate("2.5"), Ok(2.5));
        for bad in ["-3", "NaN", "inf", "-inf", "", "ten"] {
            assert!(finite_rate(bad).is_err(), "{bad:?}");
        }
    }
}
