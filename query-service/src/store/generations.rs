//! Generations of a read model, and the pointer that says which one serves reads.
//!
//! A read model lives in collections named by generation: for the order views `order_views` (the first), then
//! `order_views_v1`, `_v2`, … as rebuilds create them. One pointer document per read model
//! (`read_model_generations`, `_id` its name: `orders` for the order views) names the **active**
//! generation (reads), the **previous** ones kept for rollback (newest first), the one **building**, if any, and the
//! previous one **rejoining** while a rollback catches it up. Every pointer change is a compare-and-set on its
//! `revision`.
//!
//! The projector writes each event to the building generation, then the active one, then one rejoining — so a
//! rebuild only has to replay what was committed before it started, and a generation switched to is never behind the
//! one it replaces — and to no other: in the steady state an event is written once. A previous generation stops
//! taking live writes when it is replaced; the pointer records the read model's position then (`stoppedAt`: every
//! event up to it is in that generation). A rollback lets it rejoin the live writes, replays the log after that
//! position into it, and only then makes it active (see `rebuild`). Processes cache the pointer for at most
//! [`POINTER_TTL`], counted from when its read started; a rebuild or rollback waits that long after announcing its
//! generation before it reads the log. A pointer that cannot be read is an error, never a guess.
//!
//! A generation serves a position only if it holds the log from its start (decision 0019): every generation a
//! rebuild made does (it replayed the log from the start before it was switched to); the first one does if the
//! first checkpoint its store handled said that the read model's queue had been sent every event of the log — or,
//! for the order views, if their store already had a position when this was first asked (every earlier release
//! delivered every event to them). The pointer records that answer once (`firstComplete`).

use mongodb::bson::{doc, DateTime};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shared_events::Partition;

use super::models::ReadModel;
use super::operation::{bounded, is_duplicate_key, StoreError};

/// Collection of the pointer documents, one per read model.
pub const POINTERS: &str = "read_model_generations";
/// Longest a process uses a cached pointer before reading it again.
pub const POINTER_TTL: Duration = Duration::from_secs(1);
/// A building generation whose builder has not reported for this long is abandoned and may be replaced (judged by
/// each janitor from the beat it first heard: [`Silence`]).
pub const BUILD_STALE_AFTER: Duration = Duration::from_secs(30);

/// The pointer document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pointer {
    #[serde(rename = "_id")]
    pub id: String,
    pub active: String,
    /// Kept generations, newest first; not written to (a rollback catches one up from the log).
    #[serde(default)]
    pub previous: Vec<String>,
    /// The read model's position when each previous generation stopped taking live writes; a generation missing
    /// here (kept before positions were recorded) is caught up from the start of the log.
    #[serde(default)]
    pub stopped_at: BTreeMap<String, i64>,
    #[serde(default)]
    pub building: Option<Build>,
    /// The previous generation a rollback is catching up: written to live again until it is active.
    #[serde(default)]
    pub rejoining: Option<String>,
    /// Generations created so far (names the next one).
    #[serde(default)]
    pub created: i64,
    /// Bumped by every change: the compare-and-set token.
    #[serde(default)]
    pub revision: i64,
    #[serde(default)]
    pub switched_at: Option<DateTime>,
    /// Whether the first generation holds the log from its start; `None` until every partition has handled its
    /// first checkpoint (or one said no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_complete: Option<bool>,
    /// Until then, what each partition's first checkpoint said, by [`Partition::key`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_partitions: BTreeMap<String, bool>,
    /// Generations known to lack events: live when the store lost the positions (and with them, presumably, the
    /// documents) while the pointer survived. None of them vouches for a position again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacking: Vec<String>,
    /// Partitions, by [`Partition::key`], that have had a position stored: one found without it was lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positioned: Vec<String>,
    /// When the rollback catching up the rejoining generation last said it was alive (`None` from a release that
    /// did not say: judged silent from when a janitor first saw it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoining_heartbeat_at: Option<DateTime>,
    /// Which rollback the rejoining generation is caught up by: the pointer's revision when it began ([`Rejoin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoining_token: Option<i64>,
}

/// A rollback's hold on the generation it catches up: the generation, and the pointer revision at which its
/// rejoining began, which no other rollback's has. A rollback whose rejoining was stopped (its beats taken for
/// silence) tells a later rollback's rejoining of the same generation from its own, and neither finishes nor stops
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejoin {
    pub generation: String,
    pub token: i64,
}

/// A generation being built, with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub name: String,
    pub started_at: DateTime,
    pub heartbeat_at: DateTime,
    /// Events replayed from the log so far, and the log's head when the rebuild began.
    pub replayed: i64,
    pub total: i64,
}

/// How long one janitor has heard the same beat of a build (or of a rollback), by its own clock, from when it first
/// heard it: a build is silent when that beat stays the newest for [`BUILD_STALE_AFTER`]. Not by how old the beat
/// is — a store that was unreachable for a while holds an old beat of a live builder, whose next beat is on its way
/// — nor by comparing another replica's clock with this one's. Only looks that reached the store count: one that
/// failed ([`Silence::forget`]), or a gap of [`BUILD_STALE_AFTER`] between two looks (the janitor's process stood
/// still), starts it over, since the janitor heard nothing meanwhile.
#[derive(Debug, Default)]
pub struct Silence {
    heard: Option<(String, i64, Instant)>,
    looked: Option<Instant>,
}

impl Silence {
    /// How long the beat `beat` of the catch-up of generation `name` (a build, or a rollback's rejoining generation)
    /// has been the newest this janitor heard, at `now`. No beat at all counts as one, heard from then on.
    pub fn heard(&mut self, name: &str, beat: Option<DateTime>, now: Instant) -> Duration {
        if self.looked.is_some_and(|looked| now.saturating_duration_since(looked) >= BUILD_STALE_AFTER) {
            self.heard = None;
        }
        self.looked = Some(now);
        let beat = beat.map_or(i64::MIN, |beat| beat.timestamp_millis());
        match &self.heard {
            Some((heard_of, heard, since)) if heard_of == name && *heard == beat => {
                now.saturating_duration_since(*since)
            }
            _ => {
                self.heard = Some((name.to_owned(), beat, now));
                Duration::ZERO
            }
        }
    }

    /// A look that did not reach the store: what was heard before counts no more.
    pub fn forget(&mut self) {
        *self = Self::default();
    }
}

impl Pointer {
    /// The pointer of a read model no rebuild has touched: its first generation active.
    pub fn first(model: &ReadModel) -> Self {
        Self {
            id: model.name.to_owned(),
            active: model.generation_name(0),
            previous: Vec::new(),
            stopped_at: BTreeMap::new(),
            building: None,
            rejoining: None,
            created: 0,
            revision: 0,
            switched_at: None,
            first_complete: None,
            first_partitions: BTreeMap::new(),
            lacking: Vec::new(),
            positioned: Vec::new(),
            rejoining_heartbeat_at: None,
            rejoining_token: None,
        }
    }

    /// Whether `generation` holds the log from its start, so that it may vouch for a position: one a rebuild made
    /// (any but the first, `first`), or the first once known complete — and none known to lack events since.
    pub fn holds_whole_log(&self, generation: &str, first: &str) -> bool {
        !self.lacking.iter().any(|lacking| lacking == generation)
            && (generation != first || self.first_complete == Some(true))
    }

    /// Every generation the projector writes to, in write order: building, active, rejoining.
    pub fn live(&self) -> Vec<String> {
        let building = self.building.iter().map(|b| b.name.clone());
        building.chain(std::iter::once(self.active.clone())).chain(self.rejoining.iter().cloned()).collect()
    }

    /// Whether `generation` is the one being built.
    pub fn builds(&self, generation: &str) -> bool {
        self.building.as_ref().is_some_and(|b| b.name == generation)
    }

    /// The rollback the rejoining generation is caught up by, if one is.
    pub fn rejoin(&self) -> Option<Rejoin> {
        let generation = self.rejoining.clone()?;
        Some(Rejoin { generation, token: self.rejoining_token.unwrap_or_default() })
    }

    /// Whether the rejoining generation is caught up by the rollback `rejoin`.
    pub fn rejoins(&self, rejoin: &Rejoin) -> bool {
        self.rejoin().as_ref() == Some(rejoin)
    }

    /// The pointer with no generation rejoining.
    fn without_rejoin(&self) -> Pointer {
        Pointer { rejoining: None, rejoining_heartbeat_at: None, rejoining_token: None, ..self.clone() }
    }

    /// Whether `generation` is one this pointer names: active, kept, building or rejoining.
    pub fn names(&self, generation: &str) -> bool {
        self.live().iter().chain(&self.previous).any(|named| named == generation)
    }

    /// Of the generations the store holds (`held`, with their numbers), those this pointer has given up: numbered
    /// no later than the last it created, and named no more (replaced, beyond the kept ones, or a rebuild given up).
    /// One numbered later was made under a pointer since lost, and is not this one's to judge.
    pub fn given_up(&self, held: &[(String, i64)]) -> Vec<String> {
        held.iter()
            .filter(|(name, number)| *number <= self.created && !self.names(name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The pointer once `name` is active: the active generation becomes the newest previous one, stopped at
    /// `position`; what rejoins for a rollback that has not finished stays among the previous ones (the rollback,
    /// finding the pointer changed, gives up). Returns it and the generations beyond `keep`, to be dropped.
    fn switched_to(&self, name: &str, keep: usize, position: i64, now: DateTime) -> (Pointer, Vec<String>) {
        let mut previous = vec![self.active.clone()];
        previous.extend(self.previous.iter().cloned());
        let dropped = previous.split_off(keep.saturating_sub(1).min(previous.len()));
        let mut stopped_at = self.stopped_at.clone();
        stopped_at.insert(self.active.clone(), position);
        stopped_at.retain(|generation, _| previous.contains(generation));
        let next = Pointer {
            active: name.to_owned(),
            previous,
            stopped_at,
            building: None,
            switched_at: Some(now),
            ..self.without_rejoin()
        };
        (next, dropped)
    }

    /// The generation a rollback goes back to, and the position from which the log must be replayed into it.
    pub fn rollback_target(&self) -> Option<(String, i64)> {
        let back = self.previous.first()?;
        Some((back.clone(), self.stopped_at.get(back).copied().unwrap_or(0)))
    }
}

/// Why a pointer change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    #[error("generation {0} is already being built")]
    Building(String),
    #[error("a rollback to generation {0} is already catching it up")]
    RollingBack(String),
    #[error("there is no previous generation to roll back to")]
    NothingToRollBack,
    #[error("the previous generation {0} does not hold the log from its start: it cannot serve reads")]
    Incomplete(String),
    #[error("generation {0} is no longer the one being built")]
    NotBuilding(String),
    #[error("the pointer changed meanwhile; try again")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The pointer of one read model, cached per process.
#[derive(Debug, Clone)]
pub struct Generations {
    model: &'static ReadModel,
    pointers: Collection<Pointer>,
    cache: Arc<RwLock<Option<(Pointer, Instant)>>>,
}

impl Generations {
    pub fn new(database: &Database, model: &'static ReadModel) -> Self {
        // Switches are journaled, at the database's write concern: they must not be lost once a client has seen
        // the new generation.
        let pointers = database.collection_with_options(POINTERS, super::concerns::durable_in(database));
        Self { model, pointers, cache: Arc::default() }
    }

    /// The `_id` of this read model's pointer.
    fn id(&self) -> &'static str {
        self.model.name
    }

    /// The name of the read model's first generation.
    pub fn first(&self) -> String {
        self.model.generation_name(0)
    }

    /// Whether the active generation of `pointer` holds the log from its start (see [`Pointer::holds_whole_log`]).
    pub fn active_complete(&self, pointer: &Pointer) -> bool {
        pointer.holds_whole_log(&pointer.active, &self.first())
    }

    /// Records, once per partition, whether `partition`'s queue held the log from its start: what the first
    /// checkpoint the partition handles says (`whole_log`), or `assumed` (see the module's notes); and once every
    /// partition has answered — or one said no — whether the first generation holds the log from its start. Each
    /// partition gets its own copy of the marker that says so: one partition's copy says nothing of another's
    /// queue, which may have been purged before anyone consumed it. An answer already recorded stays.
    pub async fn settle_first(
        &self,
        partition: Partition,
        whole_log: bool,
        assumed: bool,
    ) -> Result<Pointer, StoreError> {
        let complete = whole_log || assumed;
        let (before, pointer) = self
            .change(|seen| {
                let mut next = seen.clone();
                if seen.first_complete.is_some() || seen.first_partitions.contains_key(&partition.key()) {
                    return next;
                }
                next.first_partitions.insert(partition.key(), complete);
                next.first_complete = first_settled(&next.first_partitions, partition.count);
                if next.first_complete.is_some() {
                    next.first_partitions.clear();
                }
                next
            })
            .await?;
        if before != pointer {
            tracing::info!(
                read_model = self.model.name,
                %partition,
                complete,
                assumed = assumed && !whole_log,
                first_complete = ?pointer.first_complete,
                "recorded whether the read model's partition held the log from its start"
            );
        }
        Ok(pointer)
    }

    /// The pointer, from the cache when it is fresh enough, else read from MongoDB. Never a guess: when it cannot
    /// be read, the caller fails (a batch is retried unacked, a read answers 503) rather than use an old pointer or
    /// the default, which after a rebuild would name a generation no longer active.
    pub async fn current(&self) -> Result<Pointer, StoreError> {
        if let Some((pointer, read_at)) = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
        {
            if read_at.elapsed() < POINTER_TTL {
                return Ok(pointer.clone());
            }
        }
        self.load().await
    }

    /// Reads the pointer from MongoDB (the default when there is none yet) and caches it. The cached copy's age
    /// counts from when the read *started*: a rebuild waits [`POINTER_TTL`] after announcing its generation, and a
    /// read that began before the announcement must not look fresh for longer than that.
    pub async fn load(&self) -> Result<Pointer, StoreError> {
        let started = Instant::now();
        let pointer = bounded(self.pointers.find_one(doc! { "_id": self.id() })).await?;
        let pointer = pointer.unwrap_or_else(|| Pointer::first(self.model));
        self.remember(&pointer, started);
        Ok(pointer)
    }

    fn remember(&self, pointer: &Pointer, read_at: Instant) {
        *self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((pointer.clone(), read_at));
    }

    /// Replaces `seen` by `next` if nobody changed the pointer meanwhile.
    async fn compare_and_set(&self, seen: &Pointer, next: Pointer) -> Result<Pointer, PointerError> {
        self.compare_and_set_where(seen, next, doc! {}).await
    }

    /// [`Self::compare_and_set`], only while the stored pointer also matches `also` (fields a builder's beat sets
    /// without a new revision).
    async fn compare_and_set_where(
        &self,
        seen: &Pointer,
        mut next: Pointer,
        also: mongodb::bson::Document,
    ) -> Result<Pointer, PointerError> {
        next.revision = seen.revision + 1;
        let mut filter = if seen.revision == 0 {
            // No document yet (or the first one): insert it, or match the untouched one.
            doc! { "_id": self.id(), "revision": { "$in": [0, null] } }
        } else {
            doc! { "_id": self.id(), "revision": seen.revision }
        };
        filter.extend(also);
        let update =
            self.pointers.find_one_and_replace(filter, &next).upsert(true).return_document(ReturnDocument::After);
        let started = Instant::now();
        match bounded(update).await {
            Ok(Some(_)) => {
                self.remember(&next, started);
                Ok(next)
            }
            Ok(None) => Err(PointerError::Raced),
            Err(StoreError::Mongo(err)) if is_duplicate_key(&err) => Err(PointerError::Raced),
            // The answer is lost, not necessarily the change: the change is ours if the pointer is now exactly
            // `next` (its revision and times make it unique). Otherwise the outcome stays unknown: an error.
            Err(err) => match self.load().await {
                Ok(stored) if stored == next => Ok(next),
                _ => Err(err.into()),
            },
        }
    }

    /// Records that `partition` has had a position stored: from then on, one found missing was lost.
    pub async fn record_positioned(&self, partition: Partition) -> Result<(), StoreError> {
        self.change(|seen| {
            let mut next = seen.clone();
            if !seen.positioned.contains(&partition.key()) {
                next.positioned.push(partition.key());
            }
            next
        })
        .await
        .map(drop)
    }

    /// Records that every generation the pointer names (building, active, rejoining and the kept ones) lacks
    /// events: the store lost positions while this pointer survived, and presumably the documents with them
    /// (decision 0019). The read model then builds itself again, and no rollback returns to a kept generation.
    /// Partitions without a stored position now (`stored` holds the keys of those with one) are no longer recorded
    /// as positioned, in the same change: the position each stores next is its first, and does not find the same
    /// loss again (which would mark the generation rebuilt after it as lacking too).
    pub async fn record_lacking(&self, stored: &[String]) -> Result<Pointer, StoreError> {
        let (before, pointer) = self
            .change(|seen| {
                let mut next = seen.clone();
                for generation in seen.live().into_iter().chain(seen.previous.iter().cloned()) {
                    if !next.lacking.contains(&generation) {
                        next.lacking.push(generation);
                    }
                }
                next.positioned.retain(|key| stored.contains(key));
                next
            })
            .await?;
        if before != pointer {
            tracing::warn!(read_model = self.model.name, lacking = ?pointer.lacking,
                "the store lost its positions under a surviving pointer: its generations lack events");
        }
        Ok(pointer)
    }

    /// Applies `change` to the pointer as stored, until no other change races it; returns the pointer before and
    /// after (the same when `change` changes nothing).
    async fn change(&self, change: impl Fn(&Pointer) -> Pointer) -> Result<(Pointer, Pointer), StoreError> {
        loop {
            let seen = self.load().await?;
            let next = change(&seen);
            if next == seen {
                return Ok((seen.clone(), seen));
            }
            match self.compare_and_set(&seen, next).await {
                Ok(pointer) => return Ok((seen, pointer)),
                Err(PointerError::Raced) => continue,
                Err(PointerError::Store(err)) => return Err(err),
                Err(other) => return Err(StoreError::Refused(other.to_string())),
            }
        }
    }

    /// The generation a claim ([`Self::begin_build`]) would take now, or `Building` while a builder that is still
    /// alive holds one: for its indexes to be made before any process learns its name.
    pub async fn next_build(&self, newest: i64) -> Result<String, PointerError> {
        let seen = self.load().await?;
        Self::claimable(&seen)?;
        Ok(self.model.generation_name(Self::next_number(&seen, newest)))
    }

    /// Claims the next generation for a rebuild, unless one is being built by a builder that is still alive. Its
    /// name is past `newest`, the highest generation number the store holds: a pointer made anew (the old one lost)
    /// counts from 0 again, and a builder may still be writing to a generation it does not know.
    /// A change of the pointer meanwhile that claims nothing (a partition recording its first answer, say) is no
    /// reason to refuse: the claim is tried again on the pointer as it is then.
    pub async fn begin_build(&self, total: i64, newest: i64) -> Result<Pointer, PointerError> {
        let mut attempts = 0;
        loop {
            let seen = self.load().await?;
            Self::claimable(&seen)?;
            if let Some(build) = &seen.building {
                tracing::warn!(generation = %build.name, "replacing an abandoned rebuild");
            }
            let created = Self::next_number(&seen, newest);
            let now = DateTime::now();
            let name = self.model.generation_name(created);
            let build = Build { name, started_at: now, heartbeat_at: now, replayed: 0, total };
            match self.compare_and_set(&seen, Pointer { building: Some(build), created, ..seen.clone() }).await {
                Err(PointerError::Raced) if attempts < 5 => attempts += 1,
                claimed => return claimed,
            }
        }
    }

    /// `Building` while `seen` names a build whose builder reported within [`BUILD_STALE_AFTER`]; `RollingBack`
    /// while a rollback catches a generation up (one catch-up of a read model at a time: a rebuild's switch would
    /// end the rollback's rejoining under it).
    fn claimable(seen: &Pointer) -> Result<(), PointerError> {
        if let Some(rejoining) = &seen.rejoining {
            return Err(PointerError::RollingBack(rejoining.clone()));
        }
        match &seen.building {
            Some(build)
                if DateTime::now().timestamp_millis() - build.heartbeat_at.timestamp_millis()
                    < BUILD_STALE_AFTER.as_millis() as i64 =>
            {
                Err(PointerError::Building(build.name.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The number of the generation a claim on `seen` takes, past `newest` (the highest the store holds).
    fn next_number(seen: &Pointer, newest: i64) -> i64 {
        seen.created.max(newest) + 1
    }

    /// Records a rebuild's progress (and that its builder is alive). `NotBuilding` when the pointer no longer
    /// names `name` as building: the rebuild was given up (its builder taken for dead) or replaced, and its builder
    /// stops.
    pub async fn report(&self, name: &str, replayed: i64, total: i64) -> Result<(), PointerError> {
        let update = self.pointers.update_one(
            doc! { "_id": self.id(), "building.name": name },
            doc! { "$set": {
                "building.replayed": replayed, "building.total": total, "building.heartbeatAt": DateTime::now(),
            } },
        );
        match bounded(update).await?.matched_count {
            0 => Err(PointerError::NotBuilding(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// Records that the builder of generation `name` is alive (nothing when `name` is not being built).
    pub async fn beat(&self, name: &str) -> Result<(), StoreError> {
        let update = self.pointers.update_one(
            doc! { "_id": self.id(), "building.name": name },
            doc! { "$set": { "building.heartbeatAt": DateTime::now() } },
        );
        bounded(update).await.map(drop)
    }

    /// Records that the rollback `rejoin` is alive (nothing when its generation is not rejoining for it).
    pub async fn beat_rejoin(&self, rejoin: &Rejoin) -> Result<(), StoreError> {
        let update = self.pointers.update_one(
            doc! { "_id": self.id(), "rejoining": &rejoin.generation, "rejoiningToken": rejoin.token },
            doc! { "$set": { "rejoiningHeartbeatAt": DateTime::now() } },
        );
        bounded(update).await.map(drop)
    }

    /// Stops the rejoining of a generation whose rollback died (its process killed, or stopped mid-catch-up): when
    /// `silence` has heard the same beat of it for [`BUILD_STALE_AFTER`], it takes no live writes any more and a
    /// rollback may be asked for again. Reads the pointer from the cache; returns the generation.
    pub async fn end_silent_rejoin(&self, silence: &mut Silence) -> Result<Option<String>, PointerError> {
        let seen = self.current().await?;
        let Some(name) = &seen.rejoining else {
            silence.forget();
            return Ok(None);
        };
        if silence.heard(name, seen.rejoining_heartbeat_at, Instant::now()) < BUILD_STALE_AFTER {
            return Ok(None);
        }
        let beat = seen.rejoining_heartbeat_at.map_or(mongodb::bson::Bson::Null, mongodb::bson::Bson::DateTime);
        let still = doc! { "rejoining": name, "rejoiningHeartbeatAt": beat };
        self.compare_and_set_where(&seen, seen.without_rejoin(), still).await?;
        Ok(Some(name.clone()))
    }

    /// Makes the building generation `name` the active one; the active one becomes the newest previous, stopped at
    /// `position` (the read model's position read before this call). Returns the new pointer and the generations no
    /// longer kept (`keep` counts the active one), to be dropped.
    pub async fn switch(&self, name: &str, keep: usize, position: i64) -> Result<(Pointer, Vec<String>), PointerError> {
        let seen = self.load().await?;
        if seen.building.as_ref().is_none_or(|b| b.name != name) {
            return Err(PointerError::NotBuilding(name.to_owned()));
        }
        let (next, dropped) = seen.switched_to(name, keep, position, DateTime::now());
        Ok((self.compare_and_set(&seen, next).await?, dropped))
    }

    /// Gives up the building generation if `silence` has heard the same beat of its builder for
    /// [`BUILD_STALE_AFTER`] (it died mid-rebuild); returns its name, for the caller to drop once no process writes
    /// to it any more. Only that beat is given up: one that lands meanwhile keeps the build.
    pub async fn abandon_silent(&self, silence: &mut Silence) -> Result<Option<String>, PointerError> {
        let seen = self.load().await?;
        let Some(build) = &seen.building else {
            silence.forget();
            return Ok(None);
        };
        if silence.heard(&build.name, Some(build.heartbeat_at), Instant::now()) < BUILD_STALE_AFTER {
            return Ok(None);
        }
        let name = build.name.clone();
        let still = doc! { "building.name": &name, "building.heartbeatAt": build.heartbeat_at };
        self.compare_and_set_where(&seen, Pointer { building: None, ..seen.clone() }, still).await?;
        Ok(Some(name))
    }

    /// Gives up the building generation `name`. Returns whether the pointer names it no more, so that the caller
    /// may drop its collection: false when it is active, kept or rejoining (a switch went through after all).
    pub async fn abandon(&self, name: &str) -> Result<bool, PointerError> {
        let seen = self.load().await?;
        if seen.building.as_ref().is_none_or(|b| b.name != name) {
            return Ok(!seen.names(name));
        }
        self.compare_and_set(&seen, Pointer { building: None, ..seen.clone() }).await.map(|_| true)
    }

    /// Lets the newest previous generation take live writes again, for a rollback to catch it up; returns the
    /// rollback's hold on it and the position from which the log must be replayed into it. Refused while another
    /// rollback or a rebuild catches a generation up.
    pub async fn begin_rollback(&self) -> Result<(Rejoin, i64), PointerError> {
        let seen = self.load().await?;
        Self::claimable(&seen)?;
        let (back, from) = seen.rollback_target().ok_or(PointerError::NothingToRollBack)?;
        if !seen.holds_whole_log(&back, &self.first()) {
            return Err(PointerError::Incomplete(back));
        }
        let rejoin = Rejoin { generation: back, token: seen.revision + 1 };
        let next = Pointer {
            rejoining: Some(rejoin.generation.clone()),
            rejoining_heartbeat_at: Some(DateTime::now()),
            rejoining_token: Some(rejoin.token),
            ..seen.clone()
        };
        self.compare_and_set(&seen, next).await?;
        Ok((rejoin, from))
    }

    /// Stops the rollback `rejoin` that could not finish: its generation takes no live writes any more. Nothing
    /// when the generation no longer rejoins for it (its rejoining was stopped, and another rollback's may run).
    pub async fn end_rejoin(&self, rejoin: &Rejoin) -> Result<(), PointerError> {
        let seen = self.load().await?;
        if !seen.rejoins(rejoin) {
            return Ok(());
        }
        self.compare_and_set(&seen, seen.without_rejoin()).await.map(drop)
    }

    /// Makes the generation the rollback `rejoin` caught up (the newest previous one) active again; the active one
    /// becomes the newest previous, stopped at `position` (read before this call), so a second rollback rolls
    /// forward. `Raced` when the generation no longer rejoins for this rollback.
    pub async fn rollback(&self, rejoin: &Rejoin, position: i64) -> Result<Pointer, PointerError> {
        let seen = self.load().await?;
        let back = rejoin.generation.as_str();
        let Some((first, older)) = seen.previous.split_first() else { return Err(PointerError::NothingToRollBack) };
        if first != back || !seen.rejoins(rejoin) {
            return Err(PointerError::Raced);
        }
        let mut previous = vec![seen.active.clone()];
        previous.extend(older.iter().cloned());
        let mut stopped_at = seen.stopped_at.clone();
        stopped_at.remove(back);
        stopped_at.insert(seen.active.clone(), position);
        let next = Pointer {
            active: back.to_owned(),
            previous,
            stopped_at,
            switched_at: Some(DateTime::now()),
            ..seen.without_rejoin()
        };
        self.compare_and_set(&seen, next).await
    }
}

/// Whether the first generation holds the log from its start, from what the first checkpoint of each of `count`
/// partitions said: no as soon as one said no, yes once all said yes, `None` until then.
fn first_settled(answers: &BTreeMap<String, bool>, count: u16) -> Option<bool> {
    if answers.values().any(|complete| !complete) {
        return Some(false);
    }
    Partition::all(count).all(|partition| answers.contains_key(&partition.key())).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_silent_for_as_long_as_this_janitor_has_heard_the_same_beat() {
        let beat = |millis: i64| Some(DateTime::from_millis(millis));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut silence = Silence::default();
        // A beat a minute old when first heard counts from then, not from when it was sent.
        assert_eq!(silence.heard("v1", beat(1_000), at(0)), Duration::ZERO);
        assert_eq!(silence.heard("v1", beat(1_000), at(10)), Duration::from_secs(10));
        assert_eq!(silence.heard("v1", beat(1_000), at(20)), Duration::from_secs(20));
        // A new beat starts it over; so does another generation.
        assert_eq!(silence.heard("v1", beat(2_000), at(25)), Duration::ZERO);
        assert_eq!(silence.heard("v1", beat(2_000), at(35)), Duration::from_secs(10));
        assert_eq!(silence.heard("v2", beat(2_000), at(40)), Duration::ZERO);
        // No beat at all (a release that sent none) is one beat, heard from when it was first seen.
        assert_eq!(silence.heard("v3", None, at(45)), Duration::ZERO);
        assert_eq!(silence.heard("v3", None, at(55)), Duration::from_secs(10));
        assert_eq!(silence.heard("v3", None, at(65)), Duration::from_secs(20));
        assert_eq!(silence.heard("v3", None, at(75)), Duration::from_secs(30));
        // A failed look, or a janitor that did not look for as long as a build may be silent, heard nothing.
        silence.forget();
        assert_eq!(silence.heard("v3", None, at(76)), Duration::ZERO);
        assert_eq!(silence.heard("v3", None, at(76 + BUILD_STALE_AFTER.as_secs())), Duration::ZERO);
        assert_eq!(silence.heard("v3", None, at(86 + BUILD_STALE_AFTER.as_secs())), Duration::from_secs(10));
    }

    #[test]
    fn the_first_generation_is_whole_once_every_partition_said_so_and_not_once_one_said_no() {
        let answers = |pairs: &[(&str, bool)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        assert_eq!(first_settled(&answers(&[("0of1", true)]), 1), Some(true));
        assert_eq!(first_settled(&answers(&[("0of1", false)]), 1), Some(false));
        assert_eq!(first_settled(&answers(&[("0of2", true)]), 2), None, "partition 1 has not answered");
        assert_eq!(first_settled(&answers(&[("0of2", true), ("1of2", true)]), 2), Some(true));
        assert_eq!(first_settled(&answers(&[("1of2", false)]), 2), Some(false), "one no is enough");
        assert_eq!(first_settled(&answers(&[("0of3", true), ("1of2", true)]), 2), None, "another split's answer");
    }
    use crate::store::models::ORDER_VIEWS;

    const COLLECTION: &str = ORDER_VIEWS.collection;

    /// Generation `name` as a rebuild that has just begun claims it.
    fn build(name: &str) -> Build {
        let now = DateTime::from_millis(0);
        Build { name: name.to_owned(), started_at: now, heartbeat_at: now, replayed: 0, total: 0 }
    }

    #[test]
    fn the_projector_writes_building_then_active_then_rejoining_and_never_a_resting_previous_one() {
        let mut pointer = Pointer {
            active: "order_views_v2".to_owned(),
            previous: vec!["order_views_v1".to_owned(), COLLECTION.to_owned()],
            stopped_at: BTreeMap::from([("order_views_v1".to_owned(), 40)]),
            building: Some(build("order_views_v3")),
            ..Pointer::first(&ORDER_VIEWS)
        };
        assert_eq!(pointer.live(), ["order_views_v3", "order_views_v2"]);
        pointer.rejoining = Some("order_views_v1".to_owned());
        assert_eq!(pointer.live(), ["order_views_v3", "order_views_v2", "order_views_v1"]);
        assert_eq!(Pointer::first(&ORDER_VIEWS).live(), [COLLECTION]);
    }

    #[test]
    fn a_pointer_names_its_active_kept_building_and_rejoining_generations_and_no_other() {
        let pointer = Pointer {
            active: "order_views_v2".to_owned(),
            previous: vec![COLLECTION.to_owned()],
            building: Some(build("order_views_v3")),
            rejoining: Some(COLLECTION.to_owned()),
            ..Pointer::first(&ORDER_VIEWS)
        };
        for named in [COLLECTION, "order_views_v2", "order_views_v3"] {
            assert!(pointer.names(named), "{named}");
        }
        assert!(!pointer.names("order_views_v1"), "a generation dropped or given up");
    }

    #[test]
    fn a_pointer_gives_up_what_it_names_no_more_but_not_what_a_lost_pointer_made() {
        let pointer = Pointer {
            active: "order_views_v3".to_owned(),
            previous: vec!["order_views_v2".to_owned()],
            created: 4,
            building: Some(build("order_views_v4")),
            ..Pointer::first(&ORDER_VIEWS)
        };
        let held: Vec<(String, i64)> = (0..=5).map(|number| (ORDER_VIEWS.generation_name(number), number)).collect();
        assert_eq!(pointer.given_up(&held), [COLLECTION, "order_views_v1"], "v5: made under a pointer since lost");
        assert!(Pointer::first(&ORDER_VIEWS).given_up(&held).is_empty(), "a new pointer gives up nothing");
    }

    #[test]
    fn a_switch_keeps_or_drops_every_generation_it_replaces_and_forgets_none() {
        let now = DateTime::from_millis(0);
        let seen = Pointer {
            active: "order_views_v2".to_owned(),
            previous: vec!["order_views_v1".to_owned(), COLLECTION.to_owned()],
            stopped_at: BTreeMap::from([("order_views_v1".to_owned(), 40), (COLLECTION.to_owned(), 10)]),
            building: Some(build("order_views_v3")),
            // A rollback to v1 was catching it up when the rebuild finished.
            rejoining: Some("order_views_v1".to_owned()),
            ..Pointer::first(&ORDER_VIEWS)
        };
        for keep in 2..=4 {
            let (next, dropped) = seen.switched_to("order_views_v3", keep, 90, now);
            assert_eq!(next.active, "order_views_v3");
            assert_eq!((next.building, next.rejoining.clone()), (None, None));
            let mut every: Vec<String> = next.previous.iter().chain(&dropped).cloned().collect();
            every.sort();
            assert_eq!(every, [COLLECTION, "order_views_v1", "order_views_v2"], "keep {keep}: kept or dropped");
            assert_eq!(next.previous.len(), (keep - 1).min(3), "keep {keep}");
            assert_eq!(next.stopped_at.get("order_views_v2"), Some(&90), "the replaced one stopped at the switch");
            assert!(next.stopped_at.keys().all(|g| next.previous.contains(g)), "positions of kept ones only");
        }
    }

    #[test]
    fn a_rollback_replays_from_where_the_previous_generation_stopped_or_from_the_start_when_unknown() {
        let mut pointer = Pointer {
            active: "order_views_v2".to_owned(),
            previous: vec!["order_views_v1".to_owned()],
            stopped_at: BTreeMap::from([("order_views_v1".to_owned(), 40)]),
            ..Pointer::first(&ORDER_VIEWS)
        };
        assert_eq!(pointer.rollback_target(), Some(("order_views_v1".to_owned(), 40)));
        pointer.stopped_at.clear();
        assert_eq!(pointer.rollback_target(), Some(("order_views_v1".to_owned(), 0)));
        assert_eq!(Pointer::first(&ORDER_VIEWS).rollback_target(), None);
    }
}
