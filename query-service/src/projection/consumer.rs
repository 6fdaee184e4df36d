//! The AMQP consumer loop of one projection, with reconnects and dead-lettering.

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Acker;
use lapin::{BasicProperties, Channel, ConnectionProperties};
use service_runtime::watchdog::StageId;
use service_runtime::{amqp, retry_until_shutdown, Backoff};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::{ack_through, HeldAcks};
use super::batch::{self, Message};
use super::settings::ConsumerSettings;
use super::topology::{declare_topology, declared_otherwise, record_lost_queues};
use super::watch::{IN_HAND, QUEUED};
use crate::metrics::EventOutcome;
use crate::read::notices::{self, Notice};
use crate::read::VersionWaiters;
use crate::store::gaps::{GapOf, Gaps};
use crate::store::{ApplyOutcome, Guarded, StoreError, StoredView, Views, OPERATION_TIMEOUT};
use shared_events::{OrderEvent, Partition};

/// Consumes until `shutdown`; connection failures are logged and retried with backoff.
pub async fn run(settings: ConsumerSettings, views: Views, waiters: VersionWaiters, shutdown: CancellationToken) {
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
    views: &Views,
    waiters: &VersionWaiters,
    shutdown: &CancellationToken,
    backoff: &Backoff,
) -> lapin::Result<()> {
    let connection = service_runtime::amqp::connect(
        &settings.amqp_url,
        ConnectionProperties::default()
            .with_connection_name(format!("projector {}", settings.projection.name()).into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    record_lost_queues(&connection, settings, views).await?;
    if let Err(err) = declare_topology(&channel, settings).await {
        if let Some(refusal) = declared_otherwise(&err) {
            // Redeclaring cannot change a queue's type or arguments: retrying would only repeat the refusal.
            tracing::error!(queue = %settings.queue, queue_type = settings.queue_type.as_str(), %refusal,
                "the projector's queue exists with other arguments (created as another type?): set AMQP_QUEUE_TYPE \
                 to the type it has, or move its messages to a new queue and delete it (docs/operations.md, \"Queue types\"); \
                 the projector does not consume until then");
            service_runtime::amqp::close(&connection, "projector queue declared otherwise").await;
            shutdown.cancelled().await;
            return Ok(());
        }
        return Err(err);
    }
    // After the declaration: a queue found missing was recorded before it was created again, by this replica or
    // another one.
    let caught_up = catch_up_if_lost(settings, views).await?;
    // The markers this partition has handled: those up to its stored position (or, for a new split's, where the
    // split before it left off), those this process handled before it reconnected, and what a catch-up just wrote.
    let stored = views.start_chain(settings.partition).await.map_err(|err| store_failed(&err))?;
    for through in [stored, caught_up].into_iter().flatten() {
        settings.handled.handled(settings.partition, through);
    }
    channel.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
    let notice_route = settings.notices();
    notices::declare(&channel, &notice_route.exchange).await?;
    let dead_letters = connection.create_channel().await?;
    dead_letters.confirm_select(ConfirmSelectOptions::default()).await?;
    // The gaps still open, so that applying an event closes its gap without a MongoDB round trip per batch.
    let gaps = OpenGaps::load(views.gaps())
        .await
        .map_err(|err| lapin::Error::from(std::io::Error::other(format!("reading the read model's gaps: {err}"))))?;
    // A queue (a partition's, or the unsplit one) is consumed by one replica at a time, which the broker enforces:
    // every queue has a single active consumer, the others registered are standbys. Not an exclusive consumer: a
    // quorum queue ignores the flag and a classic one with a single active consumer refuses it (decision 0021).
    let options = BasicConsumeOptions::default();
    let queue = settings.partition_queue();
    let mut deliveries =
        channel.basic_consume(queue.as_str().into(), "".into(), options, FieldTable::default()).await?;
    tracing::info!(%queue, partition = %settings.partition, projection = settings.projection.name(), "projector consuming");
    settings.consuming.started(settings.partition);
    backoff.reset();
    let stage = StageId::projection(settings.projection.name(), settings.partition.index);

    // The delivery stream is not guaranteed to end when the broker closes the connection: check it now and then.
    let began = Instant::now();
    let mut health = tokio::time::interval_at(began + HEALTH_EVERY, HEALTH_EVERY);
    // The position this consumer stored last, and when it last handled a batch (whose position is stored within a
    // second) or stored that position again while idle. A standby stores none.
    let mut stored_last = None;
    let mut idle_stored_at = Instant::now();
    let mut held: HeldAcks<Acker> = HeldAcks::default();
    let hold_limit = usize::from(settings.prefetch.max(2)) / 2;
    let result = loop {
        let settle_at = held.due_at();
        let first = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = tokio::time::sleep_until(settle_at.unwrap_or_else(Instant::now)), if settle_at.is_some() => {
                match settle(&mut held, settings.partition, views, &mut stored_last, shutdown).await {
                    Ok(true) => continue,
                    Ok(false) => break Ok(()),
                    Err(err) => break Err(err),
                }
            }
            _ = health.tick() => {
                // At most once a stall period: a consumer that just began may not have had its chance yet.
                let waiting = settings.watchdog.stalled_by(&stage).is_some_and(|cause| cause.answered_by_progress);
                if waiting && held.due_at().is_none() && began.elapsed() >= settings.watchdog.stall_after() {
                    // Waiting for deliveries, with work waiting for this partition and none moving: the broker no
                    // longer gives this consumer anything (its queue was replaced under it, say). Consuming afresh
                    // gets back what it holds unacknowledged; the watchdog has reported the stall meanwhile.
                    tracing::warn!(queue = %settings.partition_queue(), "stalled while waiting for deliveries; \
                        consuming again");
                    break Err(store_failed(&"stalled while waiting for deliveries"));
                }
                if connection.status().connected() && channel.status().connected() {
                    if let Some(depth) = sample_queue_depth(&channel, settings).await {
                        settings.watchdog.holds(&stage, QUEUED, depth > 0);
                    }
                    // Idle (nothing held to settle): the position stored last is stored again now and then, so
                    // that a store that lost it is found out without waiting for the next event.
                    if held.due_at().is_none() && idle_stored_at.elapsed() >= STORE_AGAIN_EVERY {
                        idle_stored_at = Instant::now();
                        if let Some(position) = stored_last {
                            let again = views.store_position(settings.partition, position);
                            match tokio::time::timeout(OPERATION_TIMEOUT, again).await {
                                Ok(Ok(())) => {}
                                Ok(Err(err)) => tracing::debug!(error = %err, "storing the position again failed"),
                                Err(_) => tracing::debug!("storing the position again timed out"),
                            }
                        }
                    }
                    continue;
                }
                break Err(lapin::Error::from(std::io::Error::other("connection to RabbitMQ lost")));
            }
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => break Err(err),
                None => {
                    if connection.status().connected() && channel.status().connected() {
                        // The broker cancelled the consumer on a live channel: its queue was deleted, with whatever
                        // it held. Recorded before anything else, so that no checkpoint passes what was lost.
                        let mark = || views.mark_catch_up(settings.partition);
                        if with_retries(shutdown, "recording a lost queue", mark).await.is_none() {
                            break Ok(());
                        }
                        tracing::warn!(queue = %settings.partition_queue(), "the projector's queue was deleted; \
                            catching up from the event feed before consuming again");
                    }
                    break Err(lapin::Error::from(std::io::Error::other("consumer cancelled by the broker")));
                }
            },
        };
        settings.watchdog.holds(&stage, IN_HAND, true);
        settings.slowdown.hold(Instant::now(), shutdown).await;
        if shutdown.is_cancelled() {
            break Ok(());
        }
        // Whatever else has already arrived joins this batch (never waiting for more): one message at a time when
        // traffic is light, up to the prefetch in one write when it is not.
        let batch = match fill_batch(first, &mut deliveries, usize::from(settings.prefetch.max(1))) {
            Ok(batch) => batch,
            // The channel failed or the broker cancelled the consumer: nothing of this batch is acked, so the
            // broker delivers all of it again to whoever consumes next.
            Err(err) => break Err(err),
        };
        match handle_batch(&batch, settings, views, &gaps, waiters, &dead_letters, shutdown).await {
            Ok(Some((notices, position))) => {
                idle_stored_at = Instant::now();
                settings.watchdog.holds(&stage, IN_HAND, false);
                settings.watchdog.progressed(&stage);
                for notice in notices {
                    notices::publish(&channel, &notice_route, notice).await?;
                }
                // One ack for the batches written, once the position they carry is stored (see `acks`). An ack on
                // a connection the broker dropped may never resolve; the deliveries come back anyway.
                if let Some(last) = batch.last() {
                    held.hold(last.acker.clone(), batch.len(), position, Instant::now());
                }
                if held.due(Instant::now(), hold_limit) {
                    match settle(&mut held, settings.partition, views, &mut stored_last, shutdown).await {
                        Ok(true) => {}
                        Ok(false) => break Ok(()),
                        Err(err) => break Err(err),
                    }
                }
            }
            // Shutting down mid-retry: leave the deliveries unacked; the broker gives them to the next consumer.
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    settings.consuming.stopped(settings.partition);
    // What waits for a partition this consumer lets go is another consumer's to report (or nobody's: `watch`).
    settings.watchdog.holds(&stage, QUEUED, false);
    settings.watchdog.holds(&stage, IN_HAND, false);
    if result.is_ok() {
        // Stopping: what was written is settled once more if MongoDB answers at once; otherwise it comes back.
        let (position, last) = held.take();
        let stored = match position {
            Some(position) => views.store_position(settings.partition, position).await.is_ok(),
            None => true,
        };
        if let (true, Some(last)) = (stored, last) {
            let _ = ack_through(&last).await;
        }
    }
    service_runtime::amqp::close(&connection, "projector stopping").await;
    result
}

/// How often a consumer looks at its connection, its queue's depth and its stage.
const HEALTH_EVERY: Duration = Duration::from_secs(2);
/// How often an idle consumer stores the position it stored last again (one write command, changing nothing unless
/// the store lost it).
const STORE_AGAIN_EVERY: Duration = Duration::from_secs(10);

/// Catches the partition up from the event feed if its queue was lost while it may have held events (see
/// `catch_up`), before it consumes again; an error (the feed or the store failing, no token for the feed) keeps it
/// from consuming until the next attempt.
async fn catch_up_if_lost(settings: &ConsumerSettings, views: &Views) -> lapin::Result<Option<i64>> {
    let Some(after) = views.catch_up_from(settings.partition).await.map_err(|err| store_failed(&err))? else {
        return Ok(None);
    };
    let caught = super::catch_up::from_feed(settings, views, after).await.map_err(|err| store_failed(&err))?;
    views.caught_up(settings.partition).await.map_err(|err| store_failed(&err))?;
    tracing::info!(projection = settings.projection.name(), partition = %settings.partition, after,
        events = caught.events, through = caught.through, "caught a lost queue up from the event feed");
    Ok(Some(caught.through))
}

/// A failure outside the broker, as the error that ends a consumer (it is retried with backoff).
fn store_failed(err: &dyn std::fmt::Display) -> lapin::Error {
    lapin::Error::from(std::io::Error::other(err.to_string()))
}

/// Stores the newest position the held batches carry (into `stored` too), then acks them all. `Ok(false)` when
/// shutdown came first (they stay unacked and come back).
async fn settle(
    held: &mut HeldAcks<Acker>,
    partition: Partition,
    views: &Views,
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

/// Reads how many messages wait in the queue (a passive declare) into the queue-depth gauge, and returns it (`None`
/// when the broker did not answer in time).
async fn sample_queue_depth(channel: &Channel, settings: &ConsumerSettings) -> Option<u32> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declare = channel.queue_declare(settings.partition_queue().as_str().into(), passive, FieldTable::default());
    let Ok(Ok(queue)) = tokio::time::timeout(Duration::from_secs(2), declare).await else { return None };
    settings.metrics.queue_depth.set(i64::from(queue.message_count()));
    Some(queue.message_count())
}

/// Handles a batch as [`batch::plan`] sorts it: its events are written together, then its newest checkpoint is
/// announced (every event before a checkpoint is in the batch or an earlier one, so once the batch is written the
/// position may pass it), and what cannot be read is dead-lettered, an event of the log with its gap recorded first.
/// Returns the notices to send and the position to store before the batch is acked, or `None` when shutdown
/// interrupted it.
async fn handle_batch(
    deliveries: &[Delivery],
    settings: &ConsumerSettings,
    views: &Views,
    gaps: &OpenGaps,
    waiters: &VersionWaiters,
    dead_letters: &Channel,
    shutdown: &CancellationToken,
) -> lapin::Result<Option<(Vec<Notice>, Option<i64>)>> {
    let plan = batch::plan(deliveries.iter().map(message));
    // A marker that names one this partition never handled: messages were lost from the queue. Recorded first, so
    // that the partition is caught up from the event feed before this batch (left unacked) comes back.
    if let Some((known, previous)) = batch::chain_break(&plan.markers, settings.handled.get(settings.partition)) {
        let mark = || views.mark_catch_up(settings.partition);
        if with_retries(shutdown, "recording a lost queue", mark).await.is_none() {
            return Ok(None);
        }
        tracing::warn!(queue = %settings.partition_queue(), handled = known, previous,
            "the queue lost messages (a checkpoint marker names one this partition never handled: the queue was \
             deleted and declared again, or purged); catching up from the event feed");
        return Err(store_failed(&format!("checkpoint markers after {known} up to {previous} were lost")));
    }
    for (index, dead) in &plan.dead_letters {
        tracing::warn!(reason = %dead.reason, kind = dead.kind, "dead-lettering a message");
        if let Some(gap) = &dead.gap {
            // The generations that lack it: every live one.
            let record = || async {
                let live = views.generations().current().await?.live();
                gaps.record(gap, &dead.reason, &live).await
            };
            if with_retries(shutdown, "recording a gap", record).await.is_none() {
                return Ok(None);
            }
        }
        settings.metrics.event(dead.kind, EventOutcome::DeadLettered);
        dead_letter(dead_letters, &settings.dead_letter_queue(), &deliveries[*index], &dead.reason).await?;
    }
    let mut notices = Vec::new();
    let (sources, events): (Vec<usize>, Vec<OrderEvent>) = plan.events.into_iter().unzip();
    let Some((refused, written)) = apply_events(&events, settings, views, waiters, shutdown, &mut notices).await else {
        return Ok(None);
    };
    let mut applied: Vec<i64> = events.iter().map(|event| event.sequence).collect();
    for (index, reason) in refused {
        let event = &events[index];
        tracing::warn!(%reason, "dead-lettering an event whose view write MongoDB keeps refusing");
        applied.retain(|s| *s != event.sequence);
        let gap = GapOf::of_event(event);
        let record = || gaps.record(&gap, &reason, &written);
        if with_retries(shutdown, "recording a gap", record).await.is_none() {
            return Ok(None);
        }
        settings.metrics.event(event.event_type.as_str(), EventOutcome::DeadLettered);
        dead_letter(dead_letters, &settings.dead_letter_queue(), &deliveries[sources[index]], &reason).await?;
    }
    // A redriven or redelivered event may close a gap another consumer recorded: those are closed in MongoDB
    // whether this consumer knows the gap or not.
    let again: Vec<i64> = events
        .iter()
        .zip(&sources)
        .filter(|(_, &source)| came_again(&deliveries[source]))
        .map(|(event, _)| event.sequence)
        .filter(|sequence| applied.contains(sequence))
        .collect();
    if with_retries(shutdown, "closing gaps", || gaps.close(&applied, &again, &written)).await.is_none() {
        return Ok(None);
    }
    // The store's first checkpoint says whether its first generation holds the log from its start (decision 0019).
    if plan.checkpoint.is_some() {
        let settle = || settle_first_generation(settings, views, plan.whole_log);
        if with_retries(shutdown, "recording whether the read model holds the whole log", settle).await.is_none() {
            return Ok(None);
        }
    }
    if let Some(through) = plan.checkpoint {
        if settings.handled.get(settings.partition).is_none() {
            // The first marker this partition handles starts its chain (decision 0023): its position is stored
            // before it is announced, not with the batch's ack, so that a process that dies in between leaves the
            // start of the chain behind, and a queue emptied afterwards is found out by the next marker.
            let store = || views.store_position(settings.partition, through);
            if with_retries(shutdown, "recording the partition's first position", store).await.is_none() {
                return Ok(None);
            }
        }
        settings.handled.handled(settings.partition, through);
    }
    // The position is announced now and stored with the batch's ack (see `acks`).
    if let Some(position) = plan.checkpoint {
        waiters.announce_partition_position(settings.partition, position);
        settings.metrics.position.set(waiters.position());
        notices.push(Notice::position(settings.projection.name(), settings.partition, position));
    }
    Ok(Some((notices, plan.checkpoint)))
}

/// Records, the first time the partition handles a checkpoint, whether its queue held the log from its start (and
/// so, once every partition has, whether the first generation does): the checkpoint says so (`whole_log`), or the
/// read model is the order views and its store already has a position (kept by a release before this record
/// existed, which delivered every event to them) and no lost pointer (see below). One cached pointer read once it is
/// known.
async fn settle_first_generation(
    settings: &ConsumerSettings,
    views: &Views,
    whole_log: bool,
) -> Result<(), StoreError> {
    let cached = views.generations().current().await?;
    if cached.first_complete.is_some() || cached.first_partitions.contains_key(&settings.partition.key()) {
        return Ok(());
    }
    let assumed = !whole_log && settings.projection.announces_views() && views.position().await? > 0 && {
        // A pointer made anew (none of its rebuilds recorded) beside generations a rebuild made was lost: the first
        // generation it names may have stopped taking writes long ago.
        cached.created > 0 || views.newest_rebuilt_generation().await? == 0
    };
    views.generations().settle_first(settings.partition, whole_log, assumed).await.map(drop)
}

/// What [`batch::plan`] reads of a delivery.
fn message(delivery: &Delivery) -> Message<'_> {
    let header = |name: &str| delivery.properties.headers().as_ref().and_then(|h| h.inner().get(name));
    let sequence_header = match header(shared_events::SEQUENCE_HEADER) {
        Some(AMQPValue::LongLongInt(sequence)) => Some(*sequence),
        _ => None,
    };
    Message {
        kind: delivery.properties.kind().as_ref().map(|kind| kind.as_str()),
        sequence_header,
        whole_log: matches!(header(shared_events::WHOLE_LOG_HEADER), Some(AMQPValue::Boolean(true))),
        data: &delivery.data,
    }
}

/// Whether a delivery came before (redelivered by the broker, or redriven from the dead-letter queue).
fn came_again(delivery: &Delivery) -> bool {
    let redriven = delivery.properties.headers().as_ref().is_some_and(|h| h.inner().contains_key(super::REDRIVE_COUNT));
    delivery.redelivered || redriven
}

/// How long this consumer trusts what it knows of the open gaps before it reads them again (another consumer of
/// the read model may have recorded one meanwhile).
const GAPS_FRESH_FOR: Duration = Duration::from_secs(10);

/// The gaps of the read model that are open (in any generation), known to this consumer: recording one writes it
/// to MongoDB and remembers it; closing asks MongoDB only for sequences among them, or for events that came again.
#[derive(Debug)]
struct OpenGaps {
    gaps: Gaps,
    known: tokio::sync::Mutex<(std::collections::HashSet<i64>, Instant)>,
}

impl OpenGaps {
    async fn load(gaps: Gaps) -> Result<Self, StoreError> {
        let open = gaps.open().await?.into_iter().collect();
        Ok(Self { gaps, known: tokio::sync::Mutex::new((open, Instant::now())) })
    }

    /// Records that the event `gap` is of reached none of `generations`.
    async fn record(&self, gap: &GapOf, reason: &str, generations: &[String]) -> Result<(), StoreError> {
        self.gaps.record(gap, reason, generations).await?;
        self.known.lock().await.0.insert(gap.sequence);
        Ok(())
    }

    /// Closes, in `generations`, the gaps of the `applied` sequences that are open, and of those that came `again`
    /// whether known open or not; no round trip when there is none of either.
    async fn close(&self, applied: &[i64], again: &[i64], generations: &[String]) -> Result<(), StoreError> {
        let mut known = self.known.lock().await;
        if known.1.elapsed() >= GAPS_FRESH_FOR {
            *known = (self.gaps.open().await?.into_iter().collect(), Instant::now());
        }
        let mut closing: Vec<i64> = applied.iter().copied().filter(|s| known.0.contains(s)).collect();
        closing.extend(again.iter().filter(|s| !known.0.contains(s)));
        if closing.is_empty() {
            return Ok(());
        }
        self.gaps.close(&closing, generations).await?;
        for sequence in &closing {
            known.0.remove(sequence);
        }
        Ok(())
    }
}

/// Attempts at a view write that MongoDB refuses for that view alone (not for being down) before its event is
/// dead-lettered, so that one write that can never succeed does not hold back every event behind it.
pub const VIEW_WRITE_ATTEMPTS: u32 = 5;

/// Writes what `events` make of the projection's documents in one batch (retried until MongoDB answers), then
/// counts, logs and announces each. An event whose documents MongoDB refuses is written again up to
/// [`VIEW_WRITE_ATTEMPTS`] times ([`batch::settle`]); what is still refused — or has no documents the projection
/// can make — comes back as `(index in events, reason)`, to be dead-lettered. `None` when shutdown came first.
async fn apply_events(
    events: &[OrderEvent],
    settings: &ConsumerSettings,
    views: &Views,
    waiters: &VersionWaiters,
    shutdown: &CancellationToken,
    notices: &mut Vec<Notice>,
) -> Option<(Vec<(usize, String)>, Vec<String>)> {
    let mut refused = Vec::new();
    // The generations every round wrote to: the ones whose gaps the written events close.
    let mut written_to: Option<Vec<String>> = None;
    let mut all: Vec<Vec<Guarded>> = Vec::with_capacity(events.len());
    let mut pending: Vec<usize> = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        match settings.projection.apply(event) {
            Ok(documents) => {
                all.push(documents);
                pending.push(index);
            }
            Err(reason) => {
                all.push(Vec::new());
                refused.push((index, reason));
            }
        }
    }
    let retries = Backoff::default();
    for attempt in 1..=VIEW_WRITE_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<Guarded> = pending.iter().flat_map(|&i| all[i].iter().cloned()).collect();
        settings.metrics.batch_views.observe(batch.len() as f64);
        let (outcomes, live) = with_retries(shutdown, "writing the views", || views.apply_to_live(&batch)).await?;
        written_to = Some(match written_to {
            None => live,
            Some(before) => before.into_iter().filter(|name| live.contains(name)).collect(),
        });
        let written = time::OffsetDateTime::now_utc();
        let per_event = batch::per_event(pending.iter().map(|&i| all[i].len()), outcomes);
        let round = batch::settle(&pending, per_event, attempt, VIEW_WRITE_ATTEMPTS);
        for (index, reason) in round.again.iter().chain(&round.refused) {
            let event = &events[*index];
            tracing::warn!(order_id = %event.order_id, version = event.version, attempt, %reason,
                "MongoDB refused a view write");
        }
        for (index, outcome) in round.done {
            announce(&events[index], &outcome, written, settings, waiters, notices);
        }
        refused.extend(round.refused);
        if round.again.is_empty() {
            break;
        }
        pending = round.again.into_iter().map(|(index, _)| index).collect();
        if service_runtime::sleep_or_shutdown(retries.failed(), shutdown).await {
            return None;
        }
    }
    let written_to = match written_to {
        Some(written_to) => written_to,
        None => {
            with_retries(shutdown, "reading the pointer", || async { Ok(views.generations().current().await?.live()) })
                .await?
        }
    };
    Some((refused, written_to))
}

/// Counts, logs and announces one written event. A version already stored by an earlier attempt is announced again
/// (its first announcement may be the one that was lost); only an older one is a mere duplicate.
fn announce(
    event: &OrderEvent,
    outcome: &ApplyOutcome,
    written: time::OffsetDateTime,
    settings: &ConsumerSettings,
    waiters: &VersionWaiters,
    notices: &mut Vec<Notice>,
) {
    let trace_id = event.traceparent.as_deref().and_then(shared_events::trace_id).unwrap_or_default();
    let span = tracing::info_span!("apply", order_id = %event.order_id, event_id = %event.event_id, trace_id);
    if let Some(traceparent) = &event.traceparent {
        service_runtime::telemetry::continue_trace(&span, traceparent);
    }
    let _entered = span.enter();
    tracing::debug!(version = event.version, ?outcome, trace_id, "event applied");
    let event_type = event.event_type.as_str();
    match outcome {
        ApplyOutcome::Stale | ApplyOutcome::Failed(_) => {
            settings.metrics.event(event_type, EventOutcome::Duplicate);
            return;
        }
        ApplyOutcome::AlreadyStored => settings.metrics.event(event_type, EventOutcome::Duplicate),
        ApplyOutcome::Applied => {
            settings.metrics.event(event_type, EventOutcome::Applied);
            settings.metrics.applied(event.sequence, (written - event.occurred_at).try_into().unwrap_or_default());
        }
    }
    if settings.projection.announces_views() {
        let view = StoredView::from_event(event);
        notices.push(Notice::view_changed(&view, event.order_id));
        waiters.announce_view(event.order_id, std::sync::Arc::new(view));
    }
}

/// Runs a MongoDB write until it succeeds, with backoff; `None` when shutdown came first.
async fn with_retries<T, F, Fut>(shutdown: &CancellationToken, what: &str, write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    retry_until_shutdown(what, &Backoff::default(), shutdown, write).await
}

/// Longest wait for the broker to confirm a dead letter.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies a message to the dead-letter queue with its reason, and waits for the broker to confirm that the queue has
/// it.
async fn dead_letter(channel: &Channel, queue: &str, delivery: &Delivery, reason: &str) -> lapin::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert("x-dead-letter-reason".into(), AMQPValue::LongString(LongString::from(reason)));
    headers.insert(
        "x-original-routing-key".into(),
        AMQPValue::LongString(LongString::from(delivery.routing_key.as_str())),
    );
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
    // Mandatory: with the dead-letter queue missing the broker returns the copy, and the original stays unacked (the
    // consumer reconnects, declares its topology again and gets it back) instead of being acked after a copy that
    // went nowhere.
    let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let confirm =
        amqp::publish_confirmed(channel, "", queue, options, &delivery.data, properties, CONFIRM_TIMEOUT).await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(_)) => {
            Err(lapin::Error::from(std::io::Error::other(format!("the dead-letter queue {queue} does not exist"))))
        }
        _ => Err(amqp::refused("a dead letter")),
    }
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
