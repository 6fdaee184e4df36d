//! The background tasks of a service process (the relay, projectors, listeners, samplers, janitors) run under one
//! supervisor. Each is meant to run until shutdown: one that ends before it, or panics, is logged with its name,
//! makes readiness fail at once (the hard check `tasks`), and after [`DRAIN`] — time for a load balancer to see the
//! 503 — stops the process gracefully; the service then ends with an error naming the task, so that `main` exits
//! non-zero and an orchestrator restarts it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long readiness answers 503 before a process whose task ended stops.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The supervised tasks of one process (a handle: clones spawn into the same set).
#[derive(Debug, Clone)]
pub struct Supervisor {
    tasks: TaskTracker,
    health: TaskHealth,
    shutdown: CancellationToken,
}

/// What readiness sees of the supervised tasks: the first that ended unexpectedly, if one did.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<Option<String>>>);

impl TaskHealth {
    /// Why a supervised task is gone (its name and how it ended); `None` while all run.
    pub fn failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn failed(&self, why: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(why);
    }
}

impl Supervisor {
    /// A supervisor whose tasks run until `shutdown`, which it cancels itself when one of them ends first.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { tasks: TaskTracker::new(), health: TaskHealth::default(), shutdown }
    }

    /// What readiness checks.
    pub fn health(&self) -> TaskHealth {
        self.health.clone()
    }

    /// Runs `task`, named `name`, until shutdown.
    pub fn spawn(&self, name: impl Into<String>, task: impl Future<Output = ()> + Send + 'static) {
        let (health, shutdown, name) = (self.health.clone(), self.shutdown.clone(), name.into());
        self.tasks.spawn(async move {
            let ended = tokio::spawn(task).await;
            if shutdown.is_cancelled() && ended.is_ok() {
                return;
            }
            let how = match ended {
                Ok(()) => "ended".to_owned(),
                Err(err) if err.is_panic() => format!("panicked: {}", panic_message(err.into_panic())),
                Err(_) => "was cancelled".to_owned(),
            };
            let why = format!("background task {name} {how}");
            tracing::error!(task = %name, "{why}; the service stops in {} s", DRAIN.as_secs());
            health.failed(why);
            if !service_stopping(&shutdown).await {
                shutdown.cancel();
            }
        });
    }

    /// Waits for every task to end (after shutdown), then says whether one of them failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.tasks.close();
        self.tasks.wait().await;
        match self.health.failure() {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => Ok(()),
        }
    }
}

/// Waits [`DRAIN`] or for the shutdown to begin; true when it began meanwhile.
async fn service_stopping(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(DRAIN) => false,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_fails_readiness_at_once_and_stops_the_service_after_the_drain() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let health = supervisor.health();
        let stop = shutdown.clone();
        supervisor.spawn("steady", async move { stop.cancelled().await });
        supervisor.spawn("fragile", async { panic!("boom") });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(health.failure().as_deref(), Some("background task fragile panicked: boom"));
        assert!(!shutdown.is_cancelled(), "readiness says so first");
        tokio::time::sleep(DRAIN).await;
        assert!(shutdown.is_cancelled(), "then the service stops");
        let ended = supervisor.wait().await.expect_err("the service ends with an error");
        assert!(ended.to_string().contains("fragile"), "{ended}");
    }

    #[tokio::test]
    async fn tasks_that_end_at_shutdown_are_no_failure() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let stop = shutdown.clone();
        supervisor.spawn("steady", async move { stop.cancelled().await });
        shutdown.cancel();
        supervisor.wait().await.expect("a clean stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_early_is_a_failure_too() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        supervisor.spawn("quitter", async {});
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(supervisor.health().failure().as_deref(), Some("background task quitter ended"));
    }
}
