//! Gaps in the read model: events of the log that the projector dead-lettered (an unknown schema version from a
//! newer writer, a view write MongoDB kept refusing). A checkpoint still passes them, so that one unreadable event
//! does not stall every read; a `minPosition` read whose range holds one says so (`missingPositions`) instead of
//! claiming to be complete.
//!
//! Each read model keeps its own (a projection that cannot apply an event leaves the others whole): one document
//! per gap in its gaps collection (`read_model_gaps` for the order views), `{_id: <sequence>, orderId, customerId,
//! reason, at, generations}`; `orderId` and `customerId` are what the event says as far as it could be read, and a
//! read of one customer's names only the gaps whose event names that customer or none (decision 0027). A gap
//! belongs to the generations that lack the event (`generations`: the live ones when it was
//! dead-lettered): applying the event to some generations closes the gap for those only, and the document goes
//! when no generation lacks the event any more. So a generation that never got the event — a kept one, rolled back
//! to after a redrive reached only the live ones — still names it, until a rollback or rebuild fills it in
//! (`rebuild`, decision 0011's successor 0020). A gap recorded by an earlier release has no `generations`: it
//! counts for every generation and closes as before, on any application of its event.

use futures_util::TryStreamExt as _;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::UpdateOptions;
use mongodb::{Collection, Database};

use super::operation::{bounded, StoreError};

/// Most missing positions one read lists.
pub const MAX_LISTED: i64 = 100;

/// An open gap of one generation: the event's position, and its order when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub sequence: i64,
    pub order_id: Option<String>,
}

/// The event a gap is of: its position in the log, and its order and customer as far as the event could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GapOf {
    pub sequence: i64,
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
}

impl GapOf {
    /// Of an envelope of the log, whether or not its payload can be read.
    pub fn of_envelope(envelope: &shared_events::Envelope) -> Self {
        Self {
            sequence: envelope.sequence,
            order_id: Some(envelope.order_id.to_string()),
            customer_id: shared_events::upcast::customer_named(&envelope.payload).map(str::to_owned),
        }
    }

    /// Of an event that was read.
    pub fn of_event(event: &shared_events::OrderEvent) -> Self {
        Self {
            sequence: event.sequence,
            order_id: Some(event.order_id.to_string()),
            customer_id: Some(event.state.customer.id.clone()),
        }
    }
}

/// The filter of the gaps that could hold an order of `customer`: those whose event names it, and those whose event
/// names no customer (unreadable that far, or recorded by an earlier release) — it may be theirs.
fn could_be_of(customer: &str) -> Document {
    doc! { "$or": [{ "customerId": customer }, { "customerId": null }, { "customerId": { "$exists": false } }] }
}

#[derive(Debug, Clone)]
pub struct Gaps {
    collection: Collection<Document>,
}

/// The filter of the gaps `generation` lacks: those naming it, and those of an earlier release (naming none).
fn of_generation(generation: &str) -> Document {
    doc! { "$or": [{ "generations": generation }, { "generations": { "$exists": false } }] }
}

impl Gaps {
    /// The gaps kept in `collection` of `database`.
    pub fn new(database: &Database, collection: &str) -> Self {
        Self { collection: database.collection(collection) }
    }

    /// Records that the event `gap` is of reached none of `generations`, and why (idempotent).
    pub async fn record(&self, gap: &GapOf, reason: &str, generations: &[String]) -> Result<(), StoreError> {
        let update = doc! {
            "$set": {
                "orderId": &gap.order_id, "customerId": &gap.customer_id, "reason": reason, "at": DateTime::now(),
            },
            "$addToSet": { "generations": { "$each": generations } },
        };
        let upsert = UpdateOptions::builder().upsert(true).build();
        bounded(self.collection.update_one(doc! { "_id": gap.sequence }, update).with_options(upsert)).await.map(drop)
    }

    /// Closes the gaps of these sequences in `generations`: their events have been applied to them. A gap no
    /// generation lacks any more goes.
    pub async fn close(&self, sequences: &[i64], generations: &[String]) -> Result<(), StoreError> {
        let these = doc! { "$in": sequences };
        bounded(self.collection.delete_many(doc! { "_id": &these, "generations": { "$exists": false } })).await?;
        let pull = doc! { "$pull": { "generations": { "$in": generations } } };
        bounded(self.collection.update_many(doc! { "_id": &these }, pull)).await?;
        bounded(self.collection.delete_many(doc! { "_id": &these, "generations": { "$size": 0 } })).await.map(drop)
    }

    /// The open gaps of `generation` at or below `position`, lowest first, at most `limit`; for a read of one
    /// `customer`'s, only those that could hold an order of theirs.
    pub async fn up_to(
        &self,
        position: i64,
        limit: i64,
        generation: &str,
        customer: Option<&str>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut filter = match customer {
            Some(customer) => doc! { "$and": [of_generation(generation), could_be_of(customer)] },
            None => of_generation(generation),
        };
        filter.insert("_id", doc! { "$lte": position });
        let find = self.collection.find(filter).sort(doc! { "_id": 1 }).limit(limit);
        let found: Vec<Document> = bounded(async { find.await?.try_collect().await }).await?;
        Ok(found.iter().filter_map(|gap| gap.get_i64("_id").ok()).collect())
    }

    /// Every open gap, in any generation (the sequences only).
    pub async fn open(&self) -> Result<Vec<i64>, StoreError> {
        let find = self.collection.find(doc! {}).projection(doc! { "_id": 1 });
        let found: Vec<Document> = bounded(async { find.await?.try_collect().await }).await?;
        Ok(found.iter().filter_map(|gap| gap.get_i64("_id").ok()).collect())
    }

    /// Every open gap of `generation`, lowest first.
    pub async fn of(&self, generation: &str) -> Result<Vec<Gap>, StoreError> {
        let find = self.collection.find(of_generation(generation)).sort(doc! { "_id": 1 });
        let found: Vec<Document> = bounded(async { find.await?.try_collect().await }).await?;
        Ok(found
            .iter()
            .filter_map(|gap| {
                let order_id = gap.get_str("orderId").ok().map(str::to_owned);
                Some(Gap { sequence: gap.get_i64("_id").ok()?, order_id })
            })
            .collect())
    }
}
