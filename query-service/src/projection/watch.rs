//! The projections' stages of the progress watchdog ([`service_runtime::watchdog`]): one per partition of each
//! projection. The consumer of a partition says when events wait in its queue (sampled with the queue depth), when a
//! batch is in hand, and when one is done (progress). Every [`LOOK_EVERY`], [`watch`] adds what no single consumer
//! can see — a partition of a projection some live replica runs that no live replica consumes (from the heartbeats)
//! — and a partition whose position stays behind the newest any read model has announced (the relay's checkpoints
//! reach every partition of every read model: one they stopped reaching has a consumer that hears nothing, whatever
//! the broker did to its queue) — and forgets the stages this replica no longer has anything to say about (those
//! it has not consumed for [`KEPT_BETWEEN_SESSIONS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::settings::Consuming;
use crate::read::projectors::Projectors;
use crate::read::Boards;
use service_runtime::watchdog::{Cause, StageId, Watchdog};
use shared_events::Partition;

/// How often the partitions nobody consumes are looked for.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long a partition this replica stopped consuming keeps its stage, with the causes that hold for it: a
/// consumer that opens again (after a failure, or to get what its broker no longer gives it) does not start a
/// stall's count over.
const KEPT_BETWEEN_SESSIONS: Duration = Duration::from_secs(10);

/// Events wait in the partition's queue (its depth, as last sampled by its consumer).
pub(super) const QUEUED: Cause = Cause { says: "events wait in its queue", answered_by_progress: true };
/// The consumer holds a batch it has not finished.
pub(super) const IN_HAND: Cause = Cause { says: "a batch waits to be written", answered_by_progress: true };
/// No live replica consumes the partition, although one runs its projection.
const UNCONSUMED: Cause = Cause { says: "no live replica consumes it", answered_by_progress: false };
/// The partition's position is behind the newest one any read model has announced: the relay's checkpoints reached
/// the others and not it (a consumer that hears nothing from its queue any more, whatever the broker did).
const BEHIND: Cause = Cause { says: "its position is behind the other read models'", answered_by_progress: true };

/// Reports the partitions nobody consumes, and keeps the watchdog to this replica's stages, until `shutdown`.
/// `consuming`: the projections this replica runs, with what each consumes.
pub async fn watch(
    projectors: Projectors,
    boards: Boards,
    consuming: Vec<(&'static str, Consuming)>,
    partitions: u16,
    watchdog: Watchdog,
    shutdown: CancellationToken,
) {
    let all: Vec<&str> = super::ALL.iter().map(|projection| projection.name()).collect();
    let mut unconsumed: BTreeSet<StageId> = BTreeSet::new();
    let mut consumed_at: BTreeMap<StageId, Instant> = BTreeMap::new();
    loop {
        let now: BTreeSet<StageId> = projectors
            .unconsumed(Instant::now(), &all)
            .into_iter()
            .map(|(projection, index, _)| StageId::projection(&projection, index))
            .collect();
        for gone in unconsumed.difference(&now) {
            watchdog.holds(gone, UNCONSUMED, false);
        }
        for stage in &now {
            watchdog.holds(stage, UNCONSUMED, true);
        }
        unconsumed = now;
        let looked_at = Instant::now();
        for (name, of) in &consuming {
            for index in consumed(of, partitions) {
                consumed_at.insert(StageId::projection(name, index), looked_at);
            }
        }
        consumed_at.retain(|_, at| looked_at.duration_since(*at) < KEPT_BETWEEN_SESSIONS);
        watchdog.retain(|stage| {
            stage.stage != "projection" || consumed_at.contains_key(stage) || unconsumed.contains(stage)
        });
        let newest = boards.all().map(|(_, board)| board.newest()).max().unwrap_or(0);
        for (name, of) in &consuming {
            let Some(board) = boards.named(name) else { continue };
            for index in consumed(of, partitions) {
                let behind = board.partition_position(Partition { index, count: partitions }) < newest;
                watchdog.holds(&StageId::projection(name, index), BEHIND, behind);
            }
        }
        // Brings the metrics up to date.
        watchdog.stalled();
        if service_runtime::sleep_or_shutdown(LOOK_EVERY, &shutdown).await {
            return;
        }
    }
}

/// The partitions `consuming` consumes now, of a queue split into `count` (the whole queue is partition 0).
pub(super) fn consumed(consuming: &Consuming, count: u16) -> Vec<u16> {
    if count > 1 {
        consuming.partitions()
    } else if consuming.is_ready() {
        vec![0]
    } else {
        Vec::new()
    }
}
