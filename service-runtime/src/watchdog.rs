//! The progress watchdog: every stage that moves events — the relay, each partition of each projection, a rebuild or
//! rollback catching a generation up from the log — says when it makes progress and why work waits for it; a stage that
//! has had work waiting for [`Watchdog::stall_after`] (`STALL_AFTER_S`, default 30 s) without progress is **stalled**.
//! Readiness names stalled stages (`degraded`) and the metrics show them (`stage_stalled`,
//! `stage_last_progress_seconds`), so that a stuck stage never hides behind a process that says ready. A read model far
//! behind but moving is not stalled: each step it takes is progress.
//!
//! Why work waits is a set of causes, each held since some instant (`queued`, `in hand`, `backlog`, …). A cause that
//! progress answers (events waiting) counts from the later of its start and the last progress; one that progress
//! elsewhere does not answer (a relay whose terms keep failing, a partition no replica consumes) counts from its
//! start alone. Whether a stage is stalled is decided without I/O ([`stalled_for`]).

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// `STALL_AFTER_S` when it is not set.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

/// The watchdog's setting, the same in both services.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WatchdogSettings {
    /// Seconds a stage that moves events may have work waiting without progress before readiness reports it
    /// stalled (`degraded`, naming it).
    #[arg(long = "stall-after-s", env = "STALL_AFTER_S", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stall_after_s: u64,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        Self { stall_after_s: DEFAULT_STALL_AFTER.as_secs() }
    }
}

impl WatchdogSettings {
    /// The watchdog these settings make.
    pub fn watchdog(&self) -> Watchdog {
        Watchdog::new(Duration::from_secs(self.stall_after_s))
    }
}

/// One stage, by the labels its metrics carry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StageId {
    /// `relay`, `projection` or `rebuild`.
    pub stage: &'static str,
    /// The projection, for a projection's stage or a rebuild; empty for the relay.
    pub projection: String,
    /// The partition, for a projection's stage; empty for the relay.
    pub partition: String,
}

impl StageId {
    /// The relay of this process's database.
    pub fn relay() -> Self {
        Self { stage: "relay", projection: String::new(), partition: String::new() }
    }

    /// Partition `partition` of the projection `projection`.
    pub fn projection(projection: &str, partition: u16) -> Self {
        Self { stage: "projection", projection: projection.to_owned(), partition: partition.to_string() }
    }

    /// A rebuild or a rollback of the read model of `projection` catching a generation up from the log.
    pub fn rebuild(projection: &str) -> Self {
        Self { stage: "rebuild", projection: projection.to_owned(), partition: String::new() }
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stage {
            "projection" => write!(f, "projection {} partition {}", self.projection, self.partition),
            "rebuild" => write!(f, "rebuild of {}", self.projection),
            stage => write!(f, "{stage}"),
        }
    }
}

/// Why work waits for a stage, and whether progress answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cause {
    /// How readiness says it (`events wait in its queue`).
    pub says: &'static str,
    /// Whether progress of the stage answers it (events waiting do; a failing relay does not).
    pub answered_by_progress: bool,
}

/// What one stage reported.
#[derive(Debug, Clone, Default)]
struct Stage {
    last_progress: Option<Instant>,
    causes: BTreeMap<Cause, Instant>,
}

/// How long `stage` has been stalled at `now` under `stall_after` (`started`: when the watchdog began, standing in
/// for a stage that never made progress), and why; `None` when it is not.
fn stalled_for(stage: &Stage, started: Instant, now: Instant, stall_after: Duration) -> Option<(Duration, Cause)> {
    stage
        .causes
        .iter()
        .map(|(cause, since)| {
            let from =
                if cause.answered_by_progress { (*since).max(stage.last_progress.unwrap_or(started)) } else { *since };
            (now.saturating_duration_since(from), *cause)
        })
        .filter(|(held, _)| *held >= stall_after)
        .max_by_key(|(held, _)| *held)
}

/// A stalled stage, as readiness and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub stage: StageId,
    pub reason: String,
}

/// The stages of one process.
#[derive(Debug, Clone)]
pub struct Watchdog {
    stall_after: Duration,
    started: Instant,
    stages: Arc<Mutex<BTreeMap<StageId, Stage>>>,
    metrics: Option<WatchdogMetrics>,
}

/// `stage_stalled` and `stage_last_progress_seconds`.
#[derive(Debug, Clone)]
struct WatchdogMetrics {
    stalled: IntGaugeVec,
    last_progress: GaugeVec,
}

const LABELS: [&str; 3] = ["stage", "projection", "partition"];

impl Default for Watchdog {
    fn default() -> Self {
        Self::new(DEFAULT_STALL_AFTER)
    }
}

impl Watchdog {
    /// A watchdog that takes a stage for stalled after `stall_after`.
    pub fn new(stall_after: Duration) -> Self {
        Self { stall_after, started: Instant::now(), stages: Arc::default(), metrics: None }
    }

    /// The same watchdog, its stages shown in `registry`.
    pub fn registered(mut self, registry: &Registry) -> prometheus::Result<Self> {
        let stalled = IntGaugeVec::new(
            Opts::new("stage_stalled", "1 while a stage has had work waiting without progress for STALL_AFTER_S."),
            &LABELS,
        )?;
        let last_progress = GaugeVec::new(
            Opts::new("stage_last_progress_seconds", "Seconds since the stage last made progress."),
            &LABELS,
        )?;
        registry.register(Box::new(stalled.clone()))?;
        registry.register(Box::new(last_progress.clone()))?;
        self.metrics = Some(WatchdogMetrics { stalled, last_progress });
        Ok(self)
    }

    /// How long a stage may have work waiting without progress.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<StageId, Stage>) -> T) -> T {
        f(&mut self.stages.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `stage` made progress now.
    pub fn progressed(&self, stage: &StageId) {
        self.with(|stages| stages.entry(stage.clone()).or_default().last_progress = Some(Instant::now()));
    }

    /// The stages watched now.
    pub fn stages(&self) -> Vec<StageId> {
        self.with(|stages| stages.keys().cloned().collect())
    }

    /// Progress of `stage` made by another process (a position another replica announced), if this one watches
    /// `stage`: a standby that sees work wait does not report a stall while the active consumer moves it.
    pub fn progressed_elsewhere(&self, stage: &StageId) {
        self.with(|stages| {
            if let Some(known) = stages.get_mut(stage) {
                known.last_progress = Some(Instant::now());
            }
        });
    }

    /// Whether `cause` holds for `stage` now (kept since it began to hold; dropped when it no longer does).
    pub fn holds(&self, stage: &StageId, cause: Cause, holds: bool) {
        self.with(|stages| {
            let causes = &mut stages.entry(stage.clone()).or_default().causes;
            if holds {
                causes.entry(cause).or_insert_with(Instant::now);
            } else {
                causes.remove(&cause);
            }
        });
    }

    /// Forgets every stage `keep` says no to (a projection no live replica runs any more).
    pub fn retain(&self, keep: impl Fn(&StageId) -> bool) {
        let gone: Vec<StageId> = self.with(|stages| {
            let gone = stages.keys().filter(|id| !keep(id)).cloned().collect();
            stages.retain(|id, _| keep(id));
            gone
        });
        if let Some(metrics) = &self.metrics {
            for id in &gone {
                let labels = [id.stage, id.projection.as_str(), id.partition.as_str()];
                let _ = metrics.stalled.remove_label_values(&labels);
                let _ = metrics.last_progress.remove_label_values(&labels);
            }
        }
    }

    /// The stalled stages now, and the metrics brought up to date.
    pub fn stalled(&self) -> Vec<Stalled> {
        let now = Instant::now();
        let stages = self.with(|stages| stages.clone());
        let mut stalled = Vec::new();
        for (id, stage) in &stages {
            let found = stalled_for(stage, self.started, now, self.stall_after);
            if let Some(metrics) = &self.metrics {
                let labels = [id.stage, id.projection.as_str(), id.partition.as_str()];
                metrics.stalled.with_label_values(&labels).set(i64::from(found.is_some()));
                let since = stage.last_progress.unwrap_or(self.started);
                metrics
                    .last_progress
                    .with_label_values(&labels)
                    .set(now.saturating_duration_since(since).as_secs_f64());
            }
            if let Some((held, cause)) = found {
                let reason = format!("{id}: {} for {} s without progress", cause.says, held.as_secs());
                stalled.push(Stalled { stage: id.clone(), reason });
            }
        }
        stalled
    }

    /// Why `stage` is stalled now, if it is (without touching the metrics).
    pub fn stalled_by(&self, stage: &StageId) -> Option<Cause> {
        let now = Instant::now();
        self.with(|stages| {
            stages.get(stage).and_then(|found| stalled_for(found, self.started, now, self.stall_after)).map(|(_, c)| c)
        })
    }

    /// Readiness's word on the stalled stages: `None` when none is.
    pub fn reason(&self) -> Option<String> {
        let stalled = self.stalled();
        (!stalled.is_empty()).then(|| stalled.into_iter().map(|s| s.reason).collect::<Vec<_>>().join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUED: Cause = Cause { says: "events wait in its queue", answered_by_progress: true };
    const FAILING: Cause = Cause { says: "its terms keep failing", answered_by_progress: false };

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn each_kind_of_stage_is_named_for_what_it_is() {
        assert_eq!(StageId::relay().to_string(), "relay");
        assert_eq!(StageId::projection("orders", 1).to_string(), "projection orders partition 1");
        assert_eq!(StageId::rebuild("customer-summary").to_string(), "rebuild of customer-summary");
    }

    #[test]
    fn a_stage_with_work_waiting_and_no_progress_for_the_limit_is_stalled() {
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        let stage = Stage { last_progress: None, causes: BTreeMap::from([(QUEUED, at(start, 10))]) };
        assert_eq!(stalled_for(&stage, start, at(start, 39), limit), None, "29 s of waiting");
        assert_eq!(stalled_for(&stage, start, at(start, 40), limit), Some((limit, QUEUED)));
    }

    #[test]
    fn a_stage_that_moves_is_not_stalled_however_much_waits() {
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        // Waiting since second 0, progress at second 50: a long backlog being worked through.
        let stage = Stage { last_progress: Some(at(start, 50)), causes: BTreeMap::from([(QUEUED, start)]) };
        assert_eq!(stalled_for(&stage, start, at(start, 79), limit), None);
        assert!(stalled_for(&stage, start, at(start, 80), limit).is_some(), "30 s since the last step");
        let idle = Stage { last_progress: None, causes: BTreeMap::new() };
        assert_eq!(stalled_for(&idle, start, at(start, 1_000), limit), None, "nothing waits: never stalled");
    }

    #[test]
    fn a_cause_progress_does_not_answer_counts_from_its_start_alone() {
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        let stage = Stage { last_progress: Some(at(start, 35)), causes: BTreeMap::from([(FAILING, at(start, 5))]) };
        assert_eq!(stalled_for(&stage, start, at(start, 36), limit).map(|(_, cause)| cause), Some(FAILING));
    }

    #[tokio::test(start_paused = true)]
    async fn causes_come_and_go_and_progress_resets_the_clock() {
        let watchdog = Watchdog::new(Duration::from_secs(30));
        let stage = StageId::projection("orders", 1);
        watchdog.holds(&stage, QUEUED, true);
        tokio::time::advance(Duration::from_secs(31)).await;
        let stalled = watchdog.stalled();
        assert_eq!(stalled.len(), 1);
        assert!(stalled[0].reason.contains("projection orders partition 1: events wait in its queue"), "{stalled:?}");
        watchdog.progressed(&stage);
        assert!(watchdog.stalled().is_empty(), "progress answers waiting events");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(watchdog.stalled().len(), 1);
        watchdog.holds(&stage, QUEUED, false);
        assert_eq!(watchdog.reason(), None, "nothing waits any more");
    }
}
