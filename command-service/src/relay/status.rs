//! What the relay reports about itself to readiness: whether its task runs, and why events wait when the broker
//! accepts them but routes them nowhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Shared between the relay task and `GET /health/ready`.
#[derive(Debug)]
pub struct RelayStatus {
    running: AtomicBool,
    unroutable: Mutex<Option<String>>,
}

impl Default for RelayStatus {
    fn default() -> Self {
        Self { running: AtomicBool::new(true), unroutable: Mutex::new(None) }
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

    pub(crate) fn set_unroutable(&self, reason: Option<String>) {
        if let Ok(mut current) = self.unroutable.lock() {
            *current = reason;
        }
    }
}
