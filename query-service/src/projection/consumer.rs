//! The AMQP consumer loop of one projection's partition: a [`Session`] opened (and opened again after a failure,
//! with backoff), batches of deliveries handled ([`Handling`]) and acked once the position they carry is stored
//! (`acks`), the queue's health looked at now and then, and what was written settled on the way out.

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::Acker;
use service_runtime::watchdog::StageId;
use service_runtime::{retry_until_shutdown, Backoff};
use std::time::Duration;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::acks::{ack_through, HeldAcks};
use super::handle::Handling;
use super::retries::{store_failed, with_retries};
use super::session::Session;
use super::settings::ConsumerSettings;
use super::watch::{IN_HAND, QUEUED};
use crate::read::notices;
use crate::read::VersionWaiters;
use crate::store::{ReadModelStore, OPERATION_TIMEOUT};
use shared_events::Partition;

/// Consumes until `shutdown`; connection failures are logged and retried with backoff.
pub async fn run(
    settings: ConsumerSettings,
    views: ReadModelStore,
    waiters: VersionWaiters,
    shutdown: CancellationToken,
) {
    let backoff = Backoff::default();
    retry_until_shutdown("projector consumer", &backoff, &shutdown, || {
        consume(&settings, &views, &waiters, &shutdown, &backoff)
    })
    .await;
}

/// Consumes `settings.partition_queue()` until `shutdown` (or the first failure), settling what it wrote on the way
/// out.
pub(super) async fn consume(
    settings: &ConsumerSettings,
    views: &ReadModelStore,
    waiters: &VersionWaiters,
    shutdown: &CancellationToken,
    backoff: &Backoff,
) -> lapin::Result<()> {
    let Some(session) = Session::open(settings, views, shutdown).await? else { return Ok(()) };
    settings.consuming.started(settings.partition);
    backoff.reset();
    let mut consumer = Consumer::new(settings, views, waiters, shutdown, session);
    consumer.announce_opening().await;
    let result = consumer.run().await;
    consumer.stop(result.is_ok()).await;
    result
}

/// How often a consumer looks at its connection, its queue's depth and its stage.
const HEALTH_EVERY: Duration = Duration::from_secs(2);
/// How often an idle consumer stores the position it stored last again (one write command, changing nothing unless
/// the store lost it).
const STORE_AGAIN_EVERY: Duration = Duration::from_secs(10);

/// One consumer of a partition, consuming.
struct Consumer<'a> {
    settings: &'a ConsumerSettings,
    views: &'a ReadModelStore,
    waiters: &'a VersionWaiters,
    shutdown: &'a CancellationToken,
    session: Session,
    stage: StageId,
    began: Instant,
    /// The position this consumer stored last (a standby stores none), and when it last handled a batch (whose
    /// position is stored within a second) or stored that position again while idle.
    stored_last: Option<i64>,
    idle_stored_at: Instant,
    held: HeldAcks<Acker>,
    hold_limit: usize,
}

/// What woke the loop.
enum Woken {
    Shutdown,
    SettleDue,
    Health,
    /// Boxed: a delivery is large beside the other variants.
    Delivery(Box<Option<lapin::Result<Delivery>>>),
}

/// What the loop does next.
enum Next {
    Batch(Box<Delivery>),
    Wait,
    Stop(lapin::Result<()>),
}

impl<'a> Consumer<'a> {
    fn new(
        settings: &'a ConsumerSettings,
        views: &'a ReadModelStore,
        waiters: &'a VersionWaiters,
        shutdown: &'a CancellationToken,
        session: Session,
    ) -> Self {
        Self {
            stage: StageId::projection(settings.projection.name(), settings.partition.index),
            began: Instant::now(),
            stored_last: None,
            idle_stored_at: Instant::now(),
            held: HeldAcks::default(),
            hold_limit: usize::from(settings.prefetch.max(2)) / 2,
            settings,
            views,
            waiters,
            shutdown,
            session,
        }
    }

    /// Consumes until shutdown (`Ok`) or a failure.
    async fn run(&mut self) -> lapin::Result<()> {
        // The delivery stream is not guaranteed to end when the broker closes the connection: check it now and then.
        let mut health = tokio::time::interval_at(self.began + HEALTH_EVERY, HEALTH_EVERY);
        loop {
            let next = match self.woken(&mut health).await {
                Woken::Shutdown => Next::Stop(Ok(())),
                Woken::SettleDue => self.settle().await,
                Woken::Health => self.look_at_health().await,
                Woken::Delivery(next) => match *next {
                    Some(Ok(delivery)) => Next::Batch(Box::new(delivery)),
                    Some(Err(err)) => Next::Stop(Err(err)),
                    None => self.cancelled_by_the_broker().await,
                },
            };
            match next {
                Next::Wait => {}
                Next::Stop(result) => return result,
                Next::Batch(first) => {
                    if let Some(result) = self.consume_batch(*first).await {
                        return result;
                    }
                }
            }
        }
    }

    async fn woken(&mut self, health: &mut Interval) -> Woken {
        let settle_at = self.held.due_at();
        tokio::select! {
            () = self.shutdown.cancelled() => Woken::Shutdown,
            () = tokio::time::sleep_until(settle_at.unwrap_or_else(Instant::now)), if settle_at.is_some() => {
                Woken::SettleDue
            }
            _ = health.tick() => Woken::Health,
            next = self.session.deliveries.next() => Woken::Delivery(Box::new(next)),
        }
    }

    /// Stores the newest position the held batches carry, then acks them all; stops when shutdown came first
    /// (they stay unacked and come back).
    async fn settle(&mut self) -> Next {
        match settle(&mut self.held, self.settings.partition, self.views, &mut self.stored_last, self.shutdown).await {
            Ok(true) => Next::Wait,
            Ok(false) => Next::Stop(Ok(())),
            Err(err) => Next::Stop(Err(err)),
        }
    }

    /// The connection, the queue's depth and the stage, looked at; an idle consumer's position stored again.
    async fn look_at_health(&mut self) -> Next {
        // At most once a stall period: a consumer that just began may not have had its chance yet.
        let watchdog = &self.settings.watchdog;
        let waiting = watchdog.stalled_by(&self.stage).is_some_and(|cause| cause.answered_by_progress);
        if waiting && self.held.due_at().is_none() && self.began.elapsed() >= watchdog.stall_after() {
            // Waiting for deliveries, with work waiting for this partition and none moving: the broker no longer
            // gives this consumer anything (its queue was replaced under it, say, or missed the markers that would
            // move its position). Caught up from the event feed (decision 0031), it consumes afresh, which gets back
            // what it holds unacknowledged; the watchdog has reported the stall meanwhile.
            tracing::warn!(queue = %self.settings.partition_queue(), "stalled while waiting for deliveries; \
                catching up from the event feed and consuming again");
            self.catch_up_in_place().await;
            return Next::Stop(Err(store_failed(&"stalled while waiting for deliveries")));
        }
        if !self.session.connected() {
            return Next::Stop(Err(lapin::Error::from(std::io::Error::other("connection to RabbitMQ lost"))));
        }
        if let Some(depth) = self.session.queue_depth(self.settings).await {
            watchdog.holds(&self.stage, QUEUED, depth > 0);
        }
        // Idle (nothing held to settle): the position stored last is stored again now and then, so that a store
        // that lost it is found out without waiting for the next event.
        if self.held.due_at().is_none() && self.idle_stored_at.elapsed() >= STORE_AGAIN_EVERY {
            self.idle_stored_at = Instant::now();
            if let Some(position) = self.stored_last {
                let again = self.views.store_position(self.settings.partition, position);
                match tokio::time::timeout(OPERATION_TIMEOUT, again).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::debug!(error = %err, "storing the position again failed"),
                    Err(_) => tracing::debug!("storing the position again timed out"),
                }
            }
        }
        Next::Wait
    }

    /// Catches the partition up from the event feed after its stored position, if there is a feed and a position,
    /// and announces the position the catch-up moved it to. Nothing is recorded: a failure only leaves the stall as
    /// it was.
    async fn catch_up_in_place(&self) {
        let (settings, partition) = (self.settings, self.settings.partition);
        if settings.feed.is_none() {
            return;
        }
        let after = match self.views.partition_position(partition).await {
            Ok(Some(after)) => after,
            Ok(None) => return,
            Err(err) => return tracing::warn!(error = %err, "reading the stalled partition's position failed"),
        };
        match super::catch_up::vouched(settings, self.views, after).await {
            Ok((caught, vouched)) => {
                settings.handled.handled(partition, caught.through);
                tracing::info!(projection = settings.projection.name(), %partition, after, events = caught.events,
                    through = caught.through, ?vouched, "caught a stalled partition up from the event feed");
                if let Some(position) = vouched {
                    self.announce_position(position).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "catching a stalled partition up from the event feed failed"),
        }
    }

    /// Announces the partition's stored position as the session opens (decision 0033): to this replica's waiting
    /// reads and watchdog; to the other replicas' too after a catch-up, which may have moved it. Without a catch-up
    /// it tells the others nothing new, and a notice would count there as progress of the partition (a consumer
    /// opening again and again while its partition stays behind would hide the stall).
    async fn announce_opening(&self) {
        match (self.session.stored, self.session.caught_up) {
            (Some(position), true) => self.announce_position(position).await,
            (Some(position), false) => self.announce_here(position),
            (None, _) => {}
        }
    }

    /// Announces a position the partition was moved to outside a batch: to this replica's waiting reads and, by a
    /// notice, to the other replicas'.
    async fn announce_position(&self, position: i64) {
        self.announce_here(position);
        let settings = self.settings;
        let notice = notices::Notice::position(settings.projection.name(), settings.partition, position);
        if let Err(err) = notices::publish(&self.session.channel, &self.session.notice_route, notice).await {
            tracing::debug!(error = %err, "announcing a caught-up position failed; reads find it in the store");
        }
    }

    /// Announces a position of the partition to this replica's waiting reads (and its watchdog, which reads them).
    fn announce_here(&self, position: i64) {
        self.waiters.announce_partition_position(self.settings.partition, position);
        self.settings.metrics.position.set(self.waiters.position());
    }

    /// The delivery stream ended. On a live channel the broker cancelled the consumer because its queue was
    /// deleted, with whatever it held: that is recorded before anything else, so that no checkpoint passes what
    /// was lost.
    async fn cancelled_by_the_broker(&self) -> Next {
        if self.session.connected() {
            let mark = || self.views.mark_catch_up(self.settings.partition);
            if with_retries(self.shutdown, "recording a lost queue", mark).await.is_none() {
                return Next::Stop(Ok(()));
            }
            tracing::warn!(queue = %self.settings.partition_queue(), "the projector's queue was deleted; catching up \
                from the event feed before consuming again");
        }
        Next::Stop(Err(lapin::Error::from(std::io::Error::other("consumer cancelled by the broker"))))
    }

    /// Handles the batch that starts with `first`, sends its notices and holds its ack; `Some` when the loop ends.
    async fn consume_batch(&mut self, first: Delivery) -> Option<lapin::Result<()>> {
        let (settings, shutdown) = (self.settings, self.shutdown);
        settings.watchdog.holds(&self.stage, IN_HAND, true);
        settings.slowdown.hold(Instant::now(), shutdown).await;
        if shutdown.is_cancelled() {
            return Some(Ok(()));
        }
        // Whatever else has already arrived joins this batch (never waiting for more): one message at a time when
        // traffic is light, up to the prefetch in one write when it is not. A failed channel or a cancelled
        // consumer acks nothing of it: the broker delivers all of it again to whoever consumes next.
        let max = usize::from(settings.prefetch.max(1));
        let batch = match fill_batch(first, &mut self.session.deliveries, max) {
            Ok(batch) => batch,
            Err(err) => return Some(Err(err)),
        };
        let session = &self.session;
        let handling = Handling {
            settings,
            views: self.views,
            gaps: &session.gaps,
            waiters: self.waiters,
            dead_letters: &session.dead_letters,
            shutdown,
        };
        let (notices, position) = match handling.batch(&batch).await {
            Ok(Some(handled)) => handled,
            // Shutting down mid-retry: leave the deliveries unacked; the broker gives them to the next consumer.
            Ok(None) => return Some(Ok(())),
            Err(err) => return Some(Err(err)),
        };
        self.idle_stored_at = Instant::now();
        settings.watchdog.holds(&self.stage, IN_HAND, false);
        settings.watchdog.progressed(&self.stage);
        for notice in notices {
            if let Err(err) = notices::publish(&session.channel, &session.notice_route, notice).await {
                return Some(Err(err));
            }
        }
        // One ack for the batches written, once the position they carry is stored (see `acks`). An ack on a
        // connection the broker dropped may never resolve; the deliveries come back anyway.
        if let Some(last) = batch.last() {
            self.held.hold(last.acker.clone(), batch.len(), position, Instant::now());
        }
        if self.held.due(Instant::now(), self.hold_limit) {
            if let Next::Stop(result) = self.settle().await {
                return Some(result);
            }
        }
        None
    }

    /// Lets the partition go: what waits for it is another consumer's to report (or nobody's: `watch`). When
    /// stopping `cleanly`, what was written is settled once more if MongoDB answers at once; otherwise it comes
    /// back.
    async fn stop(self, cleanly: bool) {
        let settings = self.settings;
        settings.consuming.stopped(settings.partition);
        settings.watchdog.holds(&self.stage, QUEUED, false);
        settings.watchdog.holds(&self.stage, IN_HAND, false);
        if cleanly {
            let mut held = self.held;
            let (position, last) = held.take();
            let stored = match position {
                Some(position) => self.views.store_position(settings.partition, position).await.is_ok(),
                None => true,
            };
            if let (true, Some(last)) = (stored, last) {
                let _ = ack_through(&last).await;
            }
        }
        service_runtime::amqp::close(&self.session.connection, "projector stopping").await;
    }
}

/// Stores the newest position the held batches carry (into `stored` too), then acks them all. `Ok(false)` when
/// shutdown came first (they stay unacked and come back).
async fn settle(
    held: &mut HeldAcks<Acker>,
    partition: Partition,
    views: &ReadModelStore,
    stored: &mut Option<i64>,
    shutdown: &CancellationToken,
) -> lapin::Result<bool> {
    let (position, last) = held.take();
    if let Some(position) = position {
        let store = || views.store_position(partition, position);
        if with_retries(shutdown, "recording the position", store).await.is_none() {
            return Ok(false);
        }
        *stored = Some(position);
    }
    if let Some(last) = last {
        ack_through(&last).await?;
    }
    Ok(true)
}

/// The batch that starts with `first`: whatever else has already arrived, up to `max`, never waiting for more. A
/// failed or ended delivery stream is an error, not the end of the batch: the connection is gone, and the batch
/// with it.
fn fill_batch<D>(
    first: D,
    deliveries: &mut (impl futures_util::Stream<Item = lapin::Result<D>> + Unpin),
    max: usize,
) -> lapin::Result<Vec<D>> {
    let mut batch = vec![first];
    while batch.len() < max {
        match deliveries.next().now_or_never() {
            Some(Some(Ok(delivery))) => batch.push(delivery),
            Some(Some(Err(err))) => return Err(err),
            Some(None) => return Err(lapin::Error::from(std::io::Error::other("consumer cancelled by the broker"))),
            None => break,
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> lapin::Error {
        lapin::Error::from(std::io::Error::other("channel closed"))
    }

    #[test]
    fn a_batch_takes_what_has_arrived_up_to_its_limit() {
        let mut arrived = futures_util::stream::iter([Ok(2), Ok(3), Ok(4)]);
        assert_eq!(fill_batch(1, &mut arrived, 3).expect("a batch"), [1, 2, 3]);
        let mut pending = futures_util::stream::pending::<lapin::Result<i32>>();
        assert_eq!(fill_batch(1, &mut pending, 3).expect("a batch"), [1], "never waits for more");
    }

    #[test]
    fn a_delivery_error_while_filling_ends_the_batch_unacked_instead_of_being_dropped() {
        let mut failing = futures_util::stream::iter([Ok(2), Err(failure()), Ok(3)]);
        assert!(fill_batch(1, &mut failing, 10).is_err());
        let mut ended = futures_util::stream::iter([Ok(2)]);
        assert!(fill_batch(1, &mut ended, 10).is_err(), "a stream that ends is a cancelled consumer");
    }
}
