//! The relay's statements: reading the outbox (backlog, pages of the log, one order's events, the head), marking
//! rows published, the append barrier's watermark, the relay's progress row, and the read models it delivers to.

use command_service::store::{self, progress, read_models};

use crate::database::Database;
use crate::given::{place, recorded};

/// Places `n` orders; their events' sequences.
async fn events(db: &Database, n: usize) -> Vec<i64> {
    let mut sequences = Vec::new();
    for _ in 0..n {
        sequences.push(recorded(place(db, "cust-relay", None).await.2).sequence);
    }
    sequences
}

#[tokio::test]
async fn the_backlog_is_what_is_neither_marked_nor_published_through_a_slot() {
    let db = Database::new().await;
    assert_eq!(store::head(&db.pool).await.expect("head"), 0, "an empty log's head");
    let sequences = events(&db, 4).await;
    let backlog = store::unpublished(&db.pool, 10).await.expect("backlog");
    assert_eq!(backlog.iter().map(|row| row.sequence).collect::<Vec<_>>(), sequences);
    assert_eq!(store::unpublished(&db.pool, 2).await.expect("a page").len(), 2, "at most the limit");
    assert_eq!(store::mark_published(&db.pool, &sequences[..1]).await.expect("marked"), 1);
    assert_eq!(store::mark_published(&db.pool, &sequences[..2]).await.expect("marked"), 1, "marked once only");
    assert_eq!(progress::oldest_waiting(&db.pool).await.expect("waiting"), (2, Some(sequences[2])));
    // A slot that published through the third event takes it out of the backlog without a mark.
    progress::hand_to(&db.pool, Some("slot_a")).await.expect("handed");
    progress::published_through(&db.pool, "slot_b", sequences[3]).await.expect("another slot's progress");
    progress::published_through(&db.pool, "slot_a", sequences[2]).await.expect("the slot's progress");
    progress::published_through(&db.pool, "slot_a", sequences[1]).await.expect("an older position");
    let now = progress::read(&db.pool).await.expect("progress");
    assert_eq!((now.slot.as_deref(), now.published_through), (Some("slot_a"), sequences[2]), "it only grows");
    let left = store::unpublished(&db.pool, 10).await.expect("backlog");
    assert_eq!(left.iter().map(|row| row.sequence).collect::<Vec<_>>(), [sequences[3]]);
    let (count, age) = progress::backlog(&db.pool).await.expect("backlog figures");
    assert!(count == 1 && age >= 0.0, "{count} {age}");
    progress::hand_to(&db.pool, None).await.expect("back to notify");
    assert_eq!(progress::read(&db.pool).await.expect("progress").slot, None);
}

#[tokio::test]
async fn pages_of_the_log_and_of_one_order_come_in_sequence_order() {
    let db = Database::new().await;
    let sequences = events(&db, 3).await;
    let page = store::events_after(&db.pool, sequences[0], 10).await.expect("a page");
    assert_eq!(page.iter().map(|row| row.sequence).collect::<Vec<_>>(), sequences[1..]);
    assert_eq!(store::events_after(&db.pool, 0, 1).await.expect("a page")[0].sequence, sequences[0]);
    let order = page[0].order_id;
    let own = store::order_events_after(&db.pool, order, 0, 10).await.expect("its events");
    assert_eq!(own.iter().map(|row| (row.order_id, row.order_version)).collect::<Vec<_>>(), [(order, 1)]);
    assert!(store::order_events_after(&db.pool, order, sequences[1], 10).await.expect("none after").is_empty());
    let envelope = own[0].clone().into_envelope();
    assert_eq!((envelope.sequence, envelope.version, envelope.schema_version), (sequences[1], 1, 2));
    assert_eq!(store::head(&db.pool).await.expect("head"), sequences[2]);
}

#[tokio::test]
async fn the_watermark_is_settled_when_no_appender_holds_the_barrier() {
    let db = Database::new().await;
    assert_eq!(store::Watermark::read(&db.pool).await.expect("read"), None, "no sequence allocated yet");
    let sequences = events(&db, 2).await;
    let mark = store::Watermark::read(&db.pool).await.expect("read").expect("a watermark");
    assert_eq!(mark.through, sequences[1]);
    assert!(mark.is_settled(&db.pool).await.expect("settled"));
}

#[tokio::test]
async fn read_models_registered_before_anything_is_published_are_told_the_whole_log_once() {
    let db = Database::new().await;
    events(&db, 1).await;
    let pending = read_models::register(&db.pool, &["orders", "customer-summary"]).await.expect("registered");
    assert_eq!(pending.into_iter().collect::<Vec<_>>(), ["customer-summary", "orders"]);
    read_models::whole_log_told(&db.pool, "orders").await.expect("told");
    let sequences = events(&db, 1).await;
    store::mark_published(&db.pool, &sequences).await.expect("published");
    // Registered again: still pending for the one not told; one registered after publishing starts is not.
    let pending = read_models::register(&db.pool, &["orders", "customer-summary", "daily-sales"]).await.expect("again");
    assert_eq!(pending.into_iter().collect::<Vec<_>>(), ["customer-summary"]);
    assert!(read_models::last_markers(&db.pool).await.expect("markers").is_empty());
    read_models::markers_routed(&db.pool, &["orders".to_owned()], 7).await.expect("routed");
    read_models::markers_routed(&db.pool, &["orders".to_owned(), "daily-sales".to_owned()], 5).await.expect("again");
    let markers = read_models::last_markers(&db.pool).await.expect("markers");
    assert_eq!(markers.into_iter().collect::<Vec<_>>(), [("daily-sales".to_owned(), 5), ("orders".to_owned(), 5)]);
}
