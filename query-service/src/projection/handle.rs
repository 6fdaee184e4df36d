//! One batch of deliveries handled: decoded and sorted by [`batch::plan`], its events' documents written with the
//! version guard, announced to waiting reads, what cannot be read or written dead-lettered with its gap recorded,
//! and its checkpoint settled. What it returns — the notices to send and the position to store — the consumer loop
//! sends and stores before it acks.

use lapin::message::Delivery;
use lapin::types::AMQPValue;
use lapin::Channel;
use service_runtime::Backoff;
use tokio_util::sync::CancellationToken;

use super::batch::{self, Message};
use super::dead_letters::dead_letter;
use super::open_gaps::OpenGaps;
use super::retries::{store_failed, with_retries};
use super::settings::ConsumerSettings;
use crate::metrics::EventOutcome;
use crate::read::notices::Notice;
use crate::read::VersionWaiters;
use crate::store::gaps::GapOf;
use crate::store::{ApplyOutcome, Guarded, ReadModelStore, StoreError, StoredView};
use shared_events::OrderEvent;

/// What a batch is handled with: the consumer's settings, its read model, the open gaps it knows, the waiting reads
/// it announces to, and the channel its dead letters go through.
pub struct Handling<'a> {
    pub settings: &'a ConsumerSettings,
    pub views: &'a ReadModelStore,
    pub gaps: &'a OpenGaps,
    pub waiters: &'a VersionWaiters,
    pub dead_letters: &'a Channel,
    pub shutdown: &'a CancellationToken,
}

/// A step of handling a batch: `Ok(None)` when shutdown interrupted it (the batch stays unacked and comes back).
type Step<T> = lapin::Result<Option<T>>;

impl Handling<'_> {
    /// Handles a batch as [`batch::plan`] sorts it: its events are written together, then its newest checkpoint is
    /// announced (every event before a checkpoint is in the batch or an earlier one, so once the batch is written
    /// the position may pass it), and what cannot be read is dead-lettered, an event of the log with its gap
    /// recorded first. Returns the notices to send and the position to store before the batch is acked.
    pub async fn batch(&self, deliveries: &[Delivery]) -> Step<(Vec<Notice>, Option<i64>)> {
        let settings = self.settings;
        let mut plan = batch::plan(deliveries.iter().map(message), settings.partition.count);
        if plan.other_split > 0 {
            tracing::warn!(queue = %settings.partition_queue(), markers = plan.other_split, split = %settings.partition,
                "skipped checkpoint markers sent for another split (left in a queue this split took over by name, \
                or a relay that routes to another PROJECTOR_PARTITIONS): they close the log for that split only");
        }
        if let Some((known, previous)) = batch::chain_break(&plan.markers, settings.handled.get(settings.partition)) {
            return self.lost_messages(known, previous).await;
        }
        if self.dead_letter_unreadable(deliveries, &plan.dead_letters).await?.is_none() {
            return Ok(None);
        }
        let mut notices = Vec::new();
        let (sources, events): (Vec<usize>, Vec<OrderEvent>) = std::mem::take(&mut plan.events).into_iter().unzip();
        let Some((refused, written)) = self.apply_events(&events, &mut notices).await else { return Ok(None) };
        let Some(applied) = self.dead_letter_refused(deliveries, &events, &sources, refused, &written).await? else {
            return Ok(None);
        };
        // A redriven or redelivered event may close a gap another consumer recorded: those are closed in MongoDB
        // whether this consumer knows the gap or not.
        let again: Vec<i64> = events
            .iter()
            .zip(&sources)
            .filter(|(event, &source)| came_again(&deliveries[source]) && applied.contains(&event.sequence))
            .map(|(event, _)| event.sequence)
            .collect();
        let close = || self.gaps.close(&applied, &again, &written);
        if with_retries(self.shutdown, "closing gaps", close).await.is_none() || !self.settle_checkpoint(&plan).await {
            return Ok(None);
        }
        // The position is announced now and stored with the batch's ack (see `acks`).
        if let Some(position) = plan.checkpoint {
            self.waiters.announce_partition_position(settings.partition, position);
            settings.metrics.position.set(self.waiters.position());
            notices.push(Notice::position(settings.projection.name(), settings.partition, position));
        }
        Ok(Some((notices, plan.checkpoint)))
    }

    /// A marker that names one this partition never handled: messages were lost from the queue. Recorded first, so
    /// that the partition is caught up from the event feed before this batch (left unacked) comes back.
    async fn lost_messages<T>(&self, known: i64, previous: i64) -> Step<T> {
        let mark = || self.views.mark_catch_up(self.settings.partition);
        if with_retries(self.shutdown, "recording a lost queue", mark).await.is_none() {
            return Ok(None);
        }
        tracing::warn!(queue = %self.settings.partition_queue(), handled = known, previous,
            "the queue lost messages (a checkpoint marker names one this partition never handled: the queue was \
             deleted and declared again, or purged); catching up from the event feed");
        Err(store_failed(&format!("checkpoint markers after {known} up to {previous} were lost")))
    }

    /// Dead-letters what cannot be read, an event of the log with its gap recorded first (in every live
    /// generation).
    async fn dead_letter_unreadable(&self, deliveries: &[Delivery], dead: &[(usize, batch::DeadLetter)]) -> Step<()> {
        for (index, dead) in dead {
            tracing::warn!(reason = %dead.reason, kind = dead.kind, "dead-lettering a message");
            if let Some(gap) = &dead.gap {
                let record = || async {
                    let live = self.views.generations().current().await?.live();
                    self.gaps.record(gap, &dead.reason, &live).await
                };
                if with_retries(self.shutdown, "recording a gap", record).await.is_none() {
                    return Ok(None);
                }
            }
            self.settings.metrics.event(dead.kind, EventOutcome::DeadLettered);
            let queue = self.settings.dead_letter_queue();
            dead_letter(self.dead_letters, &queue, &deliveries[*index], &dead.reason).await?;
        }
        Ok(Some(()))
    }

    /// Dead-letters the events whose view write MongoDB keeps refusing (`refused`: the index in `events` and why;
    /// `sources[index]` is its delivery's), their gaps recorded in the generations `written`. Returns the sequences
    /// of the events applied.
    async fn dead_letter_refused(
        &self,
        deliveries: &[Delivery],
        events: &[OrderEvent],
        sources: &[usize],
        refused: Vec<(usize, String)>,
        written: &[String],
    ) -> Step<Vec<i64>> {
        let mut applied: Vec<i64> = events.iter().map(|event| event.sequence).collect();
        for (index, reason) in refused {
            let event = &events[index];
            tracing::warn!(%reason, "dead-lettering an event whose view write MongoDB keeps refusing");
            applied.retain(|s| *s != event.sequence);
            let gap = GapOf::of_event(event);
            let record = || self.gaps.record(&gap, &reason, written);
            if with_retries(self.shutdown, "recording a gap", record).await.is_none() {
                return Ok(None);
            }
            self.settings.metrics.event(event.event_type.as_str(), EventOutcome::DeadLettered);
            let queue = self.settings.dead_letter_queue();
            dead_letter(self.dead_letters, &queue, &deliveries[sources[index]], &reason).await?;
        }
        Ok(Some(applied))
    }

    /// Settles the batch's newest checkpoint, if it has one: the store's first checkpoint says whether its first
    /// generation holds the log from its start (decision 0019), and the first marker this partition handles starts
    /// its chain (decision 0023). `false` when shutdown came first.
    async fn settle_checkpoint(&self, plan: &batch::Plan) -> bool {
        let (settings, views, shutdown) = (self.settings, self.views, self.shutdown);
        let Some(through) = plan.checkpoint else { return true };
        let settle = || settle_first_generation(settings, views, plan.whole_log);
        if with_retries(shutdown, "recording whether the read model holds the whole log", settle).await.is_none() {
            return false;
        }
        if settings.handled.get(settings.partition).is_none() {
            // Its position is stored before it is announced, not with the batch's ack, so that a process that dies
            // in between leaves the start of the chain behind, and a queue emptied afterwards is found out by the
            // next marker.
            let store = || views.store_position(settings.partition, through);
            if with_retries(shutdown, "recording the partition's first position", store).await.is_none() {
                return false;
            }
        }
        settings.handled.handled(settings.partition, through);
        true
    }

    /// Writes what `events` make of the projection's documents in one batch (retried until MongoDB answers), then
    /// counts, logs and announces each. An event whose documents MongoDB refuses is written again up to
    /// [`VIEW_WRITE_ATTEMPTS`] times ([`batch::settle`]); what is still refused — or has no documents the projection
    /// can make — comes back as `(index in events, reason)`, to be dead-lettered. `None` when shutdown came first.
    async fn apply_events(
        &self,
        events: &[OrderEvent],
        notices: &mut Vec<Notice>,
    ) -> Option<(Vec<(usize, String)>, Vec<String>)> {
        let (settings, views, waiters, shutdown) = (self.settings, self.views, self.waiters, self.shutdown);
        let Projected { documents: all, mut pending, mut refused } = project(settings, events);
        // The generations every round wrote to: the ones whose gaps the written events close.
        let mut written_to: Option<Vec<String>> = None;
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
                with_retries(shutdown, "reading the pointer", || async {
                    Ok(views.generations().current().await?.live())
                })
                .await?
            }
        };
        Some((refused, written_to))
    }
}

/// What the projection makes of a batch's events.
struct Projected {
    /// The documents of each event, by its index (none for one the projection refuses).
    documents: Vec<Vec<Guarded>>,
    /// The indexes of the events that have documents to write.
    pending: Vec<usize>,
    /// `(index, reason)` of the events the projection refuses.
    refused: Vec<(usize, String)>,
}

fn project(settings: &ConsumerSettings, events: &[OrderEvent]) -> Projected {
    let (mut all, mut pending, mut refused) = (Vec::with_capacity(events.len()), Vec::new(), Vec::new());
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
    Projected { documents: all, pending, refused }
}

/// Attempts at a view write that MongoDB refuses for that view alone (not for being down) before its event is
/// dead-lettered, so that one write that can never succeed does not hold back every event behind it.
pub const VIEW_WRITE_ATTEMPTS: u32 = 5;

/// Records, the first time the partition handles a checkpoint, whether its queue held the log from its start (and
/// so, once every partition has, whether the first generation does): the checkpoint says so (`whole_log`), or the
/// read model is the order views and its store already has a position (kept by a release before this record
/// existed, which delivered every event to them) and no lost pointer (see below). One cached pointer read once it is
/// known.
async fn settle_first_generation(
    settings: &ConsumerSettings,
    views: &ReadModelStore,
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
        split: header(shared_events::SPLIT_HEADER).and_then(split_of),
        data: &delivery.data,
    }
}

/// The split a checkpoint's header names, whatever integer type carries it (a relay sends a short unsigned one;
/// a tool may send another).
fn split_of(value: &AMQPValue) -> Option<u16> {
    let split = match value {
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u16::try_from(split).ok()
}

/// Whether a delivery came before (redelivered by the broker, or redriven from the dead-letter queue).
fn came_again(delivery: &Delivery) -> bool {
    let redriven = delivery.properties.headers().as_ref().is_some_and(|h| h.inner().contains_key(super::REDRIVE_COUNT));
    delivery.redelivered || redriven
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
