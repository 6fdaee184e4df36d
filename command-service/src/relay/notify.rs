//! The `notify` mode (decision 0002): the leader wakes on `NOTIFY outbox_inserted` (sent at commit), with a slow
//! poll as a safety net, reads unpublished rows in `sequence` order, publishes them with publisher confirms and
//! marks only the confirmed ones published. A crash between confirm and mark publishes a row again: consumers
//! apply events idempotently. Rows are selected by `published_at is null` (after what the `wal` mode recorded
//! published: `outbox_backlog`), never by a high-water mark, so an event whose transaction committed late with a
//! lower sequence is still published.
//!
//! After the events it publishes a [`shared_events::Checkpoint`] marker once every sequence up to a point is
//! settled (see [`store::Watermark`]): consumers that have handled everything before the marker have every event up
//! to that sequence, which is what `minPosition` reads wait for.

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{heartbeat, settled, unroutable, Outcome, Publisher, RelaySettings, HEARTBEAT_INTERVAL, UNROUTABLE_RETRY};
use crate::store;

/// Postgres channel the outbox trigger notifies.
const CHANNEL: &str = "outbox_inserted";

/// Publishes as the leader until shutdown or the first error.
pub(super) async fn publish(
    pool: &PgPool,
    lock: &mut PgConnection,
    publisher: &Publisher,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
    backoff: &service_runtime::Backoff,
) -> anyhow::Result<Outcome> {
    use anyhow::Context as _;
    let mut listener = PgListener::connect_with(pool).await.context("listening for outbox inserts")?;
    listener.listen(CHANNEL).await.context("listening for outbox inserts")?;
    // This relay marks what it publishes from now on: a slot left from `wal` mode no longer continues the log.
    store::progress::hand_to(pool, None).await?;
    let mut checkpoint = 0;
    loop {
        let drained = drain(pool, lock, publisher, settings, shutdown, &mut checkpoint).await?;
        backoff.reset();
        settings.status.term_ok();
        // Events that no queue took are tried again soon; the notifications meanwhile are for rows behind them.
        let poll = if drained == Drained::Unroutable { UNROUTABLE_RETRY } else { settings.poll_interval };
        let next_poll = tokio::time::Instant::now() + poll;
        loop {
            // Leadership is only as good as the lock's connection: check it before every wait, and wake for it
            // while idle, so that standbys see this leader alive.
            heartbeat(lock).await?;
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

/// How long one round waits for the appenders in flight to settle before it publishes without a checkpoint (their
/// commit notifies the relay, which then checkpoints on its next round).
const SETTLE_WAIT: Duration = Duration::from_millis(100);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drained {
    /// No unpublished row left (or shutdown).
    Empty,
    /// The broker routed an event (or a checkpoint) to no queue; the rows from it on wait in the outbox.
    Unroutable,
}

/// Publishes batches until the outbox has no unpublished row left (or shutdown), each followed by a checkpoint
/// when the sequences up to it are settled. `checkpoint` is the last one published in this leadership term.
pub(super) async fn drain(
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
            Some(watermark) => settled(pool, watermark, Some(SETTLE_WAIT), shutdown).await?,
            None => false,
        };
        let rows = store::unpublished(pool, settings.batch_size).await?;
        let fetched = rows.len();
        let last = rows.last().map(|row| row.sequence);
        if fetched > 0 {
            let sent = std::time::Instant::now();
            let outcome = publisher.publish(&rows).await?;
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
                unroutable(settings, &format!("event {first}"), &outcome.missing);
                return Ok(Drained::Unroutable);
            }
        }
        let complete = (fetched as i64) < settings.batch_size;
        let through = watermark.as_ref().map(|w| w.through);
        if let Some(through) = checkpoint_due(through, settled, *checkpoint, complete, last) {
            if !super::checkpoint(pool, publisher, settings, through).await? {
                return Ok(Drained::Unroutable);
            }
            *checkpoint = through;
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
