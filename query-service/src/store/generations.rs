//! Generations of the order views, and the pointer that says which one serves reads.
//!
//! Views live in collections named by generation: `order_views` (the first), then `order_views_v1`, `_v2`, … as
//! rebuilds create them. One pointer document (`read_model_generations`, `_id: "orders"`) names the **active**
//! generation (reads), the **previous** ones kept for rollback (newest first), and the one **building**, if any.
//! Every pointer change is a compare-and-set on its `revision`.
//!
//! The projector writes each event to every live generation — building, then active, then previous — so a rebuild
//! only has to replay what was committed before it started, a rollback finds the previous generation up to date,
//! and a generation switched to is never behind the one it replaces. Processes cache the pointer for at most
//! [`POINTER_TTL`], counted from when its read started; a rebuild waits that long after announcing its generation
//! before it reads the log (see `rebuild`). A pointer that cannot be read is an error, never a guess.

use mongodb::bson::{doc, DateTime};
use mongodb::options::{ReturnDocument, WriteConcern};
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::operation::{bounded, is_duplicate_key, StoreError};

/// Name of the first generation of order views; later generations add `_v<n>`.
pub const COLLECTION: &str = "order_views";

/// Collection of the pointer document.
pub const POINTERS: &str = "read_model_generations";
/// `_id` of the order views' pointer.
const POINTER_ID: &str = "orders";
/// Longest a process uses a cached pointer before reading it again.
pub const POINTER_TTL: Duration = Duration::from_secs(1);
/// A building generation whose builder has not reported for this long is abandoned and may be replaced.
pub const BUILD_STALE_AFTER: Duration = Duration::from_secs(30);

/// The pointer document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pointer {
    #[serde(rename = "_id")]
    pub id: String,
    pub active: String,
    /// Kept generations, newest first; still written, so rollback is lossless.
    #[serde(default)]
    pub previous: Vec<String>,
    #[serde(default)]
    pub building: Option<Build>,
    /// Generations created so far (names the next one).
    #[serde(default)]
    pub created: i64,
    /// Bumped by every change: the compare-and-set token.
    #[serde(default)]
    pub revision: i64,
    #[serde(default)]
    pub switched_at: Option<DateTime>,
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

impl Default for Pointer {
    fn default() -> Self {
        Self {
            id: POINTER_ID.to_owned(),
            active: COLLECTION.to_owned(),
            previous: Vec::new(),
            building: None,
            created: 0,
            revision: 0,
            switched_at: None,
        }
    }
}

impl Pointer {
    /// Every generation the projector writes to, in write order: building, active, previous.
    pub fn live(&self) -> Vec<String> {
        let building = self.building.iter().map(|b| b.name.clone());
        building.chain(std::iter::once(self.active.clone())).chain(self.previous.iter().cloned()).collect()
    }
}

/// Why a pointer change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    #[error("generation {0} is already being built")]
    Building(String),
    #[error("there is no previous generation to roll back to")]
    NothingToRollBack,
    #[error("generation {0} is no longer the one being built")]
    NotBuilding(String),
    #[error("the pointer changed meanwhile; try again")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The pointer, cached per process.
#[derive(Debug, Clone)]
pub struct Generations {
    pointers: Collection<Pointer>,
    cache: Arc<RwLock<Option<(Pointer, Instant)>>>,
}

impl Generations {
    pub fn new(database: &Database) -> Self {
        // Switches are journaled: they must not be lost once a client has seen the new generation.
        let journaled = WriteConcern::builder().journal(true).build();
        let options = mongodb::options::CollectionOptions::builder().write_concern(journaled).build();
        Self { pointers: database.collection_with_options(POINTERS, options), cache: Arc::default() }
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
        let pointer = bounded(self.pointers.find_one(doc! { "_id": POINTER_ID })).await?.unwrap_or_default();
        self.remember(&pointer, started);
        Ok(pointer)
    }

    fn remember(&self, pointer: &Pointer, read_at: Instant) {
        *self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((pointer.clone(), read_at));
    }

    /// Replaces `seen` by `next` if nobody changed the pointer meanwhile.
    async fn compare_and_set(&self, seen: &Pointer, mut next: Pointer) -> Result<Pointer, PointerError> {
        next.revision = seen.revision + 1;
        let filter = if seen.revision == 0 {
            // No document yet (or the first one): insert it, or match the untouched one.
            doc! { "_id": POINTER_ID, "revision": { "$in": [0, null] } }
        } else {
            doc! { "_id": POINTER_ID, "revision": seen.revision }
        };
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
            Err(err) => Err(err.into()),
        }
    }

    /// Claims the next generation for a rebuild, unless one is being built by a builder that is still alive.
    pub async fn begin_build(&self, total: i64) -> Result<Pointer, PointerError> {
        let seen = self.load().await?;
        if let Some(build) = &seen.building {
            let stale = DateTime::now().timestamp_millis() - build.heartbeat_at.timestamp_millis();
            if stale < BUILD_STALE_AFTER.as_millis() as i64 {
                return Err(PointerError::Building(build.name.clone()));
            }
            tracing::warn!(generation = %build.name, "replacing an abandoned rebuild");
        }
        let created = seen.created + 1;
        let now = DateTime::now();
        let build =
            Build { name: format!("{COLLECTION}_v{created}"), started_at: now, heartbeat_at: now, replayed: 0, total };
        self.compare_and_set(&seen, Pointer { building: Some(build), created, ..seen.clone() }).await
    }

    /// Records a rebuild's progress (and that its builder is alive).
    pub async fn report(&self, name: &str, replayed: i64, total: i64) -> Result<(), StoreError> {
        let update = self.pointers.update_one(
            doc! { "_id": POINTER_ID, "building.name": name },
            doc! { "$set": {
                "building.replayed": replayed, "building.total": total, "building.heartbeatAt": DateTime::now(),
            } },
        );
        bounded(update).await.map(drop)
    }

    /// Makes the building generation `name` the active one; the active one becomes the newest previous. Returns
    /// the new pointer and the generations no longer kept (`keep` counts the active one), to be dropped.
    pub async fn switch(&self, name: &str, keep: usize) -> Result<(Pointer, Vec<String>), PointerError> {
        let seen = self.load().await?;
        if seen.building.as_ref().is_none_or(|b| b.name != name) {
            return Err(PointerError::NotBuilding(name.to_owned()));
        }
        let mut previous = vec![seen.active.clone()];
        previous.extend(seen.previous.iter().cloned());
        let dropped = previous.split_off(keep.saturating_sub(1).min(previous.len()));
        let next = Pointer {
            active: name.to_owned(),
            previous,
            building: None,
            switched_at: Some(DateTime::now()),
            ..seen.clone()
        };
        Ok((self.compare_and_set(&seen, next).await?, dropped))
    }

    /// Gives up the building generation if its builder has not reported for [`BUILD_STALE_AFTER`] (it died
    /// mid-rebuild); returns its name, for the caller to drop once no process writes to it any more.
    pub async fn abandon_stale(&self) -> Result<Option<String>, PointerError> {
        let seen = self.load().await?;
        let Some(build) = &seen.building else { return Ok(None) };
        let silent = DateTime::now().timestamp_millis() - build.heartbeat_at.timestamp_millis();
        if silent < BUILD_STALE_AFTER.as_millis() as i64 {
            return Ok(None);
        }
        let name = build.name.clone();
        self.compare_and_set(&seen, Pointer { building: None, ..seen.clone() }).await?;
        Ok(Some(name))
    }

    /// Gives up the building generation `name` (the caller drops its collection).
    pub async fn abandon(&self, name: &str) -> Result<(), PointerError> {
        let seen = self.load().await?;
        if seen.building.as_ref().is_none_or(|b| b.name != name) {
            return Ok(());
        }
        self.compare_and_set(&seen, Pointer { building: None, ..seen.clone() }).await.map(drop)
    }

    /// Makes the newest previous generation active again; the active one becomes the newest previous, so a second
    /// rollback rolls forward.
    pub async fn rollback(&self) -> Result<Pointer, PointerError> {
        let seen = self.load().await?;
        let Some((back, older)) = seen.previous.split_first() else { return Err(PointerError::NothingToRollBack) };
        let mut previous = vec![seen.active.clone()];
        previous.extend(older.iter().cloned());
        let next = Pointer { active: back.clone(), previous, switched_at: Some(DateTime::now()), ..seen.clone() };
        self.compare_and_set(&seen, next).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projector_writes_building_then_active_then_previous() {
        let now = DateTime::from_millis(0);
        let pointer = Pointer {
            active: "order_views_v2".to_owned(),
            previous: vec!["order_views_v1".to_owned()],
            building: Some(Build {
                name: "order_views_v3".to_owned(),
                started_at: now,
                heartbeat_at: now,
                replayed: 0,
                total: 0,
            }),
            ..Pointer::default()
        };
        assert_eq!(pointer.live(), ["order_views_v3", "order_views_v2", "order_views_v1"]);
        assert_eq!(Pointer::default().live(), [COLLECTION]);
    }
}
