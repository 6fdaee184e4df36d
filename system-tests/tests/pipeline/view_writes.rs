//! The projector's writes into the read store, against the real MongoDB-wire server: never into a guessed
//! generation, what a write that already landed, or raced an insert, reports, and a rebuild's page loaded whatever
//! its size.

use mongodb::bson::{doc, Document};
use query_service::store::{ApplyOutcome, ReadModelStore, StoredView};
use std::time::Duration;
use uuid::Uuid;

use crate::helpers::{mongodb_uri, Names};
use crate::proxies::{mongodb_address, through, Proxy};

/// A database of its own, dropped when the test ends (even when it fails).
struct ScratchDatabase(mongodb::Database);

impl ScratchDatabase {
    async fn new() -> Self {
        let client = mongodb::Client::with_uri_str(mongodb_uri()).await.expect("mongo client");
        Self(client.database(&Names::new("test").database))
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // A client of its own: the test's client lives on the test's runtime, which waits for this thread.
        let name = self.0.name().to_owned();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = mongodb::Client::with_uri_str(mongodb_uri()).await {
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.database(&name).drop()).await;
                }
            })
        })
        .join();
    }
}

/// A unique index on `customerId` in `collection`: a second document of one customer is refused for good.
async fn unique_customer(collection: &mongodb::Collection<Document>) {
    let unique = mongodb::IndexModel::builder()
        .keys(doc! { "customerId": 1 })
        .options(mongodb::options::IndexOptions::builder().unique(true).build())
        .build();
    collection.create_index(unique).await.expect("unique index");
}

fn view(id: Uuid, version: i64) -> StoredView {
    let at = mongodb::bson::DateTime::from_millis(1_764_201_600_000);
    StoredView {
        id: id.to_string(),
        customer_id: "writes".to_owned(),
        customer_segment: Some("standard".to_owned()),
        status: "Placed".to_owned(),
        currency: "EUR".to_owned(),
        items: Vec::new(),
        item_count: 0,
        total: "1.00".to_owned(),
        placed_at: at,
        updated_at: at,
        version,
        last_sequence: version,
        cancel_reason: None,
        list_key: format!("{:013}_{id}", at.timestamp_millis()),
    }
}

#[tokio::test]
async fn a_batch_is_never_written_to_a_guessed_generation_when_the_pointer_cannot_be_read() {
    let scratch = ScratchDatabase::new().await;
    // A pointer this process cannot read (a field of the wrong type): which generation is active is unknown.
    let pointers = scratch.0.collection::<Document>("read_model_generations");
    pointers.insert_one(doc! { "_id": "orders", "active": 42_i32 }).await.expect("insert pointer");
    let views = ReadModelStore::new(scratch.0.clone());
    let written = views.apply_all(&[view(Uuid::now_v7(), 1)]).await;
    assert!(written.is_err(), "the batch must fail (and be retried unacked), not go to a default generation");
    let guessed = scratch.0.collection::<Document>("order_views").count_documents(doc! {}).await.expect("count");
    assert_eq!(guessed, 0, "nothing may be written to the default generation");
}

#[tokio::test]
async fn a_retry_that_finds_its_own_version_stored_reports_it_as_stored() {
    let scratch = ScratchDatabase::new().await;
    let views = ReadModelStore::new(scratch.0.clone());
    let id = Uuid::now_v7();
    assert_eq!(views.apply_all(&[view(id, 2)]).await.expect("first write"), [ApplyOutcome::Applied]);
    // The first attempt landed but its answer was lost: the retry must know the version is its own, so that it
    // announces it; an older event is a real duplicate.
    let again = views.apply_all(&[view(id, 2), view(id, 1)]).await.expect("retry");
    assert_eq!(again, [ApplyOutcome::AlreadyStored, ApplyOutcome::Stale]);
}

#[tokio::test]
async fn a_duplicate_key_is_not_taken_for_a_newer_view() {
    let scratch = ScratchDatabase::new().await;
    let views = ReadModelStore::new(scratch.0.clone());
    // E11000 also comes from writes that raced an insert of an *older* version, or from another unique index:
    // here one on the customer makes the second order's upsert fail although no view of it exists at all.
    unique_customer(&scratch.0.collection::<Document>("order_views")).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(views.apply_all(&[view(first, 1)]).await.expect("first"), [ApplyOutcome::Applied]);
    let outcome = views.apply_all(&[view(second, 1)]).await.expect("the batch answers");
    assert!(matches!(&outcome[..], [ApplyOutcome::Failed(reason)] if reason.contains("11000")), "{outcome:?}");
}

#[tokio::test]
async fn the_configured_concerns_are_the_ones_view_writes_switches_and_reads_use_and_the_server_takes_them() {
    use mongodb::options::{Acknowledgment, ReadConcern, ReadConcernLevel};
    use query_service::store::Concerns;
    let name = Names::new("test").database;
    let concerns = Concerns { write: Acknowledgment::Nodes(1), read: ReadConcernLevel::Majority };
    let views = query_service::store::connect(&mongodb_uri(), &name, &concerns).await.expect("a client");
    let durable = views.generation("order_views").write_concern().cloned().expect("a write concern");
    assert_eq!((durable.w, durable.journal), (Some(Acknowledgment::Nodes(1)), Some(true)), "journaled at w: 1");
    let loading = views.generation_for_loading("order_views").write_concern().cloned().expect("a write concern");
    assert_eq!((loading.w, loading.journal), (Some(Acknowledgment::Nodes(1)), None), "a rebuild's bulk load");
    assert_eq!(views.database().read_concern(), Some(&ReadConcern::from(ReadConcernLevel::Majority)));
    // The server takes both: a view written and read back under them.
    let scratch = ScratchDatabase(views.database().clone());
    let view = StoredView::from_event(&system_tests::sample_event(Uuid::new_v4(), 1, 1));
    let outcome = views.apply_all(std::slice::from_ref(&view)).await.expect("written");
    assert!(matches!(outcome.as_slice(), [ApplyOutcome::Applied]), "{outcome:?}");
    let id = view.id.parse().expect("a uuid");
    assert_eq!(views.get(id).await.expect("read").map(|v| v.version), Some(view.version));
    drop(scratch);
}

#[tokio::test]
async fn a_view_write_the_server_cannot_acknowledge_at_the_configured_concern_does_not_count_as_written() {
    use mongodb::options::{Acknowledgment, ReadConcernLevel};
    use query_service::store::Concerns;
    // The MongoDB-wire server is one member: a write concern of two members cannot be met, and the view write must
    // say so rather than count as written at whatever the server's default is.
    let name = Names::new("test").database;
    let concerns = Concerns { write: Acknowledgment::Nodes(2), read: ReadConcernLevel::Local };
    let views = query_service::store::connect(&mongodb_uri(), &name, &concerns).await.expect("a client");
    let scratch = ScratchDatabase(views.database().clone());
    let view = StoredView::from_event(&system_tests::sample_event(Uuid::new_v4(), 1, 1));
    let outcome = views.apply_all(std::slice::from_ref(&view)).await;
    assert!(
        !matches!(outcome.as_deref(), Ok([ApplyOutcome::Applied | ApplyOutcome::AlreadyStored])),
        "a write not acknowledged at w: 2 is no applied view: {outcome:?}"
    );
    drop(scratch);
}

#[tokio::test]
async fn what_the_service_keeps_for_itself_is_read_from_the_primary_whatever_mongodb_uri_prefers() {
    use mongodb::options::{ReadPreference, SelectionCriteria};
    use query_service::store::{Concerns, ReadFrom};
    // docs/configuration.md lets reads by id go to secondaries; positions, pointers, gaps and catch-up marks must not:
    // a lagging
    // secondary would hide a catch-up just recorded, or name a generation that no longer takes writes.
    let uri = format!("{}&readPreference=secondaryPreferred", mongodb_uri());
    let views = query_service::store::connect(&uri, &Names::new("test").database, &Concerns::default())
        .await
        .expect("a client");
    let primary = |criteria: Option<&SelectionCriteria>| {
        matches!(criteria, Some(SelectionCriteria::ReadPreference(ReadPreference::Primary)))
    };
    assert!(primary(views.database().selection_criteria()), "{:?}", views.database().selection_criteria());
    assert!(primary(views.criteria(ReadFrom::Primary).as_ref()));
    let preferred = views.criteria(ReadFrom::Preferred);
    assert!(
        matches!(preferred, Some(SelectionCriteria::ReadPreference(ReadPreference::SecondaryPreferred { .. }))),
        "a read that may go to a secondary follows MONGODB_URI: {preferred:?}"
    );
}

#[tokio::test]
async fn a_page_larger_than_the_store_takes_within_one_operations_time_is_loaded_all_the_same() {
    use query_service::store::{Concerns, Guarded, OPERATION_TIMEOUT};
    // A link (or a store) that takes 256 KiB a second: the page below takes about twice the time any one operation
    // may, in one piece.
    let rate = 256 * 1024;
    let proxy = Proxy::throttled(mongodb_address(&mongodb_uri()), rate).await;
    let name = Names::new("test").database;
    let views = query_service::store::connect(&through(&mongodb_uri(), &proxy), &name, &Concerns::default())
        .await
        .expect("a client");
    let scratch = ScratchDatabase(views.database().clone());
    let filler = "x".repeat(700);
    let page: Vec<Guarded> = (0..3_000)
        .map(|n| Guarded { id: format!("view-{n:05}"), version: 1, document: doc! { "filler": &filler } })
        .collect();
    let bytes: usize = page.iter().map(|g| mongodb::bson::to_vec(&g.stored()).expect("bson").len()).sum();
    assert!(bytes as f64 / rate as f64 > 1.5 * OPERATION_TIMEOUT.as_secs_f64(), "{bytes} bytes");

    views.load("order_views_v1", &page).await.expect("the page is loaded");
    let loaded = scratch.0.collection::<Document>("order_views_v1").count_documents(doc! {}).await.expect("count");
    assert_eq!(loaded, 3_000);
    drop(scratch);
}

#[tokio::test]
async fn a_document_of_a_page_the_store_refuses_fails_the_load_instead_of_going_missing() {
    use query_service::store::Guarded;
    let scratch = ScratchDatabase::new().await;
    let views = ReadModelStore::new(scratch.0.clone());
    // Another unique index refuses the second document for good (E11000 that no newer version explains): the load
    // must say so, not report a page loaded that lacks it.
    unique_customer(&scratch.0.collection::<Document>("order_views_v1")).await;
    let page: Vec<Guarded> = ["a", "b"]
        .into_iter()
        .map(|id| Guarded { id: id.to_owned(), version: 1, document: doc! { "customerId": "same" } })
        .collect();
    let loaded = views.load("order_views_v1", &page).await;
    assert!(loaded.is_err(), "a page with a document the store refused is not loaded: {loaded:?}");
}
