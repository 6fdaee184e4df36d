//! What a batch means, decided without I/O: which of its messages are events to apply, how far its checkpoint
//! markers close the log, and which go to the dead-letter queue (and whether they leave a gap in the log); then,
//! after each write round, which views are done, which are written again and which are given up. The consumer loop
//! ([`super::consumer`]) does the I/O around these decisions.

use shared_events::{Checkpoint, EventType, OrderEvent, CHECKPOINT_TYPE};

use crate::store::gaps::GapOf;
use crate::store::ApplyOutcome;

/// One delivered message, as far as sorting it goes: the `type` property, the relay's `sequence`, `whole-log` and
/// `partitions` headers and the body.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: Option<&'a str>,
    pub sequence_header: Option<i64>,
    /// A checkpoint's word that the read model's queue has had every event of the log before it.
    pub whole_log: bool,
    /// The split a checkpoint closes the log for (`None` from a relay of an earlier release).
    pub split: Option<u16>,
    pub data: &'a [u8],
}

/// A message that goes to the dead-letter queue, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The `event_type` label it is counted under: a known event type, `checkpoint`, or `unknown`.
    pub kind: &'static str,
    pub reason: String,
    /// The event of the log that reaches no view (its position, and its order and customer as far as they can be
    /// read): a gap `minPosition` reads must report. `None` for a message that is no event of the log.
    pub gap: Option<GapOf>,
}

/// A batch sorted: every message is in exactly one of the three, by its index in the batch.
#[derive(Debug, Default)]
pub struct Plan {
    pub events: Vec<(usize, OrderEvent)>,
    /// The newest position the batch's checkpoint markers close the log through.
    pub checkpoint: Option<i64>,
    /// Whether one of those markers said that the queue has had every event of the log (decision 0019).
    pub whole_log: bool,
    /// Each marker's `(previous, closed_through)`, in delivery order (decision 0023).
    pub markers: Vec<(Option<i64>, i64)>,
    /// Markers sent for another split (left in a queue a changed split took over by name): acked, and taken for
    /// nothing (decision 0028).
    pub other_split: usize,
    pub dead_letters: Vec<(usize, DeadLetter)>,
}

/// Where the chain of checkpoint markers breaks, given the partition has handled every marker through `handled`
/// (`None`: none yet, so the first marker starts the chain): the first marker that names a previous one beyond what
/// was handled, as `(handled, previous)`. Messages between the two were lost from the queue (deleted and declared
/// again, purged), and the relay had counted them delivered (decision 0023). `None` when the chain holds.
pub fn chain_break(markers: &[(Option<i64>, i64)], handled: Option<i64>) -> Option<(i64, i64)> {
    let mut handled = handled;
    for &(previous, closed_through) in markers {
        if let (Some(previous), Some(known)) = (previous, handled) {
            if previous > known {
                return Some((known, previous));
            }
        }
        handled = handled.max(Some(closed_through));
    }
    None
}

/// Sorts a batch of a queue of a split into `split` partitions, in delivery order.
pub fn plan<'a>(messages: impl IntoIterator<Item = Message<'a>>, split: u16) -> Plan {
    let mut plan = Plan::default();
    for (index, message) in messages.into_iter().enumerate() {
        if message.kind == Some(CHECKPOINT_TYPE) {
            match serde_json::from_slice::<Checkpoint>(message.data) {
                Ok(_) if message.split.is_some_and(|sent_for| sent_for != split) => plan.other_split += 1,
                Ok(marker) => {
                    plan.checkpoint = plan.checkpoint.max(Some(marker.closed_through));
                    plan.markers.push((marker.previous, marker.closed_through));
                    plan.whole_log |= message.whole_log;
                }
                Err(_) => plan.dead_letters.push((
                    index,
                    DeadLetter { kind: CHECKPOINT_TYPE, reason: "malformed checkpoint".to_owned(), gap: None },
                )),
            }
            continue;
        }
        match shared_events::decode(message.data) {
            Ok(event) => plan.events.push((index, event)),
            Err(reason) => {
                let kind = message.kind.and_then(EventType::parse).map_or("unknown", EventType::as_str);
                let gap = log_position(&message);
                plan.dead_letters.push((index, DeadLetter { kind, reason: reason.to_string(), gap }));
            }
        }
    }
    plan
}

/// The log sequence (and order id) of a message that could not be decoded: from the relay's `sequence` header,
/// else from the body's `sequence` field. `None` for a message that is no event of the log.
fn log_position(message: &Message<'_>) -> Option<GapOf> {
    let body: Option<serde_json::Value> = serde_json::from_slice(message.data).ok();
    let order_id = body.as_ref().and_then(|b| b.get("orderId")).and_then(|id| id.as_str()).map(str::to_owned);
    let payload = body.as_ref().and_then(|b| b.get("payload"));
    let customer_id = payload.and_then(shared_events::upcast::customer_named).map(str::to_owned);
    let sequence = message.sequence_header.or_else(|| body.as_ref()?.get("sequence")?.as_i64())?;
    (sequence > 0).then_some(GapOf { sequence, order_id, customer_id })
}

/// What one write round of a batch's views came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Views MongoDB answered for (applied, already stored or stale), by index: count and announce them.
    pub done: Vec<(usize, ApplyOutcome)>,
    /// Views MongoDB refused, to write again in the next round, with its reason.
    pub again: Vec<(usize, String)>,
    /// Views still refused in the last round allowed, with MongoDB's reason: their events are dead-lettered.
    pub refused: Vec<(usize, String)>,
}

/// One outcome per event from the outcomes of its documents (`counts[i]` documents of event `i`, in order): refused
/// if any was refused (the event is written again, whole: the others' guard makes that harmless), else applied if
/// any was applied, else already stored if any was; an event that writes nothing is applied.
pub fn per_event(counts: impl IntoIterator<Item = usize>, outcomes: Vec<ApplyOutcome>) -> Vec<ApplyOutcome> {
    let mut outcomes = outcomes.into_iter();
    counts
        .into_iter()
        .map(|count| {
            let own: Vec<ApplyOutcome> = outcomes.by_ref().take(count).collect();
            let rank = |outcome: &ApplyOutcome| match outcome {
                ApplyOutcome::Failed(_) => 3,
                ApplyOutcome::Applied => 2,
                ApplyOutcome::AlreadyStored => 1,
                ApplyOutcome::Stale => 0,
            };
            own.into_iter().max_by_key(rank).unwrap_or(ApplyOutcome::Applied)
        })
        .collect()
}

/// Sorts the outcomes of round `attempt` (from 1) of at most `attempts` for the views `pending` (indexes in the
/// batch, in the order they were written).
pub fn settle(pending: &[usize], outcomes: Vec<ApplyOutcome>, attempt: u32, attempts: u32) -> Round {
    let mut round = Round::default();
    for (&index, outcome) in pending.iter().zip(outcomes) {
        match outcome {
            ApplyOutcome::Failed(reason) if attempt >= attempts => round.refused.push((index, reason)),
            ApplyOutcome::Failed(reason) => round.again.push((index, reason)),
            outcome => round.done.push((index, outcome)),
        }
    }
    round
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_events::Envelope;

    fn event(sequence: i64) -> Vec<u8> {
        envelope(sequence, "OrderPlaced", 2)
    }

    fn envelope(sequence: i64, event_type: &str, schema_version: u32) -> Vec<u8> {
        let state = serde_json::json!({
            "customer": {"id": "c", "segment": "standard"}, "currency": "EUR", "status": "Placed",
            "items": [{"sku": "s", "quantity": 1, "unitPrice": "1", "lineTotal": "1"}], "total": "1",
            "placedAt": "2026-12-01T00:00:00Z", "updatedAt": "2026-12-01T00:00:00Z",
        });
        let envelope = Envelope {
            event_id: uuid::Uuid::now_v7(),
            event_type: event_type.to_owned(),
            schema_version,
            order_id: uuid::Uuid::now_v7(),
            version: 1,
            sequence,
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
            payload: state,
        };
        serde_json::to_vec(&envelope).expect("an envelope serialises")
    }

    fn message<'a>(kind: &'a str, data: &'a [u8]) -> Message<'a> {
        Message { kind: Some(kind), sequence_header: None, whole_log: false, split: None, data }
    }

    #[test]
    fn given_events_and_markers_the_plan_applies_the_events_and_takes_the_newest_checkpoint() {
        let (one, two) = (event(1), event(2));
        let (through_2, through_1) = (br#"{"closedThrough": 2}"#.to_vec(), br#"{"closedThrough": 1}"#.to_vec());
        let plan = plan(
            [
                message("OrderPlaced", &one),
                message(CHECKPOINT_TYPE, &through_2),
                message("OrderPlaced", &two),
                message(CHECKPOINT_TYPE, &through_1),
            ],
            1,
        );
        assert_eq!(plan.events.iter().map(|(i, e)| (*i, e.sequence)).collect::<Vec<_>>(), [(0, 1), (2, 2)]);
        assert_eq!(plan.checkpoint, Some(2));
        assert!(!plan.whole_log, "no marker said the queue holds the whole log");
        assert!(plan.dead_letters.is_empty());
        let first = Message { whole_log: true, ..message(CHECKPOINT_TYPE, &through_1) };
        let plan = super::plan([message("OrderPlaced", &one), first, message(CHECKPOINT_TYPE, &through_2)], 1);
        assert_eq!((plan.checkpoint, plan.whole_log), (Some(2), true));
    }

    #[test]
    fn given_a_marker_sent_for_another_split_it_is_taken_for_nothing() {
        let one = event(1);
        let (through_1, through_9) =
            (br#"{"closedThrough": 1}"#.to_vec(), br#"{"closedThrough": 9, "previous": 1}"#.to_vec());
        let of = |split, data| Message { split, ..message(CHECKPOINT_TYPE, data) };
        // A queue `.0` of two that `.0` of three left a marker in: its events are applied, its marker is not.
        let plan = super::plan([message("OrderPlaced", &one), of(Some(2), &through_1), of(Some(3), &through_9)], 2);
        assert_eq!(plan.events.len(), 1);
        assert_eq!((plan.checkpoint, plan.markers.as_slice(), plan.other_split), (Some(1), &[(None, 1)][..], 1));
        assert!(plan.dead_letters.is_empty(), "acked, not dead-lettered");
        // A marker that names no split (a relay of an earlier release) counts, as before.
        let plan = super::plan([of(None, &through_9)], 2);
        assert_eq!((plan.checkpoint, plan.other_split), (Some(9), 0));
    }

    #[test]
    fn given_markers_that_each_name_the_one_before_the_chain_holds() {
        let markers = [(Some(10), 20), (Some(20), 30)];
        assert_eq!(chain_break(&markers, Some(10)), None);
        // What was handled may be beyond a marker's previous one (a redelivery, a catch-up from the feed).
        assert_eq!(chain_break(&markers, Some(25)), None);
        // The first marker a partition sees, and one from a relay of an earlier release, start the chain.
        assert_eq!(chain_break(&[(Some(50), 60)], None), None);
        assert_eq!(chain_break(&[(None, 60), (Some(60), 70)], Some(5)), None);
    }

    #[test]
    fn given_a_marker_that_names_one_never_handled_the_chain_breaks_there() {
        // The marker through 20 was lost with the queue: the one through 30 names it.
        assert_eq!(chain_break(&[(Some(20), 30)], Some(10)), Some((10, 20)));
        // Within one batch too.
        assert_eq!(chain_break(&[(Some(10), 15), (Some(20), 30)], Some(10)), Some((15, 20)));
    }

    #[test]
    fn given_a_malformed_marker_it_is_dead_lettered_without_a_gap() {
        let plan = plan([message(CHECKPOINT_TYPE, b"{}")], 1);
        assert_eq!(plan.checkpoint, None);
        assert_eq!(
            plan.dead_letters,
            [(0, DeadLetter { kind: CHECKPOINT_TYPE, reason: "malformed checkpoint".to_owned(), gap: None })]
        );
    }

    #[test]
    fn given_an_unreadable_event_of_the_log_it_is_dead_lettered_with_its_gap() {
        let newer = envelope(7, "OrderPlaced", 99);
        let plan = plan([message("OrderPlaced", &newer)], 1);
        let [(0, dead)] = plan.dead_letters.as_slice() else { panic!("one dead letter: {:?}", plan.dead_letters) };
        assert_eq!(dead.kind, "OrderPlaced");
        let gap = dead.gap.as_ref().expect("a gap");
        assert_eq!((gap.sequence, gap.order_id.is_some(), gap.customer_id.as_deref()), (7, true, Some("c")));
        assert!(plan.events.is_empty());

        // The relay's header names the position even when the body is no JSON at all.
        let garbage = Message {
            kind: Some("Nonsense"),
            sequence_header: Some(9),
            whole_log: false,
            split: None,
            data: b"not json",
        };
        let plan = super::plan([garbage], 1);
        assert_eq!(plan.dead_letters[0].1.kind, "unknown");
        assert_eq!(plan.dead_letters[0].1.gap, Some(GapOf { sequence: 9, ..GapOf::default() }));
        // A message with no position is no event of the log: no gap.
        let stray = super::plan([message("OrderPlaced", b"{}")], 1);
        assert_eq!(stray.dead_letters[0].1.gap, None);
    }

    #[test]
    fn an_event_is_refused_if_any_of_its_documents_is_and_applied_if_any_is_written() {
        use ApplyOutcome::{AlreadyStored, Applied, Failed, Stale};
        let outcomes = vec![Stale, Applied, Failed("E".to_owned()), AlreadyStored, Stale, AlreadyStored];
        assert_eq!(
            per_event([2, 2, 0, 1, 1], outcomes),
            [Applied, Failed("E".to_owned()), Applied, Stale, AlreadyStored]
        );
    }

    #[test]
    fn a_refused_view_is_written_again_until_the_last_round_then_given_up() {
        let outcomes = || vec![ApplyOutcome::Applied, ApplyOutcome::Failed("E1".to_owned()), ApplyOutcome::Stale];
        let first = settle(&[4, 5, 6], outcomes(), 1, 3);
        assert_eq!(first.done, [(4, ApplyOutcome::Applied), (6, ApplyOutcome::Stale)]);
        assert_eq!(first.again, [(5, "E1".to_owned())]);
        assert!(first.refused.is_empty());
        let last = settle(&[4, 5, 6], outcomes(), 3, 3);
        assert!(last.again.is_empty());
        assert_eq!(last.refused, [(5, "E1".to_owned())]);
    }
}
