//! The outbox relay: moves committed events from Postgres to RabbitMQ, at least once, in `sequence` order.
//!
//! Several relays may run against one database; a Postgres advisory lock elects one active publisher and the
//! others stand by, retrying the lock. The leader shows itself alive on the lock's connection every
//! [`HEARTBEAT_INTERVAL`] (and between batches); a standby that finds that connection silent for [`SILENT_AFTER`]
//! ends it, so a leader whose host or network died hands over in seconds, not when TCP gives up hours later. The leader wakes on `NOTIFY outbox_inserted` (sent at commit), with a slow
//! poll as a safety net, reads unpublished rows in `sequence` order, publishes them with publisher confirms and
//! marks only the confirmed ones published. A crash between confirm and mark publishes a row again: consumers
//! apply events idempotently. Rows are selected by `published_at is null`, never by a high-water mark, so an event
//! whose transaction committed late with a lower sequence is still published.
//!
//! Events are published `mandatory` and a row is marked published only once the broker routed it to a queue: an
//! event the broker returns (no queue bound yet, or the projector's queue deleted) stays in the outbox, readiness
//! says why ([`RelayStatus`]), and the relay tries again every [`UNROUTABLE_RETRY`] until a queue takes it.
//!
//! After the events it publishes a [`shared_events::Checkpoint`] marker once every sequence up to a point is
//! settled (see [`store::Watermark`]): consumers that have handled everything before the marker have every event up
//! to that sequence, which is what `minPosition` reads wait for.

mod publisher;
mod status;

pub use publisher::{declare_exchange, Outcome as PublishOutcome, Publisher};
pub use status::RelayStatus;

use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::metrics::RelayMetrics;
use crate::store;

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

/// Postgres channel the outbox trigger notifies.
const CHANNEL: &str = "outbox_inserted";

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub amqp_url: String,
    pub exchange: String,
    /// Partitions of the projector's queue: each event is routed to its order's ([`shared_events::Partition`]).
    pub partitions: u16,
    /// Most rows published per round trip of confirms.
    pub batch_size: i64,
    /// Safety-net poll when no notification arrives.
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
            Ok(Outcome::Standby) => settings.standby_interval,
            Err(err) => {
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
    let mut listener = PgListener::connect_with(pool).await.context("listening for outbox inserts")?;
    listener.listen(CHANNEL).await.context("listening for outbox inserts")?;
    let publisher = Publisher::connect(&settings.amqp_url, &settings.exchange, settings.partitions)
        .await
        .context("connecting to RabbitMQ")?;
    tracing::info!(exchange = %settings.exchange, "relay is the active publisher");
    settings.metrics.leader.set(1);

    let result = async {
        let mut checkpoint = 0;
        loop {
            let drained = drain(pool, &mut lock, &publisher, settings, shutdown, &mut checkpoint).await?;
            backoff.reset();
            // Events that no queue took are tried again soon; the notifications meanwhile are for rows behind them.
            let poll = if drained == Drained::Unroutable { UNROUTABLE_RETRY } else { settings.poll_interval };
            let next_poll = tokio::time::Instant::now() + poll;
            loop {
                // Leadership is only as good as the lock's connection: check it before every wait, and wake for it
                // while idle, so that standbys see this leader alive.
                heartbeat(&mut lock).await?;
                let now = tokio::time::Instant::now();
                if now >= next_poll {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(Outcome::Stopped),
                    notice = listener.recv(), if drained == Drained::Empty => {
                        notice.context("waiting for outbox notifications")?;
                        break;
                    }
                    () = tokio::time::sleep(HEARTBEAT_INTERVAL.min(next_poll - now)) => {}
                }
            }
        }
    }
    .await;
    settings.metrics.leader.set(0);
    publisher.close().await;
    result
}

/// How long one round waits for the appenders in flight to settle before it publishes without a checkpoint (their
/// commit notifies the relay, which then checkpoints on its next round).
const SETTLE_WAIT: Duration = Duration::from_millis(100);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// No unpublished row left (or shutdown).
    Empty,
    /// The broker routed an event (or a checkpoint) to no queue; the rows from it on wait in the outbox.
    Unroutable,
}

/// Publishes batches until the outbox has no unpublished row left (or shutdown), each followed by a checkpoint
/// when the sequences up to it are settled. `checkpoint` is the last one published in this leadership term.
async fn drain(
    pool: &PgPool,
    lock: &mut PgConnection,
    publisher: &Publisher,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
    checkpoint: &mut i64,
) -> anyhow::Result<Drained> {
    while !shutdown.is_cancelled() {
        // Between batches too: a long catch-up must not look like a silent leader.
        heartbeat(lock).await?;
        // Read the watermark before the rows: once it is settled, every row up to it is visible to the read below.
        let watermark = store::Watermark::read(pool).await?;
        let settled = match &watermark {
            Some(watermark) => settle(pool, watermark, shutdown).await?,
            None => false,
        };
        let rows = store::unpublished(pool, settings.batch_size).await?;
        let fetched = rows.len();
        let last = rows.last().map(|row| row.sequence);
        if fetched > 0 {
            let sent = std::time::Instant::now();
            let outcome = publisher.publish(rows).await?;
            settings.metrics.confirm_duration.observe(sent.elapsed().as_secs_f64());
            settings.metrics.batch_size.observe(fetched as f64);
            store::mark_published(pool, &outcome.routed).await?;
            settings.metrics.published.inc_by(outcome.routed.len() as u64);
            tracing::debug!(fetched, published = outcome.routed.len(), "relayed a batch");
            if !outcome.nacked.is_empty() {
                anyhow::bail!("the broker refused {} of {fetched} events", outcome.nacked.len());
            }
            if let Some(first) = outcome.unroutable.first() {
                settings.metrics.unroutable.inc_by(outcome.unroutable.len() as u64);
                return Ok(unroutable(settings, &format!("event {first}")));
            }
        }
        let complete = (fetched as i64) < settings.batch_size;
        let through = watermark.as_ref().map(|w| w.through);
        if let Some(through) = checkpoint_due(through, settled, *checkpoint, complete, last) {
            if !publisher.publish_checkpoint(through).await? {
                return Ok(unroutable(settings, &format!("the checkpoint through {through}")));
            }
            settings.metrics.checkpoints.inc();
            *checkpoint = through;
            tracing::debug!(closed_through = through, "published a checkpoint");
        }
        settings.status.set_unroutable(None);
        if complete {
            return Ok(Drained::Empty);
        }
    }
    Ok(Drained::Empty)
}

/// The checkpoint a round may publish after its batch, if any: the watermark `through`, once it is settled (every
/// transaction holding a sequence up to it has ended), newer than the last `checkpoint` of this term, and covered by
/// what was published — the batch drained the outbox (`complete`), or its `last` row reached the watermark. A batch
/// cut short below the watermark leaves rows up to it unpublished: no checkpoint may pass them.
fn checkpoint_due(
    through: Option<i64>,
    settled: bool,
    checkpoint: i64,
    complete: bool,
    last: Option<i64>,
) -> Option<i64> {
    let through = through.filter(|&through| settled && through > checkpoint)?;
    (complete || last.is_some_and(|last| last >= through)).then_some(through)
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

/// Records that the broker routed `what` to no queue, for readiness and the log.
fn unroutable(settings: &RelaySettings, what: &str) -> Drained {
    let reason = format!(
        "{what} was routed to no queue: no queue is bound to exchange '{}' (is the query-service's projector \
         running, its queue deleted?); the event stays in the outbox and is retried every {} s",
        settings.exchange,
        UNROUTABLE_RETRY.as_secs()
    );
    if settings.status.unroutable().is_none() {
        tracing::warn!(exchange = %settings.exchange, "{reason}");
    }
    settings.status.set_unroutable(Some(reason));
    Drained::Unroutable
}

/// Waits up to [`SETTLE_WAIT`] for the watermark to settle, checking every few milliseconds.
async fn settle(pool: &PgPool, watermark: &store::Watermark, shutdown: &CancellationToken) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    loop {
        if watermark.is_settled(pool).await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_due;

    #[test]
    fn a_settled_newer_watermark_is_checkpointed_once_the_published_rows_cover_it() {
        // Drained the outbox: the watermark is covered whatever the last row was.
        assert_eq!(checkpoint_due(Some(10), true, 4, true, Some(7)), Some(10));
        assert_eq!(checkpoint_due(Some(10), true, 4, true, None), Some(10));
        // A full batch that reached the watermark covers it too.
        assert_eq!(checkpoint_due(Some(10), true, 4, false, Some(10)), Some(10));
    }

    #[test]
    fn no_checkpoint_passes_an_unsettled_watermark_an_old_one_or_rows_still_unpublished() {
        assert_eq!(checkpoint_due(None, true, 0, true, Some(3)), None, "no watermark");
        assert_eq!(checkpoint_due(Some(10), false, 4, true, Some(10)), None, "a transaction up to it still open");
        assert_eq!(checkpoint_due(Some(4), true, 4, true, Some(4)), None, "already checkpointed this term");
        assert_eq!(checkpoint_due(Some(10), true, 4, false, Some(9)), None, "the batch was cut short below it");
        assert_eq!(checkpoint_due(Some(10), true, 4, false, None), None);
    }
}
