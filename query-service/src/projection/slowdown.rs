//! A deliberate delay before each batch the projector applies, to show a read waiting for the read model (the demo
//! page's "slow down the projector"). Set through `POST /admin/projector/slowdown`; it ends by itself after
//! [`LASTS`], so a demo left behind does not keep a system slow. Nothing is lost while it is on: the deliveries
//! wait unacknowledged, and each batch then takes whatever arrived meanwhile.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest delay that may be asked for.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// How long a slowdown lasts once set.
pub const LASTS: Duration = Duration::from_secs(600);

/// Shared by the admin endpoint (which sets it) and the projector (which honours it).
#[derive(Debug, Clone)]
pub struct Slowdown {
    setting: watch::Sender<Option<Setting>>,
}

impl Default for Slowdown {
    fn default() -> Self {
        Self { setting: watch::channel(None).0 }
    }
}

/// A slowdown in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub delay: Duration,
    /// When it ends by itself (monotonic, for the projector).
    ends: Instant,
    /// The same moment, for people.
    pub ends_at: OffsetDateTime,
}

impl Slowdown {
    /// Delays every batch by `delay` (at most [`MAX_DELAY`]) for the next [`LASTS`]; zero switches it off.
    pub fn set(&self, delay: Duration) -> Option<Setting> {
        let setting = (!delay.is_zero()).then(|| Setting {
            delay: delay.min(MAX_DELAY),
            ends: Instant::now() + LASTS,
            ends_at: OffsetDateTime::now_utc() + LASTS,
        });
        self.setting.send_replace(setting);
        setting
    }

    /// The slowdown in force, if any.
    pub fn current(&self) -> Option<Setting> {
        self.setting.borrow().filter(|setting| setting.ends > Instant::now())
    }

    /// Waits out the delay of a batch that arrived at `arrived`. A change of setting takes effect at once (switching
    /// it off ends the wait); so does shutdown.
    pub async fn hold(&self, arrived: Instant, shutdown: &CancellationToken) {
        let mut changes = self.setting.subscribe();
        loop {
            let Some(setting) = *changes.borrow_and_update() else { return };
            let until = (arrived + setting.delay).min(setting.ends);
            if until <= Instant::now() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_the_delay_and_no_longer() {
        let slowdown = Slowdown::default();
        let shutdown = CancellationToken::new();
        let start = Instant::now();
        slowdown.hold(start, &shutdown).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no slowdown, no wait");

        slowdown.set(Duration::from_secs(3));
        slowdown.hold(start, &shutdown).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn switching_it_off_releases_a_waiting_batch() {
        let slowdown = Slowdown::default();
        slowdown.set(Duration::from_secs(10));
        let start = Instant::now();
        let waiting = {
            let slowdown = slowdown.clone();
            tokio::spawn(async move { slowdown.hold(start, &CancellationToken::new()).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        assert_eq!(slowdown.set(Duration::ZERO), None);
        waiting.await.expect("no panic");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(slowdown.current(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowdown_is_capped_and_ends_by_itself() {
        let slowdown = Slowdown::default();
        let setting = slowdown.set(Duration::from_secs(60)).expect("on");
        assert_eq!(setting.delay, MAX_DELAY);
        tokio::time::advance(LASTS + Duration::from_secs(1)).await;
        assert_eq!(slowdown.current(), None, "over after {LASTS:?}");
        let start = Instant::now();
        slowdown.hold(start, &CancellationToken::new()).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
