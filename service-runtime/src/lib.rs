//! What every service process of the platform shares: logs and traces ([`telemetry`]), RabbitMQ basics ([`amqp`]),
//! the one shutdown signal ([`shutdown_on_signal`]) and its retry loops ([`Backoff`], [`retry_until_shutdown`]),
//! serving HTTP ([`serve`]) and, for their HTTP APIs, who is asking ([`auth`]), the CORS policy ([`cors`]), the
//! error format ([`problem`]) and the extractors that answer in it ([`extract`]), query-string integers
//! ([`params`]), admin endpoints ([`admin`]), health endpoints ([`health`]), Prometheus metrics ([`metrics`]), the
//! limits on connections ([`listener`]) and per client ([`limits`]), the supervisor of background tasks
//! ([`supervisor`]) and the progress watchdog ([`watchdog`]).

pub mod admin;
pub mod amqp;
pub mod auth;
pub mod cors;
pub mod extract;
pub mod health;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod supervisor;
pub mod telemetry;
pub mod testing;
pub mod watchdog;

pub use telemetry::init_tracing;

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` (each request knowing its peer's address, which `none` mode counts clients by) until
/// `shutdown`, then cancels `shutdown`, so that whatever ended the server ends the service's other tasks too.
pub async fn serve(
    listener: listener::GuardedListener,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let stop = shutdown.clone();
    let app = app.into_make_service_with_connect_info::<listener::Peer>();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    shutdown.cancel();
    served
}

/// Longest a process runs on after its shutdown signal. Each part bounds its own stop ([`STOP_GRACE`], closes given
/// seconds); this is the last resort for whatever still waits then — a request or a pool waiting on a database that
/// no longer answers: the process exits with an error, and what it had not committed or acknowledged is done again
/// by whoever comes next (the outbox keeps what was not published, the broker what was not acknowledged).
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The life of a service process: logs and traces set up, the shutdown signal armed, `role` run until it ends (or,
/// after the signal, for [`STOP_DEADLINE`] at most), traces flushed. What `main` of every service does.
pub async fn run_process<T, Fut>(role: impl FnOnce(CancellationToken) -> Fut) -> T
where
    Fut: Future<Output = T>,
{
    init_tracing();
    let shutdown = shutdown_on_signal();
    let overdue = async {
        shutdown.cancelled().await;
        tokio::time::sleep(STOP_DEADLINE).await;
    };
    let result = tokio::select! {
        result = role(shutdown.clone()) => result,
        () = overdue => {
            tracing::error!(deadline_s = STOP_DEADLINE.as_secs(), "still stopping after the deadline; exiting");
            telemetry::flush();
            std::process::exit(1);
        }
    };
    telemetry::flush();
    result
}

/// A token cancelled on the first SIGINT or SIGTERM: the one shutdown signal of the process.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, () = term => {} }
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}

/// Wait before retry number `failures`: 100 ms doubling to 5 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

/// Consecutive failures of one retry loop, and the wait each one earns. Shared by reference between the loop and
/// the attempt it retries (which calls [`Backoff::reset`] once it is healthy again).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: AtomicU32,
}

impl Backoff {
    /// Counts a failure and returns how long to wait before the next try.
    pub fn failed(&self) -> Duration {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        backoff(failures)
    }

    /// The attempt is healthy again: the next failure waits the shortest time.
    pub fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// How long an attempt under way when shutdown comes may take to finish by itself (settle what it holds, close its
/// connections) before it is dropped: a server that no longer answers (a silent network) must not hold a stopping
/// process until a heartbeat gives up. Dropping loses nothing: what was not acknowledged comes back.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs `attempt` until it returns `Ok` (its value) or `shutdown` comes (`None`); each error is logged with `what`
/// and retried after the backoff's wait. An attempt still under way [`STOP_GRACE`] after shutdown is dropped.
pub async fn retry_until_shutdown<T, F, Fut, E>(
    what: &str,
    backoff: &Backoff,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let given_up = async {
        shutdown.cancelled().await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::pin!(given_up);
    while !shutdown.is_cancelled() {
        let outcome = tokio::select! {
            outcome = attempt() => outcome,
            () = &mut given_up => {
                tracing::warn!(grace_ms = STOP_GRACE.as_millis() as u64, "{what} did not stop in time; dropped");
                return None;
            }
        };
        let err = match outcome {
            Ok(done) => return Some(done),
            Err(err) => err,
        };
        let wait = backoff.failed();
        tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "{what} failed; retrying");
        if sleep_or_shutdown(wait, shutdown).await {
            return None;
        }
    }
    None
}

/// Sleeps for `wait`, or less if `shutdown` comes first; true when it was the shutdown.
pub async fn sleep_or_shutdown(wait: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_does_not_stop_is_dropped_a_grace_after_shutdown() {
        // An attempt waiting on a server that no longer answers, and one that stops when told to.
        let (shutdown, backoff) = (CancellationToken::new(), Backoff::default());
        let stuck = retry_until_shutdown("stuck", &backoff, &shutdown, || async {
            std::future::pending::<Result<(), String>>().await
        });
        let told = tokio::time::Instant::now();
        let stop = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            shutdown.cancel();
        };
        let (outcome, ()) = tokio::join!(stuck, stop);
        assert_eq!(outcome, None);
        assert_eq!(told.elapsed(), Duration::from_secs(1) + STOP_GRACE);

        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let polite = retry_until_shutdown("polite", &backoff, &shutdown, || async { Ok::<_, String>(7) });
        assert_eq!(polite.await, None, "nothing is started once shutdown has come");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(50), Duration::from_secs(5));
    }

    #[test]
    fn a_backoff_counts_failures_until_reset() {
        let backoff = Backoff::default();
        assert_eq!(backoff.failed(), Duration::from_millis(200));
        assert_eq!(backoff.failed(), Duration::from_millis(400));
        backoff.reset();
        assert_eq!(backoff.failed(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn retries_until_the_attempt_succeeds() {
        let backoff = Backoff::default();
        let mut calls = 0;
        retry_until_shutdown("test", &backoff, &CancellationToken::new(), || {
            calls += 1;
            let result = if calls < 3 { Err("not yet") } else { Ok(()) };
            async move { result }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn shutdown_cuts_a_sleep_short() {
        let token = CancellationToken::new();
        token.cancel();
        assert!(sleep_or_shutdown(Duration::from_secs(3600), &token).await);
        assert!(!sleep_or_shutdown(Duration::from_millis(1), &CancellationToken::new()).await);
    }
}
