//! Gaps in the read model: events of the log that the projector dead-lettered (an unknown schema version from a
//! newer writer, a view write MongoDB kept refusing). A checkpoint still passes them, so that one unreadable event
//! does not stall every read; a `minPosition` read whose range holds one says so (`missingPositions`) instead of
//! claiming to be complete. A gap closes when its event is applied after all (redriven, or after an upgrade).
//!
//! Each read model keeps its own (a projection that cannot apply an event leaves the others whole): one document
//! per gap in its gaps collection (`read_model_gaps` for the order views), `{_id: <sequence>, orderId, reason, at}`.

use futures_util::TryStreamExt as _;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::UpdateOptions;
use mongodb::{Collection, Database};

use super::operation::{bounded, StoreError};

/// Most missing positions one read lists.
pub const MAX_LISTED: i64 = 100;

#[derive(Debug, Clone)]
pub struct Gaps {
    collection: Collection<Document>,
}

impl Gaps {
    /// The gaps kept in `collection` of `database`.
    pub fn new(database: &Database, collection: &str) -> Self {
        Self { collection: database.collection(collection) }
    }

    /// Records that the event at `sequence` reached no view, and why (idempotent).
    pub async fn record(&self, sequence: i64, order_id: Option<&str>, reason: &str) -> Result<(), StoreError> {
        let set = doc! { "orderId": order_id, "reason": reason, "at": DateTime::now() };
        let upsert = UpdateOptions::builder().upsert(true).build();
        bounded(self.collection.update_one(doc! { "_id": sequence }, doc! { "$set": set }).with_options(upsert))
            .await
            .map(drop)
    }

    /// Closes the gaps of these sequences: their events have been applied.
    pub async fn close(&self, sequences: &[i64]) -> Result<(), StoreError> {
        bounded(self.collection.delete_many(doc! { "_id": { "$in": sequences } })).await.map(drop)
    }

    /// The open gaps at or below `position`, lowest first, at most `limit`.
    pub async fn up_to(&self, position: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        let find = self.collection.find(doc! { "_id": { "$lte": position } }).sort(doc! { "_id": 1 }).limit(limit);
        let found: Vec<Document> = bounded(async { find.await?.try_collect().await }).await?;
        Ok(found.iter().filter_map(|gap| gap.get_i64("_id").ok()).collect())
    }
}
