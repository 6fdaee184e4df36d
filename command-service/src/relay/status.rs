//! What the relay reports about itself to readiness and the watchdog: whether its task runs, why events wait when
//! the broker accepts them but routes them to no queue of some read model, and since when its terms keep failing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Shared between the relay task and `GET /health/ready`.
#[derive(Debug)]
pub struct RelayStatus {
    running: AtomicBool,
    unroutable: Mutex<Option<String>>,
    /// Since when every term has failed, and the last failure; `None` while terms go well.
    failing: Mutex<Option<(tokio::time::Instant, String)>>,
}

impl Default for RelayStatus {
    fn default() -> Self {
        Self { running: AtomicBool::new(true), unroutable: Mutex::new(None), failing: Mutex::new(None) }
    }
}

impl RelayStatus {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub(crate) fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Why the oldest unpublished events wait, while the broker routes them to no queue; `None` when it does.
    pub fn unroutable(&self) -> Option<String> {
        self.unroutable.lock().map(|reason| reason.clone()).unwrap_or_default()
    }

    /// Since when the relay's terms have all failed, and why the last one did; `None` while they go well.
    pub fn failing(&self) -> Option<(tokio::time::Instant, String)> {
        self.failing.lock().map(|failing| failing.clone()).unwrap_or_default()
    }

    /// A term failed with `error`.
    pub(crate) fn term_failed(&self, error: String) {
        if let Ok(mut failing) = self.failing.lock() {
            let since = failing.as_ref().map_or_else(tokio::time::Instant::now, |(since, _)| *since);
            *failing = Some((since, error));
        }
    }

    /// A term runs as it should (publishing, or standing by for another relay).
    pub(crate) fn term_ok(&self) {
        if let Ok(mut failing) = self.failing.lock() {
            *failing = None;
        }
    }

    pub(crate) fn set_unroutable(&self, reason: Option<String>) {
        if let Ok(mut current) = self.unroutable.lock() {
            *current = reason;
        }
    }
}
