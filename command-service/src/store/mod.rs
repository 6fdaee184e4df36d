//! Postgres: the write model and the outbox. Every change of an order and its event commit together.

pub mod idempotency;
mod orders;
mod outbox;
pub mod progress;
pub mod read_models;
pub mod slots;

pub use orders::{change, place, EarlierUse, KeyUse, LifecycleChange, Outcome, Recorded};
pub use outbox::{events_after, head, mark_published, order_events_after, unpublished, OutboxRow, Watermark};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{migrate::MigrateDatabase, PgPool, Postgres};
use std::time::Duration;

/// The schema, embedded from `migrations/` at the repository root.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Errors of the store, split by what a caller does about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres could not be reached or did not answer in time: worth retrying later.
    #[error("postgres is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // 57P01 admin_shutdown, 57P03 cannot_connect_now (starting up or shutting down).
            sqlx::Error::Database(ref db) if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")) => {
                Self::Unavailable(err)
            }
            other => Self::Other(other),
        }
    }
}

/// How long a connection may sit idle in the pool before it is checked (a round trip) when taken out.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A lazily connecting pool: the service starts, and answers 503, while Postgres is down.
///
/// A connection used within the last [`CHECK_AFTER_IDLE`] is handed out without a check, so that a command costs
/// its one statement and nothing more on its way (sqlx would otherwise ping every connection it hands out). One that
/// broke meanwhile fails its statement: the command answers 503 and the connection is dropped.
pub fn pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

/// Creates the database if it does not exist yet, then applies pending migrations.
pub async fn prepare(database_url: &str, pool: &PgPool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if !Postgres::database_exists(database_url).await.context("checking that the database exists")? {
        Postgres::create_database(database_url).await.context("creating the database")?;
    }
    MIGRATOR.run(pool).await.context("applying migrations")?;
    Ok(())
}
