//! The summary table of a run.

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::clients::Clients;

pub struct Report {
    pub commands: u64,
    pub clients: Clients,
    pub faults: BTreeMap<&'static str, u32>,
    pub checked: Checked,
    /// The customer summaries and the dashboard against SQL aggregates of the write model.
    pub read_models: crate::checks::ReadModelsChecked,
    pub dead_letters: u32,
    pub redriven: u32,
    pub max_lag_ms: f64,
    pub drain: Duration,
    pub notice_reads: (u32, u32, u32),
    /// The active generation of the views at the end (`order_views` unless a rebuild switched).
    pub generation: String,
    pub verify: Value,
    /// What the watch saw during the run.
    pub watched: crate::watch::Seen,
    pub findings: Vec<String>,
}

/// What comparing the write store, the log and the views found.
pub struct Checked {
    pub orders: usize,
    pub views: usize,
    pub events: usize,
    pub lost: usize,
    pub mismatched: usize,
    pub invented: usize,
    /// Orders whose newest event came from a newer writer (their views stay at the last readable version).
    pub held_back: usize,
    pub findings: Vec<String>,
}

impl Report {
    pub fn print(&self) {
        let accepted: u64 = self.clients.statuses.iter().filter(|(s, _)| **s < 300).map(|(_, n)| n).sum();
        let statuses: Vec<String> = self.clients.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let faults: Vec<String> = self.faults.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("\n| fault suite | |\n| --- | --- |");
        println!(
            "| commands sent | {} ({} requests incl. {} retries) |",
            self.commands, self.clients.sent, self.clients.retries
        );
        println!("| accepted (2xx) | {accepted} |");
        println!("| statuses seen | {} |", statuses.join(", "));
        println!("| unanswered (timeouts, connection errors) | {} |", self.clients.unanswered.len());
        println!("| idempotent replays checked | {} |", self.clients.replays_checked);
        println!("| faults injected | {} |", faults.join(", "));
        let checked = &self.checked;
        println!(
            "| orders / events in the log / views | {} / {} / {} |",
            checked.orders, checked.events, checked.views
        );
        println!("| lost (accepted, not in log, unpublished or not in its view) | {} |", checked.lost);
        println!("| mismatched views (not equal to the write model) | {} |", checked.mismatched);
        println!("| views at a version not in the log | {} |", checked.invented);
        println!("| orders held at their last readable version by a newer writer's event | {} |", checked.held_back);
        let r = &self.read_models;
        println!(
            "| customer summaries / dashboard rows (day × currency) differing from SQL over the write model | {} of {} / {} of {} |",
            r.summaries_differing, r.customers, r.days_differing, r.days
        );
        println!("| unreadable messages dead-lettered / redriven | {} / {} |", self.dead_letters, self.redriven);
        println!(
            "| waiting reads answered 200 with the notice exchange gone (202 with the projector still behind) | {} / {} ({}) |",
            self.notice_reads.0, self.notice_reads.1, self.notice_reads.2
        );
        println!("| active generation at the end | {} |", self.generation);
        for (projection, v) in self.verify.as_object().into_iter().flatten() {
            println!(
                "| `query-service verify` {projection}: checked / missing / behind / diverged / ahead (unreadable events) | {} / {} / {} / {} / {} ({}) |",
                v["checked"], v["missing"], v["behind"], v["diverged"], v["ahead"], v["unreadableEvents"]
            );
        }
        let watched = &self.watched;
        let stalls: Vec<String> = watched.stalls_reported.iter().map(|(which, n)| format!("{which} {n}")).collect();
        println!(
            "| queues sampled every 2 s / holding events without a consumer; readiness answers naming a stalled stage | {} / {}; {} |",
            watched.samples.0,
            watched.samples.1,
            if stalls.is_empty() { "none".to_owned() } else { stalls.join(", ") }
        );
        println!("| max projector lag seen | {:.0} ms |", self.max_lag_ms);
        println!("| drained after the last command in | {:.1} s |", self.drain.as_secs_f64());
        for finding in &self.findings {
            println!("FINDING: {finding}");
        }
    }
}
