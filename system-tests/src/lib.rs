//! What the tests, the fault suite and the benchmarks share: the names of what one run owns and their removal, the
//! services' configurations as tests run them, synthetic events and a pre-filled event log.

pub mod aggregates;
pub mod history;
pub mod own_postgres;
pub mod own_rabbitmq;
pub mod proxy;
pub mod wire;

use shared_events::OrderEvent;
use std::time::Duration;
use uuid::Uuid;

/// A port free on 127.0.0.1 a moment ago, for a server or service to listen on.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The Postgres server the tests and tools use, without a database (`TEST_POSTGRES_URL`).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Names of everything one test or run owns: a Postgres database and a MongoDB database of one name, an events
/// exchange (and the view-changed exchange that goes with it), a projector queue (and its dead-letter queue).
#[derive(Debug, Clone)]
pub struct Names {
    /// The Postgres server of the database, without a database ([`postgres_server`] unless a test has its own).
    pub postgres: String,
    pub database: String,
    pub exchange: String,
    pub queue: String,
}

impl Names {
    /// Fresh names, `<prefix>_<id>` / `<prefix>.<id>.events` / `<prefix>.<id>.views`.
    pub fn new(prefix: &str) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let id = &id[..12];
        Self {
            postgres: postgres_server(),
            database: format!("{prefix}_{id}"),
            exchange: format!("{prefix}.{id}.events"),
            queue: format!("{prefix}.{id}.views"),
        }
    }

    /// The exchange of every read model (the relay publishes a copy of each event to each).
    pub fn read_model_exchanges(&self) -> Vec<String> {
        shared_events::READ_MODELS
            .iter()
            .map(|name| shared_events::read_model::exchange_of(&self.exchange, name))
            .collect()
    }

    /// The exchange of the order views' copies.
    pub fn order_views_exchange(&self) -> String {
        shared_events::read_model::exchange_of(&self.exchange, shared_events::READ_MODELS[0])
    }

    /// The URL of this run's database on its server.
    pub fn database_url(&self) -> String {
        format!("{}/{}", self.postgres, self.database)
    }

    /// Removes everything these names own, as far as each server answers (a server that is down keeps its part).
    pub async fn remove(&self, amqp_url: &str, mongodb_uri: &str) {
        if let Ok(client) = mongodb::Client::with_uri_str(mongodb_uri).await {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.database(&self.database).drop()).await;
        }
        drop_postgres(&self.postgres, &self.database).await;
        // A cluster's nodes may be listed: the first that answers.
        let connect = service_runtime::amqp::connect(amqp_url, lapin::ConnectionProperties::default());
        let Ok(connection) = connect.await else {
            return;
        };
        if let Ok(channel) = connection.create_channel().await {
            // Every projection's queue (the order views' is the bare name), its dead letters and partitions.
            let stems = query_service::projection::ALL
                .iter()
                .map(|p| query_service::projection::projection_queue(&self.queue, *p));
            let queues = stems.flat_map(|stem| {
                let partitions = (0..MAX_TEST_PARTITIONS).map(|index| format!("{stem}.{index}")).collect::<Vec<_>>();
                [stem.clone(), format!("{stem}.dlq")].into_iter().chain(partitions)
            });
            for queue in queues {
                let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
            }
            let read_models = self.read_model_exchanges();
            let others = [self.exchange.clone(), format!("{}.view-changed", self.exchange)];
            for exchange in others.into_iter().chain(read_models) {
                let _ = channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
            }
        }
        let _ = connection.close(200, "removed".into()).await;
    }
}

/// Most partitions a test splits the projector's queue into (their queues are removed with the rest).
pub const MAX_TEST_PARTITIONS: u16 = 8;

/// The admin token of the test services.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The one origin the test services let browsers in from.
pub const TEST_ORIGIN: &str = "http://shop.test";

/// How the tests' relays read the outbox: `TEST_RELAY_MODE` (`notify`, the default, or `wal`).
pub fn relay_mode() -> command_service::relay::RelayMode {
    match std::env::var("TEST_RELAY_MODE").as_deref() {
        Ok("wal") => command_service::relay::RelayMode::Wal,
        _ => command_service::relay::RelayMode::Notify,
    }
}

/// The `RELAY_MODE` value of [`relay_mode`], for relays the tests run as processes.
pub fn relay_mode_name() -> &'static str {
    match relay_mode() {
        command_service::relay::RelayMode::Wal => "wal",
        command_service::relay::RelayMode::Notify => "notify",
    }
}

/// The command side as the tests run it: everything of its own (`names`), the admin token, the test origin, port
/// 0, `AUTH_MODE=none`.
pub fn command_config(names: &Names, amqp_url: &str) -> command_service::config::Config {
    command_service::config::Config {
        database_url: names.database_url(),
        database_max_connections: 8,
        amqp_url: amqp_url.to_owned(),
        amqp_exchange: names.exchange.clone(),
        projector_partitions: 1,
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        cors_allowed_origins: TEST_ORIGIN.to_owned(),
        http_addr: "127.0.0.1:0".parse().expect("literal address"),
        connections: Default::default(),
        relay_enabled: true,
        relay_batch_size: 100,
        relay_poll_interval_ms: 1_000,
        relay_mode: relay_mode(),
        relay_slot: None,
        relay_slot_warn_mib: 1024,
        watchdog: Default::default(),
        auth: Default::default(),
        command_rate_per_client: None,
        command_burst_per_client: None,
    }
}

/// The query side as the tests run it (see [`command_config`]); its event feed is set once the command side runs.
pub fn query_config(names: &Names, amqp_url: &str, mongodb_uri: &str) -> query_service::config::Config {
    query_service::config::Config {
        amqp_url: amqp_url.to_owned(),
        amqp_exchange: names.exchange.clone(),
        amqp_queue: names.queue.clone(),
        amqp_prefetch: 64,
        amqp_queue_type: Default::default(),
        projector_partitions: 1,
        mongodb_uri: mongodb_uri.to_owned(),
        mongodb_database: names.database.clone(),
        mongodb_write_concern: query_service::store::Concerns::default().write,
        mongodb_read_concern: query_service::store::Concerns::default().read,
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        // Set to the test's command-service once it runs; until then nothing listens here.
        event_feed_url: "http://127.0.0.1:9/events".to_owned(),
        read_model_keep: 2,
        cors_allowed_origins: TEST_ORIGIN.to_owned(),
        http_addr: "127.0.0.1:0".parse().expect("literal address"),
        connections: Default::default(),
        watchdog: Default::default(),
        projector_enabled: true,
        projections: query_service::projection::ALL.to_vec(),
        auth: Default::default(),
        event_feed_token: None,
        reads_per_client: 100,
        reads_max: 8_192,
        read_model_sample_rate: 2.0,
        demo_page: true,
        demo_command_url: String::new(),
    }
}

/// An `OrderPlaced` envelope (schema v2) for order number `n` of a run, at global position `sequence`.
pub fn sample_envelope(run: Uuid, n: usize, sequence: i64) -> serde_json::Value {
    let order_id = Uuid::from_u128(run.as_u128() ^ n as u128);
    serde_json::json!({
        "eventId": Uuid::new_v4(), "eventType": "OrderPlaced", "schemaVersion": 2, "orderId": order_id,
        "version": 1, "sequence": sequence, "occurredAt": "2026-11-27T10:00:00Z",
        "payload": {
            "customer": {"id": format!("cust-{}", n % 500), "segment": "standard"}, "currency": "EUR",
            "status": "Placed", "total": "39.98", "placedAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:00:00Z",
            "items": [{"sku": format!("SKU-{}", n % 50), "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"}],
        },
    })
}

/// The decoded event of [`sample_envelope`].
pub fn sample_event(run: Uuid, n: usize, sequence: i64) -> OrderEvent {
    let body = serde_json::to_vec(&sample_envelope(run, n, sequence)).unwrap_or_default();
    shared_events::decode(&body).expect("sample envelopes are valid events")
}

/// Appends `events` `OrderPlaced` events (one per order) to an outbox, in one statement.
pub async fn prefill_outbox(pool: &sqlx::PgPool, events: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, occurred_at)
         select gen_random_uuid(), 'OrderPlaced', 2, gen_random_uuid(), 1,
                jsonb_build_object(
                    'customer', jsonb_build_object('id', 'cust-' || (i % 500), 'segment', 'standard'),
                    'currency', 'EUR', 'status', 'Placed',
                    'items', jsonb_build_array(jsonb_build_object(
                        'sku', 'SKU-' || (i % 50), 'quantity', 2, 'unitPrice', '19.99', 'lineTotal', '39.98')),
                    'total', '39.98', 'placedAt', '2026-11-27T10:00:00Z', 'updatedAt', '2026-11-27T10:00:00Z'),
                now()
         from generate_series(1, $1) as i",
    )
    .bind(events)
    .execute(pool)
    .await
    .map(drop)
}

/// Drops a Postgres database (and its connections).
pub async fn drop_postgres(server: &str, database: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(&format!("{server}/postgres")).await {
        // A database with a replication slot cannot be dropped: its slots go first (their streams ended).
        let _ = sqlx::query(
            "select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active",
        )
        .bind(database)
        .execute(&admin)
        .await;
        let _ = sqlx::query(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active",
        )
        .bind(database)
        .execute(&admin)
        .await;
        let _ = sqlx::query(&format!("drop database if exists {database} with (force)")).execute(&admin).await;
        admin.close().await;
    }
}
