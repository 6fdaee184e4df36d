//! The command side's Prometheus metrics (`GET /metrics`): commands by type and outcome with their latency, the
//! outbox backlog and the age of its oldest unpublished row (read from Postgres at scrape time, at most once a
//! second), and the relay's batches, confirm latency, failures and leadership.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use service_runtime::health::Recent;
use service_runtime::metrics::{registered, HttpMetrics, LATENCY_BUCKETS};
use std::time::Instant;

use service_runtime::problem::ApiProblem;

/// Every metric of one command-service, in its own registry.
#[derive(Debug, Clone)]
pub struct CommandMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    pub relay: RelayMetrics,
    commands: IntCounterVec,
    command_duration: HistogramVec,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age: Gauge,
    slot_retained: IntGaugeVec,
    slot_lag: IntGaugeVec,
    /// The last read of the backlog gauges from Postgres: at most one a second, one at a time, however many
    /// scrapes come.
    pub backlog_read: Recent<()>,
}

/// The relay's metrics (registered with the service's, or standalone in `command-service relay`).
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    pub batch_size: Histogram,
    pub confirm_duration: Histogram,
    pub published: IntCounter,
    pub failures: IntCounter,
    pub leader: IntGauge,
    pub checkpoints: IntCounter,
    pub unroutable: IntCounter,
}

impl RelayMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let batch_buckets = vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];
        Ok(Self {
            batch_size: registered(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new("relay_batch_size", "Events published per relay batch.").buckets(batch_buckets),
                )?,
            )?,
            confirm_duration: registered(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "relay_confirm_duration_seconds",
                        "From publishing a batch to its last confirm.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )?,
            )?,
            published: registered(
                registry,
                IntCounter::new(
                    "relay_events_published_total",
                    "Events confirmed by the broker and marked published.",
                )?,
            )?,
            failures: registered(
                registry,
                IntCounter::new("relay_publish_failures_total", "Relay rounds that failed (broker or Postgres).")?,
            )?,
            leader: registered(
                registry,
                IntGauge::new("relay_leader", "1 while this relay is the active publisher.")?,
            )?,
            checkpoints: registered(
                registry,
                IntCounter::new("relay_checkpoints_total", "Checkpoint markers published.")?,
            )?,
            unroutable: registered(
                registry,
                IntCounter::new(
                    "relay_unroutable_total",
                    "Events the broker routed to no queue; they stay in the outbox and are retried.",
                )?,
            )?,
        })
    }
}

impl CommandMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        Ok(Self {
            http: HttpMetrics::register(&registry)?,
            relay: RelayMetrics::register(&registry)?,
            commands: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("commands_total", "Commands handled, by command and outcome."),
                    &["command", "outcome"],
                )?,
            )?,
            command_duration: registered(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("command_duration_seconds", "Time to handle a command, by command.")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                    &["command"],
                )?,
            )?,
            outbox_backlog: registered(
                &registry,
                IntGauge::new(
                    "outbox_backlog",
                    "Outbox rows not known published: unmarked rows (notify mode), rows after the last recorded \
                     checkpoint (wal mode). Read at scrape time.",
                )?,
            )?,
            outbox_oldest_age: registered(
                &registry,
                Gauge::new(
                    "outbox_oldest_unpublished_age_seconds",
                    "Age of the oldest unpublished outbox row, 0 when there is none (read at scrape time).",
                )?,
            )?,
            slot_retained: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "relay_slot_retained_bytes",
                        "Write-ahead log a replication slot of the database keeps from removal (read at scrape time).",
                    ),
                    &["slot"],
                )?,
            )?,
            slot_lag: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "relay_slot_lag_bytes",
                        "Write-ahead log written since a slot's reader last confirmed (read at scrape time).",
                    ),
                    &["slot"],
                )?,
            )?,
            backlog_read: Recent::default(),
            registry,
        })
    }

    /// Shows the replication slots of the database as they are now (a dropped slot's series goes).
    pub fn slots(&self, slots: &[crate::store::slots::Slot]) {
        self.slot_retained.reset();
        self.slot_lag.reset();
        for slot in slots {
            self.slot_retained.with_label_values(&[&slot.name]).set(slot.retained_bytes.unwrap_or(0));
            self.slot_lag.with_label_values(&[&slot.name]).set(slot.lag_bytes.unwrap_or(0));
        }
    }

    /// Counts and times one command (`place`, `confirm`, `ship`, `cancel`) by how it ended.
    pub fn command<T, E: ApiProblem>(&self, command: &str, started: Instant, result: &Result<T, E>) {
        let outcome = match result {
            Ok(_) => "accepted",
            Err(err) => outcome(err),
        };
        self.commands.with_label_values(&[command, outcome]).inc();
        self.command_duration.with_label_values(&[command]).observe(started.elapsed().as_secs_f64());
    }
}

/// The `outcome` label of a failed command.
fn outcome(err: &impl ApiProblem) -> &'static str {
    match err.status().as_u16() {
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "idempotency_mismatch",
        429 => "throttled",
        503 => "unavailable",
        400..=499 => "rejected",
        _ => "error",
    }
}
