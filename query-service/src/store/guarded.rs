//! The one write every projection makes: a document replaced only by a newer version of itself. Duplicates and
//! reordering are no-ops, so at-least-once delivery has exactly-once effects.

use mongodb::bson::{doc, Document, RawDocumentBuf};
use mongodb::error::ErrorKind;
use mongodb::{Collection, Database};

use super::operation::{bounded, StoreError};

/// A document of a read model and the version that wrote it: stored only where the stored one is older (or none
/// is). `document` holds every field but `_id` and `version`, which the write adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    pub id: String,
    pub version: i64,
    pub document: Document,
}

impl Guarded {
    /// The document as stored: `_id`, the fields, `version`.
    pub fn stored(&self) -> Document {
        let mut stored = doc! { "_id": &self.id };
        stored.extend(self.document.clone());
        stored.insert("version", self.version);
        stored
    }
}

/// What the guarded write makes of `document` in a read model held as `stored` (by id): the newest version wins,
/// whatever the order writes come in. The same rule as [`write`], without MongoDB: for replays, checks and tests.
pub fn keep_newest(stored: &mut std::collections::HashMap<String, Guarded>, document: Guarded) {
    if stored.get(&document.id).is_none_or(|seen| seen.version < document.version) {
        stored.insert(document.id.clone(), document);
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The view now holds this event's version.
    Applied,
    /// The view already held exactly this version: an earlier attempt landed (its answer lost, or the process
    /// crashed before it announced it). Nothing written; waiters must still be told.
    AlreadyStored,
    /// The view already held a newer version: a duplicate or a late arrival, nothing written.
    Stale,
    /// MongoDB refused this view's write for a reason a retry of the same write will not change (the server's
    /// error, code included).
    Failed(String),
}

/// Rounds of the guarded write for documents whose upsert answered duplicate key while no newer version was
/// stored (an insert of an older version raced it); past them the document counts as failed.
const DUPLICATE_KEY_ROUNDS: usize = 3;

/// The version-guarded upsert of `documents` into `collection` of `database`, in one round trip (unordered: each
/// statement stands alone). A duplicate key does not by itself mean "already newer" — an insert of an older version
/// may have raced the upsert, or another unique index refused it — so those documents are looked up and written
/// again (at most [`DUPLICATE_KEY_ROUNDS`] rounds, one round trip each); any other refusal of one document is that
/// document's [`ApplyOutcome::Failed`].
pub async fn write(
    database: &Database,
    collection: &str,
    documents: &[Guarded],
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let mut outcomes = vec![ApplyOutcome::Applied; documents.len()];
    let mut pending: Vec<usize> = (0..documents.len()).collect();
    for round in 0..=DUPLICATE_KEY_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<&Guarded> = pending.iter().filter_map(|&i| documents.get(i)).collect();
        let answers = upsert(database, collection, &batch).await?;
        let mut duplicates = Vec::new();
        for (&index, answer) in pending.iter().zip(answers) {
            match answer {
                Upserted::Written => outcomes[index] = ApplyOutcome::Applied,
                Upserted::DuplicateKey(reason) => {
                    outcomes[index] = ApplyOutcome::Failed(reason);
                    duplicates.push(index);
                }
                Upserted::Refused(reason) => outcomes[index] = ApplyOutcome::Failed(reason),
            }
        }
        if duplicates.is_empty() || round == DUPLICATE_KEY_ROUNDS {
            break;
        }
        // What is stored now decides: this version or a newer one ends it; an older one or none is written again.
        let ids = duplicates.iter().filter_map(|&i| documents.get(i)).map(|d| d.id.as_str());
        let stored = stored_versions(&database.collection(collection), ids).await?;
        pending = Vec::new();
        for index in duplicates {
            let document = &documents[index];
            match stored.get(&document.id) {
                Some(&version) if version == document.version => outcomes[index] = ApplyOutcome::AlreadyStored,
                Some(&version) if version > document.version => outcomes[index] = ApplyOutcome::Stale,
                _ => pending.push(index),
            }
        }
    }
    Ok(outcomes)
}

/// What MongoDB answered for one statement of a guarded upsert.
#[derive(Debug)]
enum Upserted {
    Written,
    DuplicateKey(String),
    Refused(String),
}

/// One `update` command: for each document, `$set` it where the stored version is older, upserting.
async fn upsert(database: &Database, collection: &str, documents: &[&Guarded]) -> Result<Vec<Upserted>, StoreError> {
    let updates: Vec<Document> = documents
        .iter()
        .map(|d| {
            let mut set = d.document.clone();
            set.insert("version", d.version);
            doc! { "q": { "_id": &d.id, "version": { "$lt": d.version } }, "u": { "$set": set }, "upsert": true }
        })
        .collect();
    // `run_command` applies no concern of the database's own: the durable one is named here (see `concerns`).
    let concern = super::concerns::durable_of(database);
    let concern = mongodb::bson::to_document(&concern).map_err(|err| StoreError::Refused(err.to_string()))?;
    let command = doc! { "update": collection, "updates": updates, "ordered": false, "writeConcern": concern };
    let reply = bounded(database.run_command(command)).await?;
    if let Ok(concern) = reply.get_document("writeConcernError") {
        return Err(StoreError::Refused(concern.to_string()));
    }
    let mut answers: Vec<Upserted> = documents.iter().map(|_| Upserted::Written).collect();
    for error in reply.get_array("writeErrors").map(|e| e.as_slice()).unwrap_or_default() {
        let error = error.as_document().ok_or_else(|| StoreError::Refused(error.to_string()))?;
        let code = error.get_i32("code").unwrap_or_default();
        let index = error.get_i32("index").ok().and_then(|i| usize::try_from(i).ok());
        let Some(answer) = index.and_then(|i| answers.get_mut(i)) else {
            return Err(StoreError::Refused(error.to_string()));
        };
        let reason = format!("mongodb refused the view write: {error}");
        *answer = if code == 11000 { Upserted::DuplicateKey(reason) } else { Upserted::Refused(reason) };
    }
    Ok(answers)
}

/// The stored version of each of `ids` that exists in `collection`.
async fn stored_versions(
    collection: &Collection<Document>,
    ids: impl Iterator<Item = &str>,
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    use futures_util::TryStreamExt as _;
    let ids: Vec<&str> = ids.collect();
    let find = collection.find(doc! { "_id": { "$in": ids } }).projection(doc! { "version": 1 });
    let found: Vec<Document> = bounded(async { find.await?.try_collect().await }).await?;
    Ok(found.iter().filter_map(|d| Some((d.get_str("_id").ok()?.to_owned(), d.get_i64("version").ok()?))).collect())
}

/// Most documents one load operation carries.
const LOAD_DOCUMENTS: usize = 500;
/// Most bytes one load operation carries (unless one document alone is larger).
const LOAD_BYTES: usize = 512 * 1024;

/// Loads documents into a generation being built, in operations of at most [`LOAD_DOCUMENTS`] and [`LOAD_BYTES`]
/// each: a whole page in one insert could take a busy store longer than [`super::OPERATION_TIMEOUT`], time out on
/// every try, and never load. Each operation is one unordered `insert_many`, then the guarded write for those that
/// already existed (the live projector got there first, or an earlier try landed). Many times faster than one
/// upsert per document, and the same result.
pub async fn load_into(
    database: &Database,
    collection: &Collection<Document>,
    documents: &[Guarded],
) -> Result<(), StoreError> {
    let stored = documents
        .iter()
        .map(|document| RawDocumentBuf::from_document(&document.stored()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| StoreError::Refused(err.to_string()))?;
    let sizes: Vec<usize> = stored.iter().map(|raw| raw.as_bytes().len()).collect();
    let raw = collection.clone_with_type::<RawDocumentBuf>();
    for batch in batches(&sizes, LOAD_DOCUMENTS, LOAD_BYTES) {
        load_batch(database, &raw, &documents[batch.clone()], &stored[batch]).await?;
    }
    Ok(())
}

/// One operation of [`load_into`]: `documents`, stored as `stored`. A document the store refuses for a reason a
/// retry will not change (a write error other than a duplicate key; a duplicate key no stored version explains)
/// fails the load as [`StoreError::Refused`]: a page is loaded whole or not at all, never reported loaded without
/// one of its documents.
async fn load_batch(
    database: &Database,
    collection: &Collection<RawDocumentBuf>,
    documents: &[Guarded],
    stored: &[RawDocumentBuf],
) -> Result<(), StoreError> {
    let existing: Vec<Guarded> = match bounded(collection.insert_many(stored).ordered(false)).await {
        Ok(_) => return Ok(()),
        Err(StoreError::Mongo(err)) => match err.kind.as_ref() {
            ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
                let errors = failure.write_errors.as_deref().unwrap_or_default();
                if let Some(refused) = errors.iter().find(|e| e.code != 11000) {
                    return Err(StoreError::Refused(format!("mongodb refused a loaded document: {refused:?}")));
                }
                errors.iter().filter_map(|e| documents.get(e.index)).cloned().collect()
            }
            _ => return Err(StoreError::Mongo(err)),
        },
        Err(err) => return Err(err),
    };
    let outcomes = write(database, collection.name(), &existing).await?;
    match outcomes.into_iter().find_map(|outcome| match outcome {
        ApplyOutcome::Failed(reason) => Some(reason),
        _ => None,
    }) {
        Some(reason) => Err(StoreError::Refused(reason)),
        None => Ok(()),
    }
}

/// Consecutive runs of the items whose sizes are `sizes`, each of at most `most` items and `most_bytes` bytes (an
/// item larger than that alone is a run of its own).
fn batches(sizes: &[usize], most: usize, most_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, &size) in sizes.iter().enumerate() {
        if index > start && (index - start == most || bytes + size > most_bytes) {
            runs.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        runs.push(start..sizes.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_document_is_stored_with_its_id_and_version() {
        let guarded = Guarded { id: "a".to_owned(), version: 3, document: doc! { "x": 1 } };
        assert_eq!(guarded.stored(), doc! { "_id": "a", "x": 1, "version": 3_i64 });
    }

    #[test]
    fn a_load_is_cut_into_runs_of_bounded_count_and_size_in_order() {
        assert_eq!(batches(&[], 2, 100), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[10; 5], 2, 100), [0..2, 2..4, 4..5]);
        assert_eq!(batches(&[40, 40, 40, 10], 10, 100), [0..2, 2..4]);
        // One item larger than the byte limit goes alone; nothing is dropped.
        assert_eq!(batches(&[10, 500, 10], 10, 100), [0..1, 1..2, 2..3]);
        assert_eq!(batches(&[500], 10, 100), vec![std::ops::Range { start: 0, end: 1 }]);
        assert_eq!(batches(&[50, 50], 10, 100).len(), 1, "both in one run");
    }
}
