//! The relay's checkpoint marker: "every event up to this sequence has been published before me".
//!
//! Sequences are allocated when a command's transaction appends to the outbox, but transactions commit in any
//! order, and a rolled-back one leaves a hole. So "the highest sequence seen" says nothing about the ones below it.
//! The relay learns when every sequence up to `closed_through` is settled (committed or gone for good), publishes
//! those events, and then this marker on the same channel. A consumer that has handled every message before the
//! marker has therefore applied every event up to `closed_through`: that is the position `minPosition` reads wait
//! for.

use serde::{Deserialize, Serialize};

/// AMQP `type` property (and routing key) of a checkpoint marker; event types never take this name.
pub const CHECKPOINT_TYPE: &str = "Checkpoint";

/// AMQP header (boolean, `true`) of the first checkpoint a read model is sent when its queue has been sent every
/// event of the log: a store that handles it holds the log from its start. Absent everywhere else (decision 0019).
pub const WHOLE_LOG_HEADER: &str = "whole-log";

/// AMQP header (short unsigned integer) of every checkpoint marker: the number of partitions the relay that sent it
/// routes events to. A marker closes the log for the queues of that split only: a queue a changed split took over
/// by name (`.0` of three, then of two) may still hold a marker of the old split, which says nothing of the events
/// the new partition has in the old split's other queues. Absent from a relay of an earlier release.
pub const SPLIT_HEADER: &str = "partitions";

/// Body of a checkpoint marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// Every event with a `sequence` up to this one has been published before this marker.
    pub closed_through: i64,
    /// The `closed_through` of the marker the relay last had routed to this read model before this one: the markers
    /// of a read model form a chain, so that a queue that lost messages (deleted and declared again, purged) is
    /// found out by the first marker after the loss — its `previous` is beyond what the partition has handled
    /// (decision 0023). Absent from the first marker, and from a relay of an earlier release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_camel_case_json() {
        let json = serde_json::to_string(&Checkpoint { closed_through: 42, previous: None }).expect("serialises");
        assert_eq!(json, r#"{"closedThrough":42}"#);
        let parsed = serde_json::from_str::<Checkpoint>(&json).expect("parses");
        assert_eq!(parsed, Checkpoint { closed_through: 42, previous: None });
        assert!(serde_json::from_str::<Checkpoint>(r#"{"closedThrough":"42"}"#).is_err());
        let chained = Checkpoint { closed_through: 42, previous: Some(40) };
        let json = serde_json::to_string(&chained).expect("serialises");
        assert_eq!(json, r#"{"closedThrough":42,"previous":40}"#);
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).expect("parses"), chained);
    }
}
