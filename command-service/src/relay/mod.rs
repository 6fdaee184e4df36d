//! The outbox relay: moves committed events from Postgres to RabbitMQ, at least once, and checkpoints the
//! positions `minPosition` reads wait for.
//!
//! Several relays may run against one database; a Postgres advisory lock elects one active publisher and the
//! others stand by, retrying the lock. The leader shows itself alive on the lock's connection every
//! [`HEARTBEAT_INTERVAL`] (and between batches); a standby that finds that connection silent for [`SILENT_AFTER`]
//! ends it, so a leader whose host or network died hands over in seconds, not when TCP gives up hours later.
//!
//! The leader reads the outbox one of two ways ([`RelayMode`]): [`notify`] wakes on `NOTIFY`, selects unpublished
//! rows and marks the published ones; [`wal`] streams committed inserts from a logical replication slot and
//! marks nothing per row (decision 0016).
//!
//! Every event is published once to each read model's exchange, `mandatory`, and counts as published only once the
//! broker routed every copy to a queue: an event with a copy returned (no queue of that read model bound yet, or
//! its queue deleted) stays unpublished, readiness names the read model ([`RelayStatus`]), and the relay tries
//! again every [`UNROUTABLE_RETRY`] until every read model takes it (decision 0018).

mod notify;
mod publisher;
mod status;
mod wal;
mod watch;

pub use publisher::{declare_exchanges, CheckpointOutcome, Outcome as PublishOutcome, Publisher};
pub use status::RelayStatus;
pub use wal::{drop_slot, ReplicationTarget};
pub use watch::watch;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::metrics::RelayMetrics;

/// Advisory lock key of the active relay ("outbox" in ASCII). Locks are per database.
const LEADER_LOCK_KEY: i64 = 0x6f7574626f78;

/// How often the leader shows it is alive on its lock connection, idle or draining.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Longest a heartbeat may take before the leader counts its lock connection as lost and steps down.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// A leader whose lock connection has been silent this long is taken for gone: a standby ends that connection
/// (`pg_terminate_backend`), which releases the lock. Longer than a heartbeat plus its timeout and than the
/// longest batch confirm, so a live leader is never cut off.
const SILENT_AFTER: Duration = Duration::from_secs(15);

/// How the relay reads the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RelayMode {
    /// Wake on `NOTIFY`, select unpublished rows, mark the published ones.
    #[default]
    Notify,
    /// Stream committed outbox inserts from a logical replication slot (needs `wal_level=logical`).
    Wal,
}

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub mode: RelayMode,
    /// The replication slot of `wal` mode, and how to reach Postgres for streaming.
    pub replication: ReplicationTarget,
    pub amqp_url: String,
    pub exchange: String,
    /// Partitions of the projector's queue: each event is routed to its order's ([`shared_events::Partition`]).
    pub partitions: u16,
    /// Most rows published per round trip of confirms.
    pub batch_size: i64,
    /// Safety-net poll when no notification arrives (`notify` mode).
    pub poll_interval: Duration,
    /// How often a standby relay tries to become the leader.
    pub standby_interval: Duration,
    pub metrics: RelayMetrics,
    /// What readiness shows of the relay.
    pub status: Arc<RelayStatus>,
}

/// How soon the relay tries again an event the broker routed to no queue.
pub const UNROUTABLE_RETRY: Duration = Duration::from_secs(1);

enum Outcome {
    Stopped,
    Standby,
}

/// Runs the relay until `shutdown` is cancelled. Errors (Postgres or broker down) are logged and retried with
/// backoff; this returns only on shutdown.
pub async fn run(pool: PgPool, connect: PgConnectOptions, settings: RelaySettings, shutdown: CancellationToken) {
    run_until_shutdown(pool, connect, &settings, shutdown).await;
    settings.status.stopped();
}

async fn run_until_shutdown(
    pool: PgPool,
    connect: PgConnectOptions,
    settings: &RelaySettings,
    shutdown: CancellationToken,
) {
    let backoff = service_runtime::Backoff::default();
    loop {
        let wait = match lead(&pool, &connect, settings, &shutdown, &backoff).await {
            Ok(Outcome::Stopped) => return,
            Ok(Outcome::Standby) => {
                settings.status.term_ok();
                settings.standby_interval
            }
            Err(err) => {
                settings.status.term_failed(format!("{err:#}"));
                settings.metrics.failures.inc();
                let wait = backoff.failed();
                tracing::warn!(error = %format!("{err:#}"), retry_in_ms = wait.as_millis() as u64, "relay failed");
                wait
            }
        };
        if service_runtime::sleep_or_shutdown(wait, &shutdown).await {
            return;
        }
    }
}

/// One term as leader: take the lock, then publish until shutdown or the first error.
async fn lead(
    pool: &PgPool,
    connect: &PgConnectOptions,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
    backoff: &service_runtime::Backoff,
) -> anyhow::Result<Outcome> {
    use anyhow::Context as _;
    // The lock lives as long as this connection; it is released when the connection drops, crash included.
    let mut lock = connect.connect().await.context("connecting for the leader lock")?;
    let leader: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK_KEY)
        .fetch_one(&mut lock)
        .await
        .context("taking the leader lock")?;
    if !leader {
        tracing::debug!("another relay is active; standing by");
        end_a_silent_leader(&mut lock).await?;
        return Ok(Outcome::Standby);
    }
    let publisher = Publisher::connect(&settings.amqp_url, &settings.exchange, settings.partitions)
        .await
        .context("connecting to RabbitMQ")?;
    // A read model first known now is registered; the ones whose queue has had the whole log and has not been told
    // so yet are told with the next checkpoint (decision 0019).
    let whole_log = crate::store::read_models::register(pool, &shared_events::READ_MODELS)
        .await
        .context("registering the read models")?;
    publisher.tell_whole_log(whole_log);
    publisher.chain_from(
        crate::store::read_models::last_markers(pool).await.context("reading the checkpoint markers last routed")?,
    );
    tracing::info!(exchange = %settings.exchange, mode = ?settings.mode, "relay is the active publisher");
    settings.metrics.leader.set(1);
    let result = match settings.mode {
        RelayMode::Notify => notify::publish(pool, &mut lock, &publisher, settings, shutdown, backoff).await,
        RelayMode::Wal => wal::publish(pool, &mut lock, &publisher, settings, shutdown, backoff).await,
    };
    settings.metrics.leader.set(0);
    publisher.close().await;
    result
}

/// Shows the leader alive on its lock connection (it moves `pg_stat_activity.state_change`), and fails when that
/// connection does not answer within [`HEARTBEAT_TIMEOUT`]: a leader that cannot reach its lock steps down.
async fn heartbeat(lock: &mut PgConnection) -> anyhow::Result<()> {
    match tokio::time::timeout(HEARTBEAT_TIMEOUT, sqlx::query("select 1").execute(lock)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(anyhow::Error::new(err).context("leader lock connection lost")),
        Err(_) => anyhow::bail!("the leader lock connection did not answer within {HEARTBEAT_TIMEOUT:?}"),
    }
}

/// The backend holding the leader lock, and how long since its connection last did anything.
const LOCK_HOLDER: &str = "select a.pid, extract(epoch from now() - a.state_change)::float8
     from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and ((l.classid::int8 << 32) | l.objid::int8) = $1
       and l.database = (select oid from pg_database where datname = current_database())";

/// A standby's check on the leader: Postgres keeps a session (and its lock) until TCP gives up on it, hours after
/// a leader's host lost power or its network, so a leader silent for [`SILENT_AFTER`] has its lock connection
/// ended here, and the next attempt takes the lock.
async fn end_a_silent_leader(lock: &mut PgConnection) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let holder: Option<(i32, Option<f64>)> = sqlx::query_as(LOCK_HOLDER)
        .bind(LEADER_LOCK_KEY)
        .fetch_optional(&mut *lock)
        .await
        .context("looking at the leader")?;
    let Some((pid, Some(silent_for))) = holder else { return Ok(()) };
    if silent_for < SILENT_AFTER.as_secs_f64() {
        return Ok(());
    }
    tracing::warn!(pid, silent_for_s = silent_for, "the active relay's connection is silent; ending it to take over");
    sqlx::query("select pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut *lock)
        .await
        .context("ending a silent leader's connection")?;
    Ok(())
}

/// Publishes a checkpoint through `through` to every read model, and records which were told that their queue holds
/// the whole log. `false` when a read model had no queue for it (recorded for readiness and the log): the next round
/// publishes one again.
async fn checkpoint(
    pool: &PgPool,
    publisher: &Publisher,
    settings: &RelaySettings,
    through: i64,
) -> anyhow::Result<bool> {
    let outcome = publisher.publish_checkpoint(through).await?;
    crate::store::read_models::markers_routed(pool, &outcome.routed, through).await?;
    for told in &outcome.told_whole_log {
        crate::store::read_models::whole_log_told(pool, told).await?;
        tracing::info!(read_model = %told, closed_through = through, "told a read model its queue holds the whole log");
    }
    if !outcome.missing.is_empty() {
        unroutable(settings, &format!("the checkpoint through {through}"), &outcome.missing);
        return Ok(false);
    }
    settings.metrics.checkpoints.inc();
    tracing::debug!(closed_through = through, "published a checkpoint");
    Ok(true)
}

/// Records that the broker routed `what` to no queue of the read models `missing`, for readiness and the log.
fn unroutable(settings: &RelaySettings, what: &str, missing: &std::collections::BTreeSet<String>) {
    let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
    let reason = format!(
        "{what} reached no queue of read model {}: nothing is bound to its exchange under '{}' (is a query-service \
         running, a queue or a binding deleted?); the event stays in the outbox and is published again every {} s",
        missing.join(", "),
        settings.exchange,
        UNROUTABLE_RETRY.as_secs()
    );
    if settings.status.unroutable().is_none() {
        tracing::warn!(exchange = %settings.exchange, "{reason}");
    }
    settings.status.set_unroutable(Some(reason));
}

/// Waits until every appender that may own a sequence up to the watermark has ended, checking every few
/// milliseconds: `true` once it has, `false` when `within` ran out (none: no limit) or shutdown began first.
async fn settled(
    pool: &PgPool,
    watermark: &crate::store::Watermark,
    within: Option<Duration>,
    shutdown: &CancellationToken,
) -> Result<bool, crate::store::StoreError> {
    let deadline = within.map(|within| tokio::time::Instant::now() + within);
    loop {
        if watermark.is_settled(pool).await? {
            return Ok(true);
        }
        if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) || shutdown.is_cancelled() {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
