//! The waiting read: how a read that asked for a version (or a position) waits until the read model has it.
//!
//! Every wait subscribes to the [`VersionWaiters`] board *before* it reads, so a version announced in between still
//! wakes it; it is woken by the board (the projector's announcement on this replica, a notice from another), asks
//! MongoDB itself every [`RECHECK`] in case a notice was lost, and ends early when the service shuts down (answering
//! what it has). A notice may run ahead of the store this replica reads (reads sent to a secondary of a replica
//! set): a woken read that finds an older version keeps asking, at growing intervals, until its wait runs out. The
//! single read, the list read and the view stream all wait here.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Subscription, VersionWaiters, ViewReader};
use crate::store::{ReadModelStore, StoreError, StoredView};

/// How often a waiting read looks at MongoDB itself when no notice has come: a lost notice delays a read by at most
/// this long, never until its `waitMs` runs out.
pub const RECHECK: Duration = Duration::from_secs(2);

/// The first pause before a read woken by a notice asks the store again, when the store it reads did not have the
/// announced version yet (a replica set secondary behind the primary); it doubles up to [`RECHECK`].
const BEHIND_FIRST_PAUSE: Duration = Duration::from_millis(25);

/// How often an idle stream looks at MongoDB itself (one shared read per order every few seconds while its streams
/// wait).
pub const STREAM_RECHECK: Duration = Duration::from_secs(5);

/// How a wait went, when there was one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// Whether it got what it waited for.
    pub reached: bool,
    pub took: Duration,
}

/// Where waiting reads wait: the board, the reads they share, and the shutdown that ends them.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub reader: ViewReader,
    pub waiters: VersionWaiters,
    pub shutdown: CancellationToken,
}

impl Waiting {
    /// The view of `id`, once at `min_version` or when `wait` runs out (or the service stops): the newest view seen,
    /// and how the wait went (`None` when the first read already had it, or `wait` is zero).
    ///
    /// A view the caller may not see (`visible` false: another customer's order) is waited for as an order that
    /// does not exist: never found, the same reads of the store, the whole wait — so that nothing of the answer,
    /// its timing or what it counts tells it from an id nobody used. Once a notice, or the read a notice prompts,
    /// shows the view is hidden, the wait stops listening to notices about it, as a wait for an unknown order hears
    /// none.
    pub async fn for_version(
        &self,
        id: Uuid,
        min_version: i64,
        wait: Duration,
        visible: impl Fn(&StoredView) -> bool,
    ) -> Result<(Option<Arc<StoredView>>, Option<Waited>), StoreError> {
        let mut subscription = self.waiters.subscribe(id);
        let mut wait_for = VersionWait {
            waiting: self,
            id,
            min_version,
            visible,
            deadline: tokio::time::Instant::now() + wait,
            view: None,
            behind: None,
            deaf: false,
        };
        wait_for.view = wait_for.read().await?.0;
        if version_of(&wait_for.view) >= min_version || wait.is_zero() {
            return Ok((wait_for.view, None));
        }
        let started = Instant::now();
        wait_for.deadline = tokio::time::Instant::now() + wait;
        let reached = loop {
            let step = match wait_for.behind {
                Some(pause) => wait_for.after_pause(pause).await?,
                None => wait_for.after_notice(&mut subscription).await?,
            };
            if let Some(reached) = step {
                break reached;
            }
        };
        Ok((wait_for.view, Some(Waited { reached, took: started.elapsed() })))
    }

    /// The read model's position, once at `min_position` or when `wait` runs out (or the service stops). The board
    /// knows what this replica has been told; MongoDB is asked first, every [`RECHECK`] while no notice comes (one
    /// may have been lost, or this replica hears none), and once more before giving up.
    pub async fn for_position(
        &self,
        views: &ReadModelStore,
        min_position: i64,
        wait: Duration,
    ) -> Result<(i64, Option<Waited>), StoreError> {
        let stored = || async {
            self.waiters.announce_position(views.position().await?);
            Ok::<_, StoreError>(())
        };
        if self.waiters.position() < min_position {
            stored().await?;
        }
        if self.waiters.position() >= min_position || wait.is_zero() {
            return Ok((self.waiters.position(), None));
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + wait;
        let reached = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                () = self.shutdown.cancelled() => break false,
                woken = tokio::time::timeout(RECHECK.min(left), self.waiters.position_reached(min_position)) => {
                    if woken.is_ok() {
                        break true;
                    }
                    stored().await?;
                    if self.waiters.position() >= min_position {
                        break true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break false;
                    }
                }
            }
        };
        Ok((self.waiters.position(), Some(Waited { reached, took: started.elapsed() })))
    }

    /// The first view of `id` at `next` or later, for a stream: waits as long as it takes, looking at MongoDB every
    /// [`STREAM_RECHECK`]. `Ok(None)` when the service shuts down; an error of MongoDB is the caller's to retry.
    pub async fn next_view(
        &self,
        subscription: &mut Subscription,
        id: Uuid,
        next: i64,
    ) -> Result<Option<Arc<StoredView>>, StoreError> {
        loop {
            // The subscription was taken before this read, so a version announced meanwhile is not missed.
            if let Some(view) = self.reader.get(id).await?.filter(|view| view.version >= next) {
                return Ok(Some(view));
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(None),
                // A view handed over with its announcement (by this replica's projector or in a notice) costs no
                // read; a bare version is read below.
                announced = subscription.reached(next) => {
                    if let Some(view) = announced.filter(|view| view.version >= next) {
                        return Ok(Some(view));
                    }
                }
                () = tokio::time::sleep(STREAM_RECHECK) => {}
            }
        }
    }
}

/// One wait of [`Waiting::for_version`], in its state: the newest view seen, the pause before asking a lagging
/// store again, and whether it stopped listening to notices about a view the caller may not see. Each step answers
/// `Some(reached)` when the wait is over, `None` to go on.
struct VersionWait<'a, F> {
    waiting: &'a Waiting,
    id: Uuid,
    min_version: i64,
    visible: F,
    deadline: tokio::time::Instant,
    view: Option<Arc<StoredView>>,
    /// Set once a notice said the version exists but the store this replica reads did not have it yet (a
    /// secondary that lags): the pause before asking the store again.
    behind: Option<Duration>,
    /// Set once a notice showed a view the caller may not see: from then on the wait hears no notice.
    deaf: bool,
}

impl<F: Fn(&StoredView) -> bool> VersionWait<'_, F> {
    /// The view as the caller may see it, and whether there was one it may not see.
    async fn read(&self) -> Result<(Option<Arc<StoredView>>, bool), StoreError> {
        let found = self.waiting.reader.get(self.id).await?;
        let hidden = found.as_ref().is_some_and(|view| !(self.visible)(view));
        Ok((found.filter(|view| (self.visible)(view)), hidden))
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(tokio::time::Instant::now())
    }

    fn reached(&self) -> bool {
        version_of(&self.view) >= self.min_version
    }

    /// Asks a lagging store again after `pause` (doubling it, up to [`RECHECK`]).
    async fn after_pause(&mut self, pause: Duration) -> Result<Option<bool>, StoreError> {
        if service_runtime::sleep_or_shutdown(pause.min(self.left()), &self.waiting.shutdown).await {
            return Ok(Some(false));
        }
        self.view = self.read().await?.0;
        if self.reached() {
            return Ok(Some(true));
        }
        if tokio::time::Instant::now() >= self.deadline {
            return Ok(Some(false));
        }
        self.behind = Some((pause * 2).min(RECHECK));
        Ok(None)
    }

    /// Waits for a notice that the version is there (unless deaf), at most [`RECHECK`]; MongoDB is asked when it
    /// comes without the view, and when none came, in case one was lost (once more before giving up).
    async fn after_notice(&mut self, subscription: &mut Subscription) -> Result<Option<bool>, StoreError> {
        let (deaf, min_version) = (self.deaf, self.min_version);
        let notice = async {
            if deaf {
                std::future::pending().await
            } else {
                subscription.reached(min_version).await
            }
        };
        let woken = tokio::select! {
            () = self.waiting.shutdown.cancelled() => return Ok(Some(false)),
            woken = tokio::time::timeout(RECHECK.min(self.left()), notice) => woken,
        };
        match woken {
            // The projector handed over the view it wrote: no second read.
            Ok(Some(announced)) if (self.visible)(&announced) => {
                self.view = Some(announced);
                return Ok(Some(true));
            }
            Ok(Some(_)) => self.deaf = true,
            Ok(None) => {
                let hidden;
                (self.view, hidden) = self.read().await?;
                if self.reached() {
                    return Ok(Some(true));
                }
                if hidden {
                    self.deaf = true;
                } else {
                    self.behind = Some(BEHIND_FIRST_PAUSE);
                }
            }
            Err(_) => {
                self.view = self.read().await?.0;
                if self.reached() {
                    return Ok(Some(true));
                }
                if tokio::time::Instant::now() >= self.deadline {
                    return Ok(Some(false));
                }
            }
        }
        Ok(None)
    }
}

fn version_of(view: &Option<Arc<StoredView>>) -> i64 {
    view.as_ref().map_or(0, |v| v.version)
}
