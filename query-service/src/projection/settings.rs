//! How a projection consumes: its queue's type and name, the partition it consumes, and what readiness and the
//! status endpoint see of it ([`Consuming`]).

use shared_events::Partition;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Projection, Slowdown};
use crate::metrics::ProjectorMetrics;

/// The type of the projector's durable queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// Replicated by Raft across the nodes of a cluster; survives the loss of a minority of them.
    #[default]
    Quorum,
    /// Kept on one node.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

/// What readiness and the status endpoint see of the projector: whether it consumes what it should, and which
/// partitions of a split queue it consumes.
#[derive(Debug, Clone, Default)]
pub struct Consuming {
    ready: Arc<AtomicBool>,
    partitions: Arc<Mutex<BTreeSet<u16>>>,
}

impl Consuming {
    /// True while the consumer is connected and consuming (for a split queue: consuming every partition this
    /// replica owns).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The partitions of a split queue this replica consumes now.
    pub fn partitions(&self) -> Vec<u16> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    pub(super) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The handle of one partition's consumer: its own readiness, the replica's list of partitions.
    pub(super) fn for_partition(&self) -> Self {
        Self { ready: Arc::default(), partitions: self.partitions.clone() }
    }

    pub(super) fn started(&self, partition: Partition) {
        self.set_ready(true);
        if partition.is_split() {
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).insert(partition.index);
        }
    }

    pub(super) fn stopped(&self, partition: Partition) {
        self.set_ready(false);
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).remove(&partition.index);
    }
}

/// Where a projection consumes from, and what it makes of the events.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub projection: &'static dyn Projection,
    pub amqp_url: String,
    /// `AMQP_EXCHANGE`: the stem of every projection's exchange ([`ConsumerSettings::exchange`]).
    pub exchange: String,
    /// `AMQP_QUEUE`: the order views' queue, after which every projection's is named ([`projection_queue`]).
    pub stem: String,
    /// The projection's queue: the name of the only one, or the stem of the partitions' (`<queue>.<index>`).
    pub queue: String,
    /// The partition consumed, of how many the queue is split into.
    pub partition: Partition,
    pub queue_type: QueueType,
    pub prefetch: u16,
    pub metrics: ProjectorMetrics,
    /// What readiness and the status endpoint see of this consumer.
    pub consuming: Consuming,
    /// A delay before each batch, for demos.
    pub slowdown: Slowdown,
    /// The event feed, to catch up from after a queue was lost while it held events; `None` without a token for it.
    pub feed: Option<crate::feed::Feed>,
    /// Where the consumer reports its progress and what waits for it.
    pub watchdog: service_runtime::watchdog::Watchdog,
    /// The newest checkpoint marker each partition has handled in this process.
    pub handled: MarkersHandled,
}

/// The newest checkpoint marker (its `closed_through`) each partition's consumer has handled in this process, kept
/// across its reconnects: a queue emptied while the consumer reconnects is found out by the next marker even before
/// a position of the partition was stored (decision 0023).
#[derive(Debug, Clone, Default)]
pub struct MarkersHandled(Arc<Mutex<std::collections::HashMap<Partition, i64>>>);

impl MarkersHandled {
    pub fn get(&self, partition: Partition) -> Option<i64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&partition).copied()
    }

    /// Records that `partition` handled every marker through `through` (never moves back).
    pub fn handled(&self, partition: Partition, through: i64) {
        let mut handled = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = handled.entry(partition).or_insert(through);
        *newest = (*newest).max(through);
    }
}

/// The queue of `projection` under `AMQP_QUEUE` = `stem`: `stem` itself for the order views, `<stem>.<projection>`
/// for the others (the stem of its partitions' when split).
pub fn projection_queue(stem: &str, projection: &dyn Projection) -> String {
    if projection.announces_views() {
        stem.to_owned()
    } else {
        format!("{stem}.{}", projection.name())
    }
}

impl ConsumerSettings {
    /// Where this deployment's notices go (decision 0024).
    pub fn notices(&self) -> crate::read::notices::NoticeRoute {
        crate::read::notices::NoticeRoute::new(&self.exchange, &self.stem)
    }

    /// The one dead-letter queue of every partition.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.queue)
    }

    /// The queue of `partition`: the projector's queue itself when it is not split.
    pub fn queue_of(&self, partition: Partition) -> String {
        if partition.is_split() {
            format!("{}.{}", self.queue, partition.index)
        } else {
            self.queue.clone()
        }
    }

    /// The queue this consumer consumes.
    pub fn partition_queue(&self) -> String {
        self.queue_of(self.partition)
    }

    /// The exchange the relay publishes this projection's copy of every event to.
    pub fn exchange(&self) -> String {
        shared_events::read_model::exchange_of(&self.exchange, self.projection.name())
    }

    /// The same settings for another projection.
    pub fn for_projection(&self, projection: &'static dyn Projection) -> Self {
        Self { projection, queue: projection_queue(&self.stem, projection), ..self.clone() }
    }

    /// The same settings for another partition of the same split.
    pub fn for_partition(&self, partition: Partition) -> Self {
        Self { partition, consuming: self.consuming.for_partition(), ..self.clone() }
    }
}
