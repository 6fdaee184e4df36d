//! Latency histograms (HDR, microsecond resolution) and the result table.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Latencies of one measurement.
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Self {
        // 1 µs to 10 min, 3 significant digits.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 600_000_000);
        let _ = self.0.record(micros);
    }

    pub fn add(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0..1) in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// `p50 / p99 / p999` in milliseconds.
    pub fn summary(&self) -> String {
        format!("{:.2} / {:.2} / {:.2} ms", self.ms(0.5), self.ms(0.99), self.ms(0.999))
    }
}

/// One row of the result table.
pub struct Row {
    pub measurement: String,
    pub ours: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
}

/// The rows so far; printed as a Markdown table.
#[derive(Default)]
pub struct Table(pub Vec<Row>);

impl Table {
    pub fn add(&mut self, measurement: &str, ours: String, baseline: String, ratio: Option<f64>, target: &str) {
        let row = Row {
            measurement: measurement.to_owned(),
            ours,
            baseline,
            ratio: ratio.map_or_else(|| "".to_owned(), |r| format!("{r:.2}×")),
            target: target.to_owned(),
        };
        println!("  {} | {} | {} | {} | {}", row.measurement, row.ours, row.baseline, row.ratio, row.target);
        self.0.push(row);
    }

    pub fn print(&self) {
        println!("\n| measurement | ours | baseline (same run) | ratio | target |");
        println!("| --- | --- | --- | --- | --- |");
        for row in &self.0 {
            println!("| {} | {} | {} | {} | {} |", row.measurement, row.ours, row.baseline, row.ratio, row.target);
        }
    }
}

/// Events (or requests) per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
