//! The query side's Prometheus metrics (`GET /metrics`): per projection (the `projection` label), events applied /
//! skipped as duplicates / dead-lettered by type, freshness lag (view written − event `occurredAt`) and the current
//! lag, queue depth and position; waiting reads and how their waits ended, the read model's checks against the
//! log, and HTTP requests.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use service_runtime::metrics::{registered, HttpMetrics, LATENCY_BUCKETS};
use std::time::Duration;

/// Every metric of one query-service, in its own registry.
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    events: IntCounterVec,
    freshness: HistogramVec,
    current_lag: GaugeVec,
    last_applied_sequence: IntGaugeVec,
    queue_depth: IntGaugeVec,
    pub waiting_reads: IntGauge,
    position: IntGaugeVec,
    /// Commands sent to MongoDB, by name (`find`, `update`, …).
    pub mongodb_commands: IntCounterVec,
    batch_views: HistogramVec,
    waits: IntCounterVec,
    wait_duration: Histogram,
    /// Views the sampler compared with the log.
    pub read_model_checked: IntCounter,
    /// Views found to differ from the log, by kind (`missing`, `behind`, `diverged`, `ahead`).
    pub read_model_divergent: IntCounterVec,
}

/// The label that names a projection (its read model's name).
const PROJECTION: &str = "projection";

/// The metrics of one projection, labelled with its name.
#[derive(Debug, Clone)]
pub struct ProjectorMetrics {
    projection: &'static str,
    events: IntCounterVec,
    freshness: Histogram,
    pub current_lag: Gauge,
    pub last_applied_sequence: IntGauge,
    pub queue_depth: IntGauge,
    pub position: IntGauge,
    /// Documents in each write round (one `update` command per live generation).
    pub batch_views: Histogram,
}

impl ProjectorMetrics {
    /// Counts one event the projection received (`event_type` as on the wire, `unknown` if unreadable).
    pub fn event(&self, event_type: &str, outcome: EventOutcome) {
        let outcome = match outcome {
            EventOutcome::Applied => "applied",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::DeadLettered => "dead_lettered",
        };
        self.events.with_label_values(&[self.projection, event_type, outcome]).inc();
    }

    /// Records an applied event's freshness lag.
    pub fn applied(&self, sequence: i64, lag: Duration) {
        self.freshness.observe(lag.as_secs_f64());
        self.current_lag.set(lag.as_secs_f64());
        self.last_applied_sequence.set(sequence);
    }
}

/// The kinds of difference between a view and the log, as the `kind` label spells them.
pub const DIVERGENCE_KINDS: [&str; 4] = ["missing", "behind", "diverged", "ahead"];

/// What happened to an event the projector received.
#[derive(Debug, Clone, Copy)]
pub enum EventOutcome {
    Applied,
    Duplicate,
    DeadLettered,
}

impl QueryMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let freshness_buckets =
            vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
        Ok(Self {
            http: HttpMetrics::register(&registry)?,
            mongodb_commands: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("mongodb_commands_total", "Commands sent to MongoDB, by command name."),
                    &["command"],
                )?,
            )?,
            batch_views: registered(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "projector_batch_views",
                        "Documents a projection writes per round (one update command per live generation).",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                    &[PROJECTION],
                )?,
            )?,
            events: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("projector_events_total", "Events received by each projection, by type and outcome."),
                    &[PROJECTION, "event_type", "outcome"],
                )?,
            )?,
            freshness: registered(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "projector_freshness_lag_seconds",
                        "From the event's occurredAt (the command's commit) to its projection's write.",
                    )
                    .buckets(freshness_buckets),
                    &[PROJECTION],
                )?,
            )?,
            current_lag: registered(
                &registry,
                GaugeVec::new(
                    Opts::new("projector_current_lag_seconds", "Freshness lag of the last event applied."),
                    &[PROJECTION],
                )?,
            )?,
            last_applied_sequence: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new("projector_last_applied_sequence", "Global sequence of the last event applied."),
                    &[PROJECTION],
                )?,
            )?,
            queue_depth: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new("projector_queue_depth", "Messages ready in the projection's queue (sampled every 2 s)."),
                    &[PROJECTION],
                )?,
            )?,
            waiting_reads: registered(
                &registry,
                IntGauge::new("reads_waiting", "Reads waiting for a version or position right now.")?,
            )?,
            position: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new("read_model_position", "Every event up to this sequence has been applied."),
                    &[PROJECTION],
                )?,
            )?,
            waits: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("read_waits_total", "Reads that waited for minVersion or minPosition, by outcome."),
                    &["outcome"],
                )?,
            )?,
            wait_duration: registered(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("read_wait_duration_seconds", "How long reads waited.")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )?,
            )?,
            read_model_checked: registered(
                &registry,
                IntCounter::new(
                    "read_model_checked_total",
                    "Views the sampler compared with their newest logged event.",
                )?,
            )?,
            read_model_divergent: registered(&registry, {
                let divergent = IntCounterVec::new(
                    Opts::new("read_model_divergent_total", "Views found to differ from the log, by kind."),
                    &["kind"],
                )?;
                for kind in DIVERGENCE_KINDS {
                    divergent.with_label_values(&[kind]);
                }
                divergent
            })?,
            registry,
        })
    }

    /// The metrics of the projection `projection`.
    pub fn projector(&self, projection: &'static str) -> ProjectorMetrics {
        let label = [projection];
        ProjectorMetrics {
            projection,
            events: self.events.clone(),
            freshness: self.freshness.with_label_values(&label),
            current_lag: self.current_lag.with_label_values(&label),
            last_applied_sequence: self.last_applied_sequence.with_label_values(&label),
            queue_depth: self.queue_depth.with_label_values(&label),
            position: self.position.with_label_values(&label),
            batch_views: self.batch_views.with_label_values(&label),
        }
    }

    /// Records a read that waited: whether it got what it waited for, and for how long.
    pub fn waited(&self, reached: bool, waited: Duration) {
        self.waits.with_label_values(&[if reached { "reached" } else { "timed_out" }]).inc();
        self.wait_duration.observe(waited.as_secs_f64());
    }
}
