//! Blue-green rebuild of a read model from the event log, and rollback: each projection's own, with its own
//! generations (`POST /admin/read-models/{projection}/rebuild`, `query-service rebuild --projection`).
//!
//! A rebuild claims a new generation in the pointer (see [`crate::store::generations`]); from then on the live
//! projector writes every event into it as well. After [`GRACE`] (longer than any process caches the pointer) it
//! replays the whole log from the command-service's feed into the new generation with the same version-guarded
//! write as live projection, so the two overlap harmlessly. Every event is then in the new generation: those
//! committed before a page was read came with that page, and any committed later was published later, when every
//! projector already wrote to the new generation. When the replay reaches the log's head, the pointer switches
//! (journaled, which also makes the replay's unjournaled writes durable) and reads move over. The replaced
//! generation is kept for rollback, recording the read model's position: it takes no more live writes, and a
//! rollback replays only what it missed since ([`Rebuilder::roll_back`]). Generations beyond `READ_MODEL_KEEP` are
//! dropped.
//!
//! Reads and waiting reads are served from the active generation throughout. Each step of a rebuild or rollback — a
//! page read from the feed or loaded into MongoDB, progress reported, a position read — is idempotent, and one that the
//! store or the feed fails (a timeout, a dropped connection) is tried again for as long as the pointer still names the
//! generation as being built (or rejoining for that rollback), read again after each [`STEP_RETRY_FOR`] of failures: a
//! store outage or a store too busy to answer for a while delays a rebuild, and does not throw away what it has
//! replayed. A builder whose heartbeat stops reaching the store is taken for dead by the janitors after
//! `BUILD_STALE_AFTER`, and its next look at the pointer stops it. A pointer change whose answer is lost is settled by
//! reading the pointer back (see [`crate::store::generations`]), and a given-up generation is dropped only if the
//! pointer names it no more.

use service_runtime::watchdog::{Cause, StageId, Watchdog};
use service_runtime::Backoff;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{Feed, FeedError};
use crate::projection::Projection;
use crate::store::gaps::GapOf;
use crate::store::generations::{Pointer, PointerError, Rejoin, Silence, BUILD_STALE_AFTER, POINTER_TTL};
use crate::store::{keep_newest, Guarded, ReadModelStore, StoreError};

/// Wait between claiming a generation and reading the log: every process has re-read the pointer by then.
pub const GRACE: Duration = Duration::from_millis(POINTER_TTL.as_millis() as u64 * 2);

/// How often each replica looks after each read model: a rebuild whose builder died, one to start
/// ([`Rebuilder::tend`]).
pub const JANITOR_INTERVAL: Duration = Duration::from_secs(10);

/// What a catch-up of a generation from the log works for: its steps go on only while the pointer still wants it.
#[derive(Debug, Clone)]
enum Job {
    /// A rebuild of the building generation.
    Build(String),
    /// A rollback's catch-up of the generation it rejoins.
    Rejoin(Rejoin),
}

impl Job {
    /// The generation caught up.
    fn generation(&self) -> &str {
        match self {
            Self::Build(name) => name,
            Self::Rejoin(rejoin) => &rejoin.generation,
        }
    }

    /// Whether `pointer` still wants this catch-up: names the generation as building, or as rejoining for this
    /// rollback.
    fn wanted(&self, pointer: &Pointer) -> bool {
        match self {
            Self::Build(name) => pointer.builds(name),
            Self::Rejoin(rejoin) => pointer.rejoins(rejoin),
        }
    }
}

/// How often a builder (or a rollback) says it is alive, whatever its progress: well within [`BUILD_STALE_AFTER`].
const BEAT_EVERY: Duration = Duration::from_secs(5);
const _: () = assert!(BEAT_EVERY.as_secs() * 3 < BUILD_STALE_AFTER.as_secs());

/// How long a step of a rebuild or rollback keeps failing, for a reason that may pass, before its builder reads the
/// pointer to learn whether the work is still wanted (and again after as long each time): a few operation timeouts.
pub const STEP_RETRY_FOR: Duration = Duration::from_secs(20);

/// Why a rebuild or rollback waits: one of its steps keeps failing. After `STALL_AFTER_S` of it, the watchdog names
/// it stalled (the builder still tries, for as long as its generation is wanted).
const FAILING_STEP: Cause = Cause { says: "a step of it keeps failing", answered_by_progress: true };

/// Drops a generation no pointer names any more, after [`GRACE`] (not cut short by shutdown: a process may still
/// write to it until it re-reads the pointer). A write already on its way may create it again: the janitor drops
/// what the pointer has given up on each round ([`Rebuilder::tend`]).
async fn drop_after_grace(views: &ReadModelStore, name: &str) {
    tokio::time::sleep(GRACE).await;
    if let Err(err) = views.drop_generation(name).await {
        tracing::warn!(generation = name, error = %err, "dropping a given-up generation failed");
    }
}

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Pointer(#[from] PointerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("the service is shutting down")]
    Cancelled,
}

impl RebuildError {
    /// Whether the same step may succeed if tried again: the read store or the event feed failed or did not
    /// answer — not a write MongoDB refused, a feed that refused the request, a pointer that changed, or a
    /// shutdown.
    fn is_transient(&self) -> bool {
        match self {
            Self::Store(err) | Self::Pointer(PointerError::Store(err)) => !matches!(err, StoreError::Refused(_)),
            Self::Feed(err) => err.is_transient(),
            Self::Pointer(_) | Self::Cancelled => false,
        }
    }
}

/// How far a rebuild is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub generation: String,
    pub replayed: i64,
    pub total: i64,
    pub events_per_second: f64,
    pub done: bool,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct Report {
    pub generation: String,
    pub events: i64,
    /// Documents the replay wrote (views, for the order views).
    pub views: usize,
    pub replay: Duration,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.replay.as_secs_f64().max(1e-9)
    }
}

/// Starts and runs rebuilds of one projection's read model for one process.
#[derive(Debug, Clone)]
pub struct Rebuilder {
    projection: &'static dyn Projection,
    views: ReadModelStore,
    feed: Feed,
    /// Generations kept, the active one included.
    keep: usize,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Where a step that keeps failing is reported, if anywhere.
    watchdog: Option<Watchdog>,
}

impl Rebuilder {
    /// The rebuilder of `projection`, whose read model `views` is.
    pub fn new(
        projection: &'static dyn Projection,
        views: ReadModelStore,
        feed: Feed,
        keep: usize,
        shutdown: CancellationToken,
    ) -> Self {
        Self { projection, views, feed, keep: keep.max(2), tasks: TaskTracker::new(), shutdown, watchdog: None }
    }

    /// The same rebuilder, reporting to `watchdog` a rebuild or rollback whose steps keep failing (stage
    /// [`StageId::rebuild`]).
    pub fn watched(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = Some(watchdog);
        self
    }

    /// Tells the watchdog whether a step of a rebuild or rollback is failing now (`None`: it has ended, the stage
    /// is forgotten).
    fn watch(&self, failing: Option<bool>) {
        let Some(watchdog) = &self.watchdog else { return };
        let stage = StageId::rebuild(self.projection.name());
        match failing {
            Some(failing) => {
                if !failing {
                    watchdog.progressed(&stage);
                }
                watchdog.holds(&stage, FAILING_STEP, failing);
            }
            None => watchdog.retain(|watched| *watched != stage),
        }
    }

    /// The projection it rebuilds.
    pub fn projection(&self) -> &'static dyn Projection {
        self.projection
    }

    /// The read model it rebuilds.
    pub fn views(&self) -> &ReadModelStore {
        &self.views
    }

    /// Claims a generation and rebuilds it in the background; returns its name at once.
    pub async fn start(&self) -> Result<String, RebuildError> {
        let name = self.claim().await?;
        let rebuilder = self.clone();
        let generation = name.clone();
        self.tasks.spawn(async move {
            let (progress, _) = watch::channel(Progress::default());
            match rebuilder.run(&generation, &progress).await {
                Ok(report) => tracing::info!(
                    projection = rebuilder.projection.name(),
                    generation,
                    events = report.events,
                    views = report.views,
                    events_per_second = report.events_per_second(),
                    "rebuild switched"
                ),
                Err(err) => tracing::warn!(generation, error = %err, "rebuild failed"),
            }
        });
        Ok(name)
    }

    /// Waits for rebuilds and rollbacks started here to finish (they give up when the service shuts down).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Claims the next generation (fails while a live rebuild holds one, or a rollback runs). Its indexes are made
    /// first, before the pointer names it: no projector writes to it while they are being made (on the MongoDB-wire
    /// stand-in, an index made on a collection that a write is creating wedges the server; on MongoDB, indexes on an
    /// empty collection are cheapest). Only a claim that races another may take a name other than the one prepared;
    /// that one gets its indexes right after.
    pub async fn claim(&self) -> Result<String, RebuildError> {
        let head = self.feed.head().await?;
        let newest = self.views.newest_rebuilt_generation().await?;
        let generations = self.views.generations();
        let prepared = generations.next_build(newest).await?;
        self.views.ensure_indexes(&prepared).await?;
        let pointer = generations.begin_build(head, newest).await?;
        let name = pointer.building.map(|b| b.name).unwrap_or_default();
        if name != prepared {
            self.views.ensure_indexes(&name).await?;
        }
        Ok(name)
    }

    /// Replays the log into the claimed generation `name` and switches to it. On failure the generation is given
    /// up and dropped.
    pub async fn run(&self, name: &str, progress: &watch::Sender<Progress>) -> Result<Report, RebuildError> {
        // The builder says it is alive between its progress reports too: a page that a busy store takes long to
        // write must not get the rebuild taken for dead, given up, and started again from the start.
        // Stopped when the rebuild ends, however it ends (its future dropped too).
        let _beats = self.keep_beating(&Job::Build(name.to_owned()));
        let result = self.replay_and_switch(name, progress).await;
        self.watch(None);
        if result.is_err() {
            // Only a generation the pointer no longer names may go — never one a switch made active after all, its
            // answer lost — and only once every process has re-read the pointer: until then projectors still write
            // to it, and a drop would let them create it again. If giving it up fails, the pointer still names it
            // and the janitor clears it once it is stale.
            match self.views.generations().abandon(name).await {
                Ok(true) => drop_after_grace(&self.views, name).await,
                Ok(false) => tracing::warn!(generation = name, "the failed rebuild's generation is in use: kept"),
                Err(err) => tracing::warn!(generation = name, error = %err, "giving up a failed rebuild failed"),
            }
        }
        result
    }

    /// Says every [`BEAT_EVERY`] that `job` is alive, until the handle is dropped.
    fn keep_beating(&self, job: &Job) -> tokio_util::task::AbortOnDropHandle<()> {
        let (generations, job) = (self.views.generations().clone(), job.clone());
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut every = tokio::time::interval(BEAT_EVERY);
            loop {
                every.tick().await;
                let beat = match &job {
                    Job::Build(name) => generations.beat(name).await,
                    Job::Rejoin(rejoin) => generations.beat_rejoin(rejoin).await,
                };
                if let Err(err) = beat {
                    tracing::debug!(generation = job.generation(), error = %err, "a heartbeat failed");
                }
            }
        }))
    }

    /// Looks after the read model every [`JANITOR_INTERVAL`] until shutdown, with one read of its pointer:
    /// - clears a rebuild whose builder died (killed mid-rebuild, its process gone: a building generation whose
    ///   newest beat this janitor has heard for `BUILD_STALE_AFTER`, by its own clock, is given up — see
    ///   [`Silence`]), and likewise stops the rejoining of a generation whose rollback died;
    /// - drops the generations the pointer has given up ([`Pointer::given_up`]) that the store still holds: one a
    ///   rebuild gave up, one a switch let go that a write on its way created again. Collections are listed before
    ///   the pointer is read, so a generation a rebuild has just claimed (and then created) is named;
    /// - when `builds` (this replica can read the event feed), starts building the read model from the log when
    ///   its active generation is known not to hold the log from its start and no rebuild or rollback runs (a read
    ///   model added to a deployment whose log already held events, or whose store lost what it held; decision 0019).
    ///
    /// Runs on every replica; the pointer's compare-and-set lets one of them win.
    pub async fn tend(self, builds: bool) {
        let (mut silence, mut rejoin_silence) = (Silence::default(), Silence::default());
        loop {
            if service_runtime::sleep_or_shutdown(JANITOR_INTERVAL, &self.shutdown).await {
                return;
            }
            // A look that does not reach the store hears nothing: silence counts only over looks that do.
            let held = match self.views.generations_held().await {
                Ok(held) => held,
                Err(err) => {
                    tracing::debug!(error = %err, "listing the generations failed");
                    silence.forget();
                    rejoin_silence.forget();
                    continue;
                }
            };
            if !self.clear_silent_jobs(&mut silence, &mut rejoin_silence).await {
                continue;
            }
            // `abandon_silent` has just read the pointer: this is its cached copy.
            let Ok(pointer) = self.views.generations().current().await else { continue };
            self.drop_given_up(&pointer, &held).await;
            if builds {
                self.build_if_incomplete(&pointer).await;
            }
        }
    }

    /// Clears a rebuild whose builder stopped reporting, and stops the rejoining of a generation whose rollback
    /// did. `false` when this round of the janitor ends here: a rebuild was just cleared (its generation is dropped
    /// on a later round: writers see the pointer change within `GRACE`), or the pointer could not be checked.
    async fn clear_silent_jobs(&self, silence: &mut Silence, rejoin_silence: &mut Silence) -> bool {
        let generations = self.views.generations();
        match generations.abandon_silent(silence).await {
            Ok(Some(name)) => {
                tracing::warn!(generation = name, "cleared a rebuild whose builder stopped reporting");
                return false;
            }
            Ok(None) | Err(PointerError::Raced) => {}
            Err(err) => {
                tracing::debug!(error = %err, "checking for an abandoned rebuild failed");
                silence.forget();
                rejoin_silence.forget();
                return false;
            }
        }
        match generations.end_silent_rejoin(rejoin_silence).await {
            Ok(Some(name)) => {
                tracing::warn!(
                    generation = name,
                    "stopped the rejoining of a generation whose rollback stopped reporting"
                )
            }
            Ok(None) | Err(PointerError::Raced) => {}
            Err(err) => {
                tracing::debug!(error = %err, "checking for an abandoned rollback failed");
                rejoin_silence.forget();
            }
        }
        true
    }

    /// Drops the generations the pointer has given up that the store still `held`.
    async fn drop_given_up(&self, pointer: &Pointer, held: &[(String, i64)]) {
        for name in pointer.given_up(held) {
            match self.views.drop_generation(&name).await {
                Ok(()) => tracing::info!(generation = name, "dropped a generation the pointer gave up"),
                Err(err) => tracing::warn!(generation = name, error = %err, "dropping a given-up generation failed"),
            }
        }
    }

    /// Starts building the read model from the log when its active generation is known not to hold the log from
    /// its start and no rebuild or rollback runs.
    async fn build_if_incomplete(&self, pointer: &Pointer) {
        let known = pointer.first_complete.is_some() || !pointer.lacking.is_empty();
        let incomplete = known && !self.views.generations().active_complete(pointer);
        if !incomplete || pointer.building.is_some() || pointer.rejoining.is_some() {
            return;
        }
        match self.start().await {
            Ok(generation) => tracing::warn!(
                projection = self.projection.name(),
                generation,
                "the read model does not hold the log from its start: building it from the event feed"
            ),
            Err(RebuildError::Pointer(PointerError::Building(_) | PointerError::Raced)) => {}
            Err(err) => tracing::warn!(projection = self.projection.name(), error = %err,
                "the read model does not hold the log from its start and could not start building it"),
        }
    }

    async fn replay_and_switch(&self, name: &str, progress: &watch::Sender<Progress>) -> Result<Report, RebuildError> {
        let job = Job::Build(name.to_owned());
        self.step(&job, "creating the indexes", || async { Ok(self.views.ensure_indexes(name).await?) }).await?;
        if service_runtime::sleep_or_shutdown(GRACE, &self.shutdown).await {
            return Err(RebuildError::Cancelled);
        }
        let started = Instant::now();
        let (replayed, views) = self
            .replay(&job, 0, |replayed, total| {
                let rate = replayed as f64 / started.elapsed().as_secs_f64().max(1e-9);
                progress.send_replace(Progress {
                    generation: name.to_owned(),
                    replayed,
                    total,
                    events_per_second: rate,
                    done: false,
                });
                self.views.generations().report(name, replayed, total)
            })
            .await?;
        let replay = started.elapsed();
        self.fill_gaps(&job).await?;
        // Read before the switch: every event up to it reached the generation being replaced.
        let position = self.position(&job).await?;
        let (_, dropped) = self.views.generations().switch(name, self.keep, position).await?;
        progress.send_modify(|p| p.done = true);
        // Processes may write to a dropped generation until they re-read the pointer.
        if !service_runtime::sleep_or_shutdown(GRACE, &self.shutdown).await {
            for old in dropped {
                if let Err(err) = self.views.drop_generation(&old).await {
                    tracing::warn!(generation = old, error = %err, "dropping an old generation failed");
                }
            }
        }
        Ok(Report { generation: name.to_owned(), events: replayed, views, replay })
    }

    /// Makes the newest previous generation active again, caught up first: it takes live writes again, then (after
    /// [`GRACE`], when every process writes to it) the log after the position where it stopped is replayed into it,
    /// the events its gaps name are filled in, and only then does the pointer switch — reads never see it behind.
    /// Returns the pointer after the swap and what the catch-up replayed.
    pub async fn roll_back(&self) -> Result<(Pointer, Report), RebuildError> {
        let (rejoin, from) = self.views.generations().begin_rollback().await?;
        self.finish_rollback(&rejoin, from).await
    }

    /// Starts a rollback ([`Rebuilder::roll_back`]) and finishes it in the background, whatever becomes of the
    /// caller (an HTTP request may be given up long before the catch-up is done); returns the generation rolled back
    /// to at once. A rollback that cannot start (nothing to roll back to, one already running, a generation that
    /// does not hold the whole log) is refused here.
    pub async fn start_rollback(&self) -> Result<String, RebuildError> {
        let (rejoin, from) = self.views.generations().begin_rollback().await?;
        let rebuilder = self.clone();
        let back = rejoin.generation.clone();
        let generation = back.clone();
        self.tasks.spawn(async move {
            match rebuilder.finish_rollback(&rejoin, from).await {
                Ok((_, report)) => tracing::info!(
                    projection = rebuilder.projection.name(),
                    generation,
                    events = report.events,
                    "rolled back, caught up from the log"
                ),
                Err(err) => tracing::warn!(generation, error = %err, "rollback failed; the active generation stays"),
            }
        });
        Ok(back)
    }

    /// Catches the generation the rollback `rejoin` rejoins up from `from`, then makes it active; on failure it stops
    /// taking live writes again (if it still rejoins for this rollback).
    async fn finish_rollback(&self, rejoin: &Rejoin, from: i64) -> Result<(Pointer, Report), RebuildError> {
        let generations = self.views.generations();
        let job = Job::Rejoin(rejoin.clone());
        let back = rejoin.generation.as_str();
        let _beats = self.keep_beating(&job);
        let caught_up = async {
            if service_runtime::sleep_or_shutdown(GRACE, &self.shutdown).await {
                return Err(RebuildError::Cancelled);
            }
            let started = Instant::now();
            let (events, views) = self.replay(&job, from, |_, _| async { Ok(()) }).await?;
            // Events it missed before it stopped taking live writes: a redrive after it was replaced reached only
            // the live generations, and closed their gaps but not its own.
            self.fill_gaps(&job).await?;
            let replay = started.elapsed();
            // Read before the switch: every event up to it reached the generation being replaced.
            let position = self.position(&job).await?;
            let pointer = generations.rollback(rejoin, position).await?;
            Ok((pointer, Report { generation: back.to_owned(), events, views, replay }))
        };
        let result = caught_up.await;
        self.watch(None);
        if result.is_err() {
            if let Err(err) = generations.end_rejoin(rejoin).await {
                tracing::warn!(generation = back, error = %err,
                    "a failed rollback's generation still takes live writes");
            }
        }
        result
    }

    /// The read model's position, as a step of `job` ([`Self::step`]).
    async fn position(&self, job: &Job) -> Result<i64, RebuildError> {
        self.step(job, "reading the position", || async { Ok(self.views.position().await?) }).await
    }

    /// Runs one step of `job` (a rebuild or a rollback), trying it again with backoff while it fails for a reason
    /// that may pass ([`RebuildError::is_transient`]) and the work is still wanted: after each [`STEP_RETRY_FOR`] of
    /// failures the pointer is read, and the step ends with its error once the pointer no longer wants the job
    /// ([`Job::wanted`]). A pointer that cannot be read either (the store is down) keeps
    /// the step trying. Only idempotent steps come here: a page read or loaded (version-guarded) twice, progress
    /// reported twice, is the same.
    async fn step<T, Fut>(&self, job: &Job, what: &str, mut attempt: impl FnMut() -> Fut) -> Result<T, RebuildError>
    where
        Fut: Future<Output = Result<T, RebuildError>>,
    {
        let backoff = Backoff::default();
        let mut failing_since = None;
        loop {
            let err = match attempt().await {
                Ok(done) => {
                    if failing_since.is_some() {
                        self.watch(Some(false));
                    }
                    return Ok(done);
                }
                Err(err) => err,
            };
            if !err.is_transient() {
                return Err(err);
            }
            self.watch(Some(true));
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STEP_RETRY_FOR {
                match self.views.generations().load().await {
                    Ok(pointer) if !job.wanted(&pointer) => return Err(err),
                    _ => failing_since = Some(Instant::now()),
                }
            }
            let wait = backoff.failed();
            tracing::warn!(
                projection = self.projection.name(),
                step = what,
                error = %err,
                retry_in_ms = wait.as_millis() as u64,
                "a rebuild step failed; retrying"
            );
            if service_runtime::sleep_or_shutdown(wait, &self.shutdown).await {
                return Err(RebuildError::Cancelled);
            }
        }
    }

    /// Writes into `job`'s generation the events its gaps name, read again from the feed by order (the newest version
    /// of each order wins, as always), and closes each gap for that generation whose event is now applied; an event
    /// the projection still cannot apply stays its gap. Returns how many gaps it closed.
    async fn fill_gaps(&self, job: &Job) -> Result<usize, RebuildError> {
        let name = job.generation();
        let gaps = self.step(job, "reading the gaps", || async { Ok(self.views.gaps().of(name).await?) }).await?;
        let mut closed = 0;
        for gap in gaps {
            let Some(order) = gap.order_id.as_deref().and_then(|id| uuid::Uuid::parse_str(id).ok()) else { continue };
            let events =
                self.step(job, "reading an order's events", || async { Ok(self.feed.order(order).await?) }).await?;
            let mut newest: HashMap<String, Guarded> = HashMap::new();
            let mut applies = false;
            for envelope in events {
                let sequence = envelope.sequence;
                let documents = shared_events::decode_envelope(envelope).map_err(|e| e.to_string());
                if let Ok(documents) = documents.and_then(|event| self.projection.apply(&event)) {
                    applies |= sequence == gap.sequence;
                    documents.into_iter().for_each(|document| keep_newest(&mut newest, document));
                }
            }
            if !applies {
                continue;
            }
            let documents: Vec<Guarded> = newest.into_values().collect();
            self.step(job, "filling a gap", || async { Ok(self.views.load(name, &documents).await?) }).await?;
            let generation = [name.to_owned()];
            self.step(job, "closing a gap", || async {
                Ok(self.views.gaps().close(&[gap.sequence], &generation).await?)
            })
            .await?;
            closed += 1;
        }
        if closed > 0 {
            tracing::info!(projection = self.projection.name(), generation = name, closed, "filled gaps from the log");
        }
        Ok(closed)
    }

    /// Replays the log after `after` into `job`'s generation with the version-guarded write of live projection,
    /// reporting `(replayed, total)` after each page. Returns the events replayed and the documents written.
    async fn replay<F: Future<Output = Result<(), PointerError>>>(
        &self,
        job: &Job,
        mut after: i64,
        mut report: impl FnMut(i64, i64) -> F,
    ) -> Result<(i64, usize), RebuildError> {
        let name = job.generation();
        let mut replayed = 0_i64;
        // Documents written: one that events of several pages write is still one.
        let mut written: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            if self.shutdown.is_cancelled() {
                return Err(RebuildError::Cancelled);
            }
            let page =
                self.step(job, "reading a page of the log", || async { Ok(self.feed.page(after).await?) }).await?;
            let fetched = page.events.len() as i64;
            // Only the newest version of each document needs writing.
            let mut newest: HashMap<String, Guarded> = HashMap::new();
            let mut skipped = Vec::new();
            for envelope in page.events {
                let gap = GapOf::of_envelope(&envelope);
                let documents = shared_events::decode_envelope(envelope)
                    .map_err(|reason| reason.to_string())
                    .and_then(|event| self.projection.apply(&event));
                match documents {
                    Ok(documents) => documents.into_iter().for_each(|document| keep_newest(&mut newest, document)),
                    // The live projector dead-letters such an event; this generation lacks it too: a gap of its own.
                    Err(reason) => {
                        tracing::warn!(%reason, sequence = gap.sequence,
                            "skipping an event the projection cannot apply");
                        skipped.push((gap, reason));
                    }
                }
            }
            for (gap, reason) in &skipped {
                let generation = [name.to_owned()];
                self.step(job, "recording a gap", || async {
                    Ok(self.views.gaps().record(gap, reason, &generation).await?)
                })
                .await?;
            }
            written.extend(newest.keys().cloned());
            let documents: Vec<Guarded> = newest.into_values().collect();
            self.step(job, "loading a page", || async { Ok(self.views.load(name, &documents).await?) }).await?;
            replayed += fetched;
            after = page.metadata.next_after;
            let total = page.metadata.head.max(replayed);
            self.step(job, "reporting progress", || {
                let reported = report(replayed, total);
                async { Ok(reported.await?) }
            })
            .await?;
            if fetched < self.feed.page_size() {
                break;
            }
        }
        Ok((replayed, written.len()))
    }
}
