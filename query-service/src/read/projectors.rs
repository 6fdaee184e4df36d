//! The projecting replicas this replica has heard from lately ([`Projectors`]), fed by their heartbeats on the notice
//! exchange: which projections each runs, of which split, and which partitions it consumes now. From them,
//! `projection::partitions` works out who should consume which partition of a projection (the replicas that run
//! that projection share its partitions), and the watchdog finds a partition no live replica consumes.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// How often a projecting replica says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A projecting replica not heard from for this long is taken for gone, and its partitions for free.
pub const GONE_AFTER: Duration = Duration::from_secs(3);

/// What a projecting replica says of itself every [`HEARTBEAT_EVERY`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// How many partitions its queues are split into.
    pub partitions: u16,
    /// The projections it runs; absent from a replica of an earlier release, which ran every projection it shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projections: Option<Vec<String>>,
    /// The partitions of each projection it consumes now; absent from a replica of an earlier release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consuming: Option<BTreeMap<String, Vec<u16>>>,
}

impl Heartbeat {
    /// Whether the replica runs `projection`.
    fn runs(&self, projection: &str) -> bool {
        self.projections.as_ref().is_none_or(|projections| projections.iter().any(|p| p == projection))
    }
}

/// The projecting replicas heard from lately, with what each said last. Fed by the notice listener; read by
/// `projection::partitions` and by readiness.
#[derive(Debug, Clone)]
pub struct Projectors {
    heard: Arc<Mutex<HashMap<Uuid, (Heartbeat, Instant)>>>,
    changed: watch::Sender<()>,
}

impl Default for Projectors {
    fn default() -> Self {
        Self { heard: Arc::default(), changed: watch::channel(()).0 }
    }
}

impl Projectors {
    /// Records a heartbeat of `replica`.
    pub fn heard(&self, replica: Uuid, heartbeat: Heartbeat, now: Instant) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        // Replicas gone long ago are forgotten here too: a replica that does not project never asks who is alive.
        heard.retain(|_, (_, at)| now.saturating_duration_since(*at) < GONE_AFTER * 10);
        let shape = |h: &Heartbeat| (h.partitions, h.projections.clone());
        let changed = heard.get(&replica).is_none_or(|(before, _)| shape(before) != shape(&heartbeat));
        heard.insert(replica, (heartbeat, now));
        drop(heard);
        if changed {
            self.changed.send_replace(());
        }
    }

    /// The replicas running `projection` split into `partitions` heard from within [`GONE_AFTER`] of `now`, and
    /// `me`, sorted: the replicas that share that projection's partitions.
    pub fn alive(&self, me: Uuid, projection: &str, partitions: u16, now: Instant) -> Vec<Uuid> {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        let before = heard.len();
        heard.retain(|_, (_, at)| now.saturating_duration_since(*at) < GONE_AFTER);
        if heard.len() != before {
            self.changed.send_replace(());
        }
        let mut alive: Vec<Uuid> = heard
            .iter()
            .filter(|(_, (heartbeat, _))| heartbeat.partitions == partitions && heartbeat.runs(projection))
            .map(|(replica, _)| *replica)
            .collect();
        if !alive.contains(&me) {
            alive.push(me);
        }
        alive.sort_unstable();
        alive
    }

    /// The partitions (projection, index, of how many) of every projection that a replica heard from within
    /// [`GONE_AFTER`] of `now` runs, which none of them says it consumes; and every partition of a projection of
    /// `all` that none of them runs (its queue fills, and nobody would say so). A projection that a replica of an
    /// earlier release (which does not say what it runs and consumes) may run is left out; so is everything while no
    /// projecting replica is heard from.
    pub fn unconsumed(&self, now: Instant, all: &[&str]) -> Vec<(String, u16, u16)> {
        let heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        let alive: Vec<&Heartbeat> = heard
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < GONE_AFTER)
            .map(|(heartbeat, _)| heartbeat)
            .collect();
        // Per projection and split: whether every replica running it says what it consumes, and what they consume.
        let mut runs: BTreeMap<(String, u16), (bool, BTreeSet<u16>)> = BTreeMap::new();
        for heartbeat in &alive {
            let Some(projections) = &heartbeat.projections else { continue };
            for projection in projections {
                let entry = runs.entry((projection.clone(), heartbeat.partitions)).or_insert((true, BTreeSet::new()));
                match heartbeat.consuming.as_ref().map(|consuming| consuming.get(projection)) {
                    Some(consumed) => entry.1.extend(consumed.into_iter().flatten()),
                    None => entry.0 = false,
                }
            }
        }
        let splits: BTreeSet<u16> = alive.iter().map(|heartbeat| heartbeat.partitions).collect();
        for count in splits {
            for name in all {
                runs.entry(((*name).to_owned(), count)).or_insert((true, BTreeSet::new()));
            }
        }
        for heartbeat in alive.iter().filter(|heartbeat| heartbeat.projections.is_none()) {
            for ((_, count), (known, _)) in runs.iter_mut() {
                if *count == heartbeat.partitions {
                    *known = false;
                }
            }
        }
        runs.into_iter()
            .filter(|(_, (known, _))| *known)
            .flat_map(|((projection, count), (_, consumed))| {
                (0..count)
                    .filter(move |index| !consumed.contains(index))
                    .map(move |index| (projection.clone(), index, count))
            })
            .collect()
    }

    /// Resolves when a replica was first heard from, changed what it runs, or was found gone, after this call (or
    /// at once, if since the last call on this receiver).
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(projections: &[&str], partitions: u16, consuming: &[(&str, &[u16])]) -> Heartbeat {
        Heartbeat {
            partitions,
            projections: Some(projections.iter().map(|p| (*p).to_owned()).collect()),
            consuming: Some(consuming.iter().map(|(p, c)| ((*p).to_owned(), c.to_vec())).collect()),
        }
    }

    #[test]
    fn projectors_not_heard_from_lately_or_of_another_split_are_not_counted() {
        let projectors = Projectors::default();
        let (me, other, gone, elsewhere) =
            (Uuid::from_u128(2), Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(4));
        let start = Instant::now();
        let all = Heartbeat { partitions: 6, ..Heartbeat::default() };
        projectors.heard(gone, all.clone(), start);
        projectors.heard(other, all.clone(), start + GONE_AFTER);
        projectors.heard(elsewhere, Heartbeat { partitions: 4, ..Heartbeat::default() }, start + GONE_AFTER);
        let mut changes = projectors.changes();
        let alive = projectors.alive(me, "orders", 6, start + GONE_AFTER);
        assert_eq!(alive, [other, me], "sorted, the silent one gone, me in");
        assert!(changes.has_changed().expect("open"), "losing one is a change");
        changes.mark_unchanged();
        projectors.heard(other, all, start + GONE_AFTER * 2);
        assert!(!changes.has_changed().expect("open"), "a heartbeat of a known replica is none");
    }

    #[test]
    fn the_partitions_of_a_projection_are_shared_among_the_replicas_that_run_it_only() {
        let projectors = Projectors::default();
        let (views, aggregates) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let now = Instant::now();
        projectors.heard(views, running(&["orders"], 2, &[]), now);
        projectors.heard(aggregates, running(&["customer-summary", "daily-sales"], 2, &[]), now);
        assert_eq!(projectors.alive(views, "orders", 2, now), [views], "alone on the order views");
        assert_eq!(projectors.alive(aggregates, "daily-sales", 2, now), [aggregates]);
        let mut changes = projectors.changes();
        changes.mark_unchanged();
        projectors.heard(views, running(&["orders", "daily-sales"], 2, &[]), now);
        assert!(changes.has_changed().expect("open"), "running another projection is a change");
        assert_eq!(projectors.alive(aggregates, "daily-sales", 2, now), [views, aggregates]);
    }

    #[test]
    fn a_partition_of_a_projection_some_replica_runs_and_none_consumes_is_found() {
        let projectors = Projectors::default();
        let now = Instant::now();
        projectors.heard(Uuid::from_u128(1), running(&["orders"], 2, &[("orders", &[0])]), now);
        projectors.heard(
            Uuid::from_u128(2),
            running(&["orders", "daily-sales"], 2, &[("orders", &[]), ("daily-sales", &[0, 1])]),
            now,
        );
        assert_eq!(projectors.unconsumed(now, &["orders"]), [("orders".to_owned(), 1, 2)]);
        projectors.heard(Uuid::from_u128(1), running(&["orders"], 2, &[("orders", &[0, 1])]), now);
        assert!(projectors.unconsumed(now, &["orders"]).is_empty());
        assert_eq!(projectors.unconsumed(now + GONE_AFTER, &["orders"]).len(), 0, "nobody alive: nothing known to run");
        projectors.heard(Uuid::from_u128(3), Heartbeat { partitions: 2, ..Heartbeat::default() }, now);
        projectors.heard(Uuid::from_u128(1), running(&["orders"], 2, &[("orders", &[0])]), now);
        assert!(projectors.unconsumed(now, &["orders"]).is_empty(), "a replica of an earlier release may consume it");
    }

    #[test]
    fn every_partition_of_a_projection_no_live_replica_runs_is_found() {
        let projectors = Projectors::default();
        let now = Instant::now();
        projectors.heard(Uuid::from_u128(1), running(&["orders"], 2, &[("orders", &[0, 1])]), now);
        let all = ["orders", "daily-sales"];
        let daily = |index| ("daily-sales".to_owned(), index, 2);
        assert_eq!(projectors.unconsumed(now, &all), [daily(0), daily(1)]);
        projectors.heard(Uuid::from_u128(2), running(&["daily-sales"], 2, &[("daily-sales", &[0, 1])]), now);
        assert!(projectors.unconsumed(now, &all).is_empty());
        assert!(Projectors::default().unconsumed(now, &all).is_empty(), "no projecting replica heard: nothing known");
    }
}
