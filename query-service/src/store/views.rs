//! A read model's collections ([`ReadModelStore`]: its generations, its position, its gaps), and the order views' own
//! documents and queries: one document per order, written only by a newer version (what a view holds for an event
//! is [`crate::projection`]'s business).

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::options::{ReadPreference, SelectionCriteria, UpdateOptions};
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use shared_events::{Partition, ViewLine};
use uuid::Uuid;

use super::concerns::{durable_in, redoable_in};
use super::gaps::Gaps;
use super::generations::Generations;
use super::guarded::{self, ApplyOutcome, Guarded};
use super::models::{ReadModel, ORDER_VIEWS};
use super::operation::{bounded, is_duplicate_key, StoreError};

/// Name of the collection of read-model positions: one document per read model (`_id` the collection of its first
/// generation), `{_id, position}`.
pub const POSITIONS: &str = "read_model_positions";

/// A view document. Money is kept as exact decimal strings; dates as BSON dates (millisecond precision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredView {
    #[serde(rename = "_id")]
    pub id: String,
    pub customer_id: String,
    /// The customer's segment (event schema v2; views written before it have none until rebuilt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_segment: Option<String>,
    pub status: String,
    pub currency: String,
    pub items: Vec<ViewLine>,
    /// Units ordered: the sum of the lines' quantities.
    pub item_count: i64,
    pub total: String,
    pub placed_at: DateTime,
    pub updated_at: DateTime,
    pub version: i64,
    /// Global sequence of the event that wrote this version.
    pub last_sequence: i64,
    /// Why the order was cancelled, when a reason was given.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// Sort key of list reads, newest last: `placedAt` (zero-padded milliseconds), `_`, order id. One string, so
    /// a page boundary is a single range on an index (see [`ListCursor`]). Internal: not in the API's JSON.
    #[serde(default)]
    pub list_key: String,
}

/// The list sort key of an order: zero-padded `placedAt` milliseconds, then the id, so that string order is
/// `placedAt` order with the id breaking ties.
pub fn list_key(placed_at: DateTime, id: Uuid) -> String {
    format!("{:013}_{id}", placed_at.timestamp_millis().max(0))
}

/// Which views a list read returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub customer_id: Option<String>,
    pub status: Option<String>,
}

/// Where a page ends: the list key of its last view. Clients see it as `<placedAt millis>_<order id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    key: String,
}

impl ListCursor {
    pub fn after(view: &StoredView) -> Self {
        Self { key: view.list_key.clone() }
    }

    /// Opaque to clients, readable in logs.
    pub fn encode(&self) -> String {
        self.key.clone()
    }

    pub fn decode(raw: &str) -> Option<Self> {
        // Exactly the shape `encode` writes: up to 18 digits, `_`, a hyphenated UUID.
        let (millis, id) = raw.split_once('_')?;
        if millis.is_empty() || millis.len() > 18 || !millis.bytes().all(|b| b.is_ascii_digit()) || id.len() != 36 {
            return None;
        }
        let millis: i64 = millis.parse().ok()?;
        let id = Uuid::parse_str(id).ok()?;
        Some(Self { key: list_key(DateTime::from_millis(millis), id) })
    }
}

impl StoredView {
    /// The view as the guarded write stores it.
    pub fn guarded(&self) -> Result<Guarded, StoreError> {
        let mut document = mongodb::bson::to_document(self).map_err(mongodb::error::Error::from)?;
        document.remove("_id");
        document.remove("version");
        Ok(Guarded { id: self.id.clone(), version: self.version, document })
    }
}

/// Handle on one read model (the order views unless made [`ReadModelStore::of`] another): reads go to the active
/// generation, event writes to every live one.
#[derive(Debug, Clone)]
pub struct ReadModelStore {
    database: Database,
    model: &'static ReadModel,
    generations: Generations,
    positions: Collection<mongodb::bson::Document>,
    /// Partitions of the projector's queue: the position is the lowest of theirs.
    partitions: u16,
}

impl ReadModelStore {
    /// The order views of `database`.
    pub fn new(database: Database) -> Self {
        Self::of(database, &ORDER_VIEWS)
    }

    /// The read model `model` of `database`.
    pub fn of(database: Database, model: &'static ReadModel) -> Self {
        // A position write lost in a crash only makes the position look older until the next checkpoint: the
        // views it stands for were journaled before it, so it needs no journal of its own.
        let positions = database.collection_with_options(POSITIONS, redoable_in(&database));
        Self { generations: Generations::new(&database, model), positions, model, database, partitions: 1 }
    }

    /// Another read model of the same database, with the same split of its queue (this one, sharing its cached
    /// pointer, when `model` is this one's).
    pub fn for_model(&self, model: &'static ReadModel) -> Self {
        if model == self.model {
            return self.clone();
        }
        Self { partitions: self.partitions, ..Self::of(self.database.clone(), model) }
    }

    /// Which read model this is.
    pub fn model(&self) -> &'static ReadModel {
        self.model
    }

    /// The events of the log this read model dead-lettered.
    pub fn gaps(&self) -> Gaps {
        Gaps::new(&self.database, self.model.gaps)
    }

    /// The same views, with the projector's queue split into `partitions`.
    pub fn with_partitions(self, partitions: u16) -> Self {
        Self { partitions: partitions.max(1), ..self }
    }

    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// The database these views live in (for the stores beside them, such as [`super::gaps::Gaps`]).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// A generation's collection. View writes are acknowledged only once journaled, at the database's write
    /// concern (`MONGODB_WRITE_CONCERN`): the projector acks the event after this write, so a write the server
    /// could still lose in a crash would lose the event for the view.
    pub fn generation(&self, name: &str) -> Collection<StoredView> {
        self.database.collection_with_options(name, durable_in(&self.database))
    }

    /// A generation's collection for bulk loading: writes acknowledged unjournaled (a rebuild journals once, when
    /// it switches, and starts over if it crashes before).
    pub fn generation_for_loading(&self, name: &str) -> Collection<Document> {
        self.database.collection_with_options(name, redoable_in(&self.database))
    }

    /// The documents of the active generation that match `filter`, with the fields of `projection`, read `from`
    /// the members [`ReadFrom`] names.
    pub async fn find_active(
        &self,
        filter: Document,
        projection: Document,
        from: ReadFrom,
    ) -> Result<Vec<Document>, StoreError> {
        use futures_util::TryStreamExt as _;
        let active = self.database.collection::<Document>(&self.generations.current().await?.active);
        let mut find = active.find(filter).projection(projection);
        if let Some(criteria) = self.criteria(from) {
            find = find.selection_criteria(criteria);
        }
        bounded(async { find.await?.try_collect().await }).await
    }

    /// Loads `documents` into generation `name` being built (see [`guarded::load_into`]).
    pub async fn load(&self, name: &str, documents: &[Guarded]) -> Result<(), StoreError> {
        guarded::load_into(&self.database, &self.generation_for_loading(name), documents).await
    }

    async fn active(&self) -> Result<Collection<StoredView>, StoreError> {
        Ok(self.generation(&self.generations.current().await?.active))
    }

    /// The view of order `id` in the active generation, read where `MONGODB_URI` prefers: a view found below the
    /// version a read waits for keeps it waiting, so a lagging secondary delays a read but never makes it lie.
    pub async fn get(&self, id: Uuid) -> Result<Option<StoredView>, StoreError> {
        let active = self.active().await?;
        let mut find = active.find_one(doc! { "_id": id.to_string() });
        if let Some(criteria) = self.criteria(ReadFrom::Preferred) {
            find = find.selection_criteria(criteria);
        }
        bounded(find).await
    }

    /// The driver's selection criteria of a read `from`: the primary's, or what `MONGODB_URI` says (`None`: it says
    /// nothing, and the primary serves).
    pub fn criteria(&self, from: ReadFrom) -> Option<SelectionCriteria> {
        match from {
            ReadFrom::Preferred => self.database.client().selection_criteria().cloned(),
            ReadFrom::Primary => Some(SelectionCriteria::ReadPreference(ReadPreference::Primary)),
        }
    }

    /// Writes `views` to every live generation (see [`ReadModelStore::apply_documents`]).
    pub async fn apply_all(&self, views: &[StoredView]) -> Result<Vec<ApplyOutcome>, StoreError> {
        let documents = views.iter().map(StoredView::guarded).collect::<Result<Vec<_>, _>>()?;
        self.apply_documents(&documents).await
    }

    /// Writes `documents` with the version guard to every live generation — building, active, rejoining: in that
    /// order, so a generation about to serve reads is never behind one already serving them; in the steady state,
    /// the active one alone — one `update` command per generation for all of them, journaled once. The outcomes
    /// are the active generation's, one per document.
    pub async fn apply_documents(&self, documents: &[Guarded]) -> Result<Vec<ApplyOutcome>, StoreError> {
        Ok(self.apply_to_live(documents).await?.0)
    }

    /// [`ReadModelStore::apply_documents`], also saying which generations were written (the live ones of the pointer
    /// used):
    /// the generations whose gaps the writes close.
    pub async fn apply_to_live(&self, documents: &[Guarded]) -> Result<(Vec<ApplyOutcome>, Vec<String>), StoreError> {
        let pointer = self.generations.current().await?;
        let mut outcomes = vec![ApplyOutcome::Stale; documents.len()];
        let live = pointer.live();
        for name in &live {
            let applied = guarded::write(&self.database, name, documents).await?;
            if *name == pointer.active {
                outcomes = applied;
            }
        }
        Ok((outcomes, live))
    }

    /// Every view of a generation as stored, whatever its shape (a check of the read model must see a view it
    /// cannot read, too).
    pub async fn scan(&self, generation: &str) -> Result<Vec<Document>, StoreError> {
        use futures_util::TryStreamExt as _;
        let collection = self.database.collection::<Document>(generation);
        // A whole collection takes longer than one operation may: the bound is per batch of the cursor.
        let mut cursor = bounded(collection.find(doc! {}).batch_size(1_000)).await?;
        let mut found = Vec::new();
        while let Some(document) = bounded(cursor.try_next()).await? {
            found.push(document);
        }
        Ok(found)
    }

    /// One view of a generation as stored, whatever its shape.
    pub async fn get_document(&self, generation: &str, id: &str) -> Result<Option<Document>, StoreError> {
        bounded(self.database.collection::<Document>(generation).find_one(doc! { "_id": id })).await
    }

    /// Writes `replacement` over the document `id` of `generation` (deletes it when `None`) only where `guard`
    /// holds; true if it did. For repairs of the read model: each writes only over what its check saw.
    pub async fn repair(
        &self,
        generation: &str,
        id: &str,
        guard: RepairGuard,
        replacement: Option<&Guarded>,
    ) -> Result<bool, StoreError> {
        let collection = self.database.collection::<Document>(generation);
        let (filter, upsert) = match guard {
            RepairGuard::Older(version) => (doc! { "_id": id, "version": { "$lt": version } }, true),
            RepairGuard::Exactly(seen) => (doc! { "_id": id, "version": seen }, false),
        };
        let Some(document) = replacement else {
            return Ok(bounded(collection.delete_one(filter)).await?.deleted_count == 1);
        };
        match bounded(collection.replace_one(filter, document.stored()).upsert(upsert)).await {
            Ok(done) => Ok(done.modified_count == 1 || done.upserted_id.is_some()),
            // Not older any more: a newer version was written meanwhile.
            Err(StoreError::Mongo(err)) if is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Stores `position` of `partition`: every event of it up to there is applied to these views (never moves
    /// back). Where the store holds no position of it, this is either the partition's first, or one the store lost
    /// (its positions and presumably its documents: a database restored from an older backup, collections dropped
    /// by hand) — whether the query side ran on meanwhile, idled or was down. The pointer tells them apart (it
    /// records each partition that has had a position stored, once it is stored), and before the position is
    /// written:
    /// - a lost one: every generation the pointer names is recorded as lacking events (decision 0019); reads do
    ///   not vouch for them again, and the read model builds itself;
    /// - where the pointer says nothing of whether the partition held the log from its start (the pointer was lost
    ///   with the store, or is new), the partition is recorded as not having held it: the read model builds itself
    ///   rather than vouch for a position that jumped.
    pub async fn store_position(&self, partition: Partition, position: i64) -> Result<(), StoreError> {
        let generations = self.generations();
        if self.advance_position(partition, position).await? {
            // A pointer from before partitions were recorded, or a first position whose record did not land, learns
            // of this one (from its cached copy, mostly).
            if !generations.current().await?.positioned.contains(&partition.key()) {
                generations.record_positioned(partition).await?;
            }
            return Ok(());
        }
        if generations.load().await?.positioned.contains(&partition.key()) {
            tracing::warn!(%partition, read_model = self.model.name, "the partition's stored position is gone");
            generations.record_lacking(&self.stored_partitions().await?).await?;
        }
        generations.settle_first(partition, false, false).await?;
        self.store_first_position(partition, position).await?;
        generations.record_positioned(partition).await
    }

    /// Records that every event of `partition` up to `position` has been applied to these views (never moves
    /// back), where a position of `partition` is stored already. Returns whether one was: when not, nothing is
    /// written (see [`ReadModelStore::store_first_position`]).
    async fn advance_position(&self, partition: Partition, position: i64) -> Result<bool, StoreError> {
        let field = position_field(partition);
        let filter = doc! { "_id": self.model.collection, &field: { "$exists": true } };
        let update = self.positions.update_one(filter, doc! { "$max": { field: position } });
        Ok(bounded(update).await?.matched_count == 1)
    }

    /// Records the position of `partition` where none is stored (creating the positions document if need be).
    async fn store_first_position(&self, partition: Partition, position: i64) -> Result<(), StoreError> {
        let update = self
            .positions
            .update_one(doc! { "_id": self.model.collection }, doc! { "$max": { position_field(partition): position } })
            .with_options(UpdateOptions::builder().upsert(true).build());
        bounded(update).await.map(drop)
    }

    /// Records, durably, that `partition`'s queue was lost while it may have held events: before it consumes again,
    /// the projector catches the read model up from the event feed (decision 0018). Each record carries a mark of its
    /// own (a new object id, beside the `true` replicas of earlier releases read): a catch-up clears the record only
    /// while it holds the mark the catch-up began with ([`ReadModelStore::caught_up`]), so a loss recorded while it
    /// ran is caught up too (decision 0032).
    pub async fn mark_catch_up(&self, partition: Partition) -> Result<(), StoreError> {
        let durable = self.database.collection_with_options::<Document>(POSITIONS, durable_in(&self.database));
        let (field, mark) = catch_up_fields(partition);
        let update = durable
            .update_one(doc! { "_id": self.model.collection }, doc! { "$set": { field: true, mark: ObjectId::new() } })
            .with_options(UpdateOptions::builder().upsert(true).build());
        bounded(update).await.map(drop)
    }

    /// Whether `partition` must be caught up from the event feed before it consumes: the record's mark, and the
    /// position to catch up from (see [`ReadModelStore::start_chain`]: every event of it up to there is applied).
    pub async fn catch_up_from(&self, partition: Partition) -> Result<Option<CatchUpMark>, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        let Some(found) = found else { return Ok(None) };
        let Some(mark) = pending_mark(&found, partition) else { return Ok(None) };
        Ok(Some(CatchUpMark { mark, after: chain_start(&found, partition).unwrap_or(0) }))
    }

    /// Where `partition`'s chain of checkpoint markers starts (decision 0026): its stored position; for a partition
    /// of a new split that has none, where the split it replaces left off — the lowest position of that split, below
    /// which every event of every order is applied whatever its old queues still hold —, stored now as the
    /// partition's own. `None` for a read model that has handled no marker in any split.
    pub async fn start_chain(&self, partition: Partition) -> Result<Option<i64>, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        let Some(found) = found else { return Ok(None) };
        if let Some(own) = stored_position(&found, partition) {
            return Ok(Some(own));
        }
        let Some(inherited) = chain_start(&found, partition) else { return Ok(None) };
        tracing::info!(read_model = self.model.name, %partition, position = inherited,
            "a partition of a new split starts where the split it replaces left off");
        self.store_position(partition, inherited).await?;
        Ok(Some(inherited))
    }

    /// The position stored for `partition`: every event of it up to there is applied. `None` until it has been
    /// consumed through a checkpoint.
    pub async fn partition_position(&self, partition: Partition) -> Result<Option<i64>, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        Ok(found.and_then(|found| stored_position(&found, partition)))
    }

    /// Whether `partition` has been consumed through a checkpoint (a position of it is stored): its queue, found
    /// missing, was deleted with what it may have held.
    pub async fn consumed(&self, partition: Partition) -> Result<bool, StoreError> {
        Ok(self.partition_position(partition).await?.is_some())
    }

    /// Records that `partition` was caught up from the event feed for `mark`: the record is cleared unless a newer
    /// loss replaced its mark meanwhile, which the next catch-up then covers.
    pub async fn caught_up(&self, partition: Partition, mark: &CatchUpMark) -> Result<(), StoreError> {
        let (field, mark_field) = catch_up_fields(partition);
        let held = match &mark.mark {
            Some(mark) => Bson::ObjectId(*mark),
            None => Bson::Document(doc! { "$exists": false }),
        };
        let filter = doc! { "_id": self.model.collection, &mark_field: held };
        bounded(self.positions.update_one(filter, doc! { "$unset": { field: "", mark_field: "" } })).await.map(drop)
    }

    /// Whether a loss of `partition`'s queue is recorded and not yet caught up.
    pub async fn catch_up_pending(&self, partition: Partition) -> Result<bool, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        Ok(found.is_some_and(|found| pending_mark(&found, partition).is_some()))
    }

    /// The newest position any partition of the read model, of any split, has stored. Each was stored for a
    /// checkpoint marker (or inherited from one), which the relay publishes only once every event up to it has
    /// committed: every event up to it is in the event feed from now on. `None` when none is stored.
    pub async fn newest_stored_position(&self) -> Result<Option<i64>, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        Ok(found.as_ref().and_then(newest_position))
    }

    /// Moves `partition`'s stored position up to `position`, where one is stored (a partition that has none stays
    /// without: its first comes from a marker, decision 0019). Returns whether one was.
    pub async fn advance_stored_position(&self, partition: Partition, position: i64) -> Result<bool, StoreError> {
        self.advance_position(partition, position).await
    }

    /// The partitions, by [`Partition::key`] and of any split, that have a position stored.
    async fn stored_partitions(&self) -> Result<Vec<String>, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        let Some(found) = found else { return Ok(Vec::new()) };
        let mut keys: Vec<String> = match found.get_document("partitions") {
            Ok(split) => {
                split.iter().filter(|(_, position)| position.as_i64().is_some()).map(|(k, _)| k.clone()).collect()
            }
            Err(_) => Vec::new(),
        };
        if found.get_i64("position").is_ok() {
            keys.extend(Partition::all(1).map(Partition::key));
        }
        Ok(keys)
    }

    /// Whether the positions document holds a position for every partition: a partition's first position is stored
    /// before it is announced, so one missing while the read model has a position was lost.
    pub async fn holds_every_position(&self) -> Result<bool, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        let Some(found) = found else { return Ok(false) };
        Ok(Partition::all(self.partitions).all(|partition| stored_position(&found, partition).is_some()))
    }

    /// The position of these views: every event up to it has been applied (0 before the first checkpoint), the
    /// lowest of the partitions' when the queue is split (0 until each has one).
    pub async fn position(&self) -> Result<i64, StoreError> {
        let found = bounded(self.positions.find_one(doc! { "_id": self.model.collection })).await?;
        let Some(found) = found else { return Ok(0) };
        let stored = |partition| found.get_document("partitions").ok().and_then(|p| p.get_i64(&partition).ok());
        Ok(match self.partitions {
            1 => found.get_i64("position").unwrap_or(0),
            count => Partition::all(count).map(|partition| stored(partition.key()).unwrap_or(0)).min().unwrap_or(0),
        })
    }

    /// Creates the indexes the read model's reads use on a generation (idempotent).
    pub async fn ensure_indexes(&self, generation: &str) -> Result<(), StoreError> {
        let models = self.model.indexes().into_iter().map(|keys| mongodb::IndexModel::builder().keys(keys).build());
        bounded(self.generation_for_loading(generation).create_indexes(models)).await.map(drop)
    }

    /// The generations the store holds (`<collection>`, `<collection>_v<n>`), named by the pointer or not, with
    /// their numbers.
    pub async fn generations_held(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let names = bounded(self.database.list_collection_names()).await?;
        Ok(names.into_iter().filter_map(|name| Some((name.clone(), self.model.generation_number(&name)?))).collect())
    }

    /// The highest `n` of the generations a rebuild made that the store holds (`<collection>_v<n>`), named by the
    /// pointer or not; 0 when it holds none.
    pub async fn newest_rebuilt_generation(&self) -> Result<i64, StoreError> {
        Ok(self.generations_held().await?.into_iter().map(|(_, number)| number).max().unwrap_or(0))
    }

    /// Drops a generation's collection.
    pub async fn drop_generation(&self, generation: &str) -> Result<(), StoreError> {
        bounded(self.generation_for_loading(generation).drop()).await
    }

    /// How many views a generation holds.
    pub async fn count(&self, generation: &str) -> Result<u64, StoreError> {
        bounded(self.generation_for_loading(generation).estimated_document_count()).await
    }

    /// One page of views, newest first, after `after` when given. Pages are ranges on an index, not skips, so an
    /// order placed meanwhile neither shifts nor repeats a page.
    pub async fn list(
        &self,
        filter: &ListFilter,
        after: Option<&ListCursor>,
        limit: i64,
        from: ReadFrom,
    ) -> Result<Vec<StoredView>, StoreError> {
        use futures_util::TryStreamExt as _;
        let (query, sort) = list_query(filter, after);
        let active = self.active().await?;
        let mut find = active.find(query).sort(sort).limit(limit);
        if let Some(criteria) = self.criteria(from) {
            find = find.selection_criteria(criteria);
        }
        bounded(async { find.await?.try_collect().await }).await
    }

    /// Cheap round trip to check the server answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        bounded(self.database.client().database("admin").run_command(doc! { "ping": 1 })).await.map(drop)
    }
}

/// Which member of a replica set a list read may be served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Whichever `MONGODB_URI`'s read preference picks (a secondary, if it says so). Every other read of the
    /// service goes to the primary (see `concerns`).
    Preferred,
    /// The primary: a list read that waited for a position must see every write up to it, and a secondary may lag
    /// the primary the projector wrote to (a single view read needs no such care: its version is checked).
    Primary,
}

/// Which stored view a repair may write over.
#[derive(Debug, Clone, PartialEq)]
pub enum RepairGuard {
    /// One older than this version, or none: the projector's own guard.
    Older(i64),
    /// Exactly the one seen, by its stored `version` (a compare-and-set: a view the projector moved on since is
    /// left alone).
    Exactly(mongodb::bson::Bson),
}

/// Writes `view` into `collection` unless the stored view's version is already at least as new: the one-document
/// guarded write the benchmarks compare with. The projector writes through [`super::guarded::write`] instead.
///
/// The filter matches only an older view; when none matches, the upsert tries to insert and the unique `_id`
/// answers duplicate key (11000), taken here for "already newer". That holds for one writer of each view, as in the
/// benchmarks; with several, an insert of an older version may have raced this one, which is why the projector's
/// write looks again before it takes a duplicate key for stale.
pub async fn apply_to(collection: &Collection<StoredView>, view: &StoredView) -> Result<ApplyOutcome, StoreError> {
    let replacement = mongodb::bson::to_document(view).map_err(mongodb::error::Error::from)?;
    let result = bounded(
        collection
            .update_one(doc! { "_id": &view.id, "version": { "$lt": view.version } }, doc! { "$set": replacement })
            .with_options(UpdateOptions::builder().upsert(true).build()),
    )
    .await;
    match result {
        Ok(done) if done.modified_count == 1 || done.upserted_id.is_some() => Ok(ApplyOutcome::Applied),
        Ok(_) => Ok(ApplyOutcome::Stale),
        Err(StoreError::Mongo(err)) if is_duplicate_key(&err) => Ok(ApplyOutcome::Stale),
        Err(err) => Err(err),
    }
}

/// The filter and sort of a list read: equality on the filtered fields, one range on `listKey` (public so that a
/// test can `explain` exactly what the service runs).
pub fn list_query(filter: &ListFilter, after: Option<&ListCursor>) -> (Document, Document) {
    let mut query = doc! {};
    if let Some(customer_id) = &filter.customer_id {
        query.insert("customerId", customer_id);
    }
    if let Some(status) = &filter.status {
        query.insert("status", status);
    }
    if let Some(cursor) = after {
        query.insert("listKey", doc! { "$lt": &cursor.key });
    }
    (query, doc! { "listKey": -1 })
}

/// The position of `partition` in the read model's positions document `found`.
fn stored_position(found: &Document, partition: Partition) -> Option<i64> {
    if partition.is_split() {
        found.get_document("partitions").ok().and_then(|p| p.get_i64(partition.key()).ok())
    } else {
        found.get_i64("position").ok()
    }
}

/// A recorded loss of a partition's queue, as a catch-up reads it: the record's mark (none on a record of an earlier
/// release), and the position it catches up from.
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUpMark {
    mark: Option<ObjectId>,
    /// Every event of the partition up to it is applied.
    pub after: i64,
}

/// The fields of the positions document that record a loss of `partition`'s queue: `catchUp.<partition>` (`true`,
/// which every release reads) and `catchUpMark.<partition>` (the record's own mark).
fn catch_up_fields(partition: Partition) -> (String, String) {
    (format!("catchUp.{}", partition.key()), format!("catchUpMark.{}", partition.key()))
}

/// The record of a loss of `partition`'s queue in the positions document `found`, if one is: `Some` with its mark,
/// or `Some(None)` for a record of an earlier release, which has none.
fn pending_mark(found: &Document, partition: Partition) -> Option<Option<ObjectId>> {
    let key = partition.key();
    found.get_document("catchUp").ok()?.get_bool(&key).ok().filter(|&lost| lost)?;
    Some(found.get_document("catchUpMark").ok().and_then(|marks| marks.get_object_id(&key).ok()))
}

/// `partition`'s stored position in the positions document `found`, or where another split left off: of the
/// splits whose every partition has a position, the one that reached furthest (a split taking over from another
/// starts where that one left off, so the newest split is the furthest), at the lowest of its partitions.
fn chain_start(found: &Document, partition: Partition) -> Option<i64> {
    if let Some(own) = stored_position(found, partition) {
        return Some(own);
    }
    let mut splits: std::collections::BTreeMap<u16, Vec<(u16, i64)>> = std::collections::BTreeMap::new();
    if let Ok(position) = found.get_i64("position") {
        splits.entry(1).or_default().push((0, position));
    }
    if let Ok(partitions) = found.get_document("partitions") {
        for (key, position) in partitions {
            let parsed = key.split_once("of").and_then(|(i, n)| Some((i.parse::<u16>().ok()?, n.parse::<u16>().ok()?)));
            if let (Some((index, count)), Some(position)) = (parsed, position.as_i64()) {
                splits.entry(count).or_default().push((index, position));
            }
        }
    }
    splits
        .into_iter()
        .filter(|(count, held)| *count != partition.count && (0..*count).all(|i| held.iter().any(|(j, _)| *j == i)))
        .filter_map(|(_, held)| held.iter().map(|(_, position)| *position).min())
        .max()
}

/// The newest position of any partition, of any split, in the positions document `found`.
fn newest_position(found: &Document) -> Option<i64> {
    let split =
        found.get_document("partitions").ok().into_iter().flat_map(|p| p.iter().filter_map(|(_, v)| v.as_i64()));
    split.chain(found.get_i64("position").ok()).max()
}

/// The field of the positions document that holds `partition`'s position: `position` when the queue is not
/// split, else `partitions.<index>of<count>`.
fn position_field(partition: Partition) -> String {
    if partition.is_split() {
        format!("partitions.{}", partition.key())
    } else {
        "position".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_stored_position_is_of_any_partition_of_any_split() {
        assert_eq!(newest_position(&doc! {}), None);
        assert_eq!(newest_position(&doc! { "position": 7_i64 }), Some(7));
        let split = doc! { "position": 7_i64, "partitions": { "0of2": 12_i64, "1of2": 9_i64, "2of3": 15_i64 } };
        assert_eq!(newest_position(&split), Some(15));
        assert_eq!(newest_position(&doc! { "partitions": { "0of2": 4_i64 }, "catchUp": { "1of2": true } }), Some(4));
    }

    #[test]
    fn cursors_round_trip_and_reject_what_this_api_did_not_issue() {
        let cursor = ListCursor { key: list_key(DateTime::from_millis(1_764_201_600_123), Uuid::nil()) };
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
        let short = ListCursor::decode("12_00000000-0000-0000-0000-000000000000").expect("unpadded millis");
        assert_eq!(short.encode(), "0000000000012_00000000-0000-0000-0000-000000000000");
        for bad in [
            "",
            "garbage",
            "12_not-a-uuid",
            "x_00000000-0000-0000-0000-000000000000",
            "-5_00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(ListCursor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_loss_is_pending_with_its_mark_or_without_one_as_earlier_releases_recorded_it() {
        let part = Partition { index: 1, count: 2 };
        let id = ObjectId::new();
        let marked = doc! { "catchUp": { "1of2": true }, "catchUpMark": { "1of2": id } };
        assert_eq!(pending_mark(&marked, part), Some(Some(id)));
        assert_eq!(pending_mark(&doc! { "catchUp": { "1of2": true } }, part), Some(None));
        assert_eq!(pending_mark(&doc! { "catchUp": { "1of2": false }, "catchUpMark": { "1of2": id } }, part), None);
        assert_eq!(pending_mark(&doc! { "catchUp": { "0of2": true } }, part), None, "another partition's");
        assert_eq!(pending_mark(&doc! { "partitions": { "1of2": 4_i64 } }, part), None);
    }

    #[test]
    fn a_new_split_starts_where_the_split_it_replaces_left_off() {
        let part = |index, count| Partition { index, count };
        // Its own position first.
        let own = doc! { "position": 9_i64, "partitions": { "0of2": 40_i64, "1of2": 15_i64 } };
        assert_eq!(chain_start(&own, part(0, 1)), Some(9));
        assert_eq!(chain_start(&own, part(1, 2)), Some(15));
        // None yet: the lowest of the split that reached furthest.
        let two = doc! { "partitions": { "0of2": 40_i64, "1of2": 15_i64 } };
        assert_eq!(chain_start(&two, part(0, 1)), Some(15));
        assert_eq!(chain_start(&two, part(2, 3)), Some(15));
        let older = doc! { "position": 5_i64, "partitions": { "0of3": 30_i64, "1of3": 31_i64, "2of3": 29_i64 } };
        assert_eq!(chain_start(&older, part(0, 2)), Some(29));
        // A split one of whose partitions never stored a position says nothing of where it left off.
        let partial = doc! { "position": 5_i64, "partitions": { "0of3": 30_i64, "2of3": 29_i64 } };
        assert_eq!(chain_start(&partial, part(0, 2)), Some(5));
        assert_eq!(chain_start(&doc! { "partitions": { "0of3": 30_i64 } }, part(0, 2)), None);
        // A read model that never handled a marker, and its own split only partly stored.
        assert_eq!(chain_start(&doc! {}, part(0, 1)), None);
        assert_eq!(chain_start(&doc! { "partitions": { "1of2": 7_i64, "xofy": 3_i64 } }, part(0, 2)), None);
    }

    #[test]
    fn list_keys_sort_as_placed_at_then_id() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let keys = [
            list_key(DateTime::from_millis(999), b),
            list_key(DateTime::from_millis(1_000), a),
            list_key(DateTime::from_millis(1_000), b),
            list_key(DateTime::from_millis(1_764_201_600_123), a),
        ];
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
    }
}
