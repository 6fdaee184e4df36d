//! The place statement (`store::place`) and the key it records: a new order with its lines, its event and its key;
//! the key's second use answered from the first's event; another caller's key; an expired key claimed again.

use command_service::store::{idempotency, Outcome};

use crate::database::Database;
use crate::given::{key, place, recorded};

#[tokio::test]
async fn placing_writes_the_order_its_lines_its_event_and_its_key_in_one_statement() {
    let db = Database::new().await;
    let (order_id, change, outcome) = place(&db, "cust-place", Some(key("alice", "k-1", "place"))).await;
    let done = recorded(outcome);
    assert_eq!((done.order_id, done.version, done.status), (order_id, 1, change.state.status));
    assert_eq!((done.total.as_str(), done.currency.as_str()), ("44.98", "EUR"));
    let (customer, total, version): (String, rust_decimal::Decimal, i64) =
        sqlx::query_as("select customer_id, total, version from customer_order where id = $1")
            .bind(order_id)
            .fetch_one(&db.pool)
            .await
            .expect("the order");
    assert_eq!((customer.as_str(), total, version), ("cust-place", change.state.total, 1));
    let lines: Vec<(i32, String, Option<String>, i32)> =
        sqlx::query_as("select line_no, sku, name, quantity from order_line where order_id = $1 order by line_no")
            .bind(order_id)
            .fetch_all(&db.pool)
            .await
            .expect("the lines");
    assert_eq!(lines, [(1, "A".into(), Some("Apples".into()), 2), (2, "B".into(), None, 1)]);
    let (sequence, payload): (i64, serde_json::Value) =
        sqlx::query_as("select sequence, payload from outbox where order_id = $1")
            .bind(order_id)
            .fetch_one(&db.pool)
            .await
            .expect("the event");
    assert_eq!((sequence, payload), (done.sequence, serde_json::to_value(&change.state).expect("json")));
    let kept: i64 = sqlx::query_scalar("select event_sequence from idempotency_key where caller = 'alice'")
        .fetch_one(&db.pool)
        .await
        .expect("the key");
    assert_eq!(kept, done.sequence, "the key names the event it answers from");
}

#[tokio::test]
async fn a_place_without_a_key_keeps_none() {
    let db = Database::new().await;
    recorded(place(&db, "cust-nokey", None).await.2);
    assert_eq!(db.count("idempotency_key").await, 0);
}

#[tokio::test]
async fn a_key_used_again_answers_from_its_first_event_and_runs_nothing() {
    let db = Database::new().await;
    let first = recorded(place(&db, "cust-again", Some(key("alice", "k-1", "place"))).await.2);
    for fingerprint in ["place", "another request"] {
        match place(&db, "cust-again", Some(key("alice", "k-1", fingerprint))).await.2 {
            Outcome::KeyUsed(earlier) => {
                assert_eq!(earlier.fingerprint, "place", "the first request's fingerprint, to compare");
                assert_eq!((earlier.status_code, earlier.location.as_deref()), (201, Some("/queries/orders/x")));
                assert_eq!(earlier.recorded.as_ref(), Some(&first));
            }
            other => panic!("the key's second use ran: {other:?}"),
        }
    }
    assert_eq!((db.count("customer_order").await, db.count("outbox").await), (1, 1));
    // Another caller's key of the same name is another key.
    let other = recorded(place(&db, "cust-again", Some(key("bob", "k-1", "place"))).await.2);
    assert_ne!(other.order_id, first.order_id);
    assert_eq!(db.count("idempotency_key").await, 2);
}

#[tokio::test]
async fn a_key_whose_use_expired_is_claimed_again() {
    let db = Database::new().await;
    let first = recorded(place(&db, "cust-expired", Some(key("alice", "k-1", "place"))).await.2);
    sqlx::query("update idempotency_key set created_at = now() - interval '25 hours'")
        .execute(&db.pool)
        .await
        .expect("aged");
    let second = recorded(place(&db, "cust-expired", Some(key("alice", "k-1", "place"))).await.2);
    assert_ne!(second.order_id, first.order_id, "the command ran again");
    let kept: i64 =
        sqlx::query_scalar("select event_sequence from idempotency_key").fetch_one(&db.pool).await.expect("key");
    assert_eq!(kept, second.sequence, "the key now answers from the new event");
}

#[tokio::test]
async fn forgetting_an_expired_key_leaves_the_live_ones() {
    let db = Database::new().await;
    recorded(place(&db, "cust-forget", Some(key("alice", "old", "place"))).await.2);
    recorded(place(&db, "cust-forget", Some(key("alice", "new", "place"))).await.2);
    sqlx::query("update idempotency_key set created_at = now() - interval '25 hours' where key = 'old'")
        .execute(&db.pool)
        .await
        .expect("aged");
    let mut conn = db.pool.acquire().await.expect("a connection");
    for key in ["old", "new", "unknown"] {
        idempotency::forget_expired(&mut conn, "alice", key).await.expect("the statement runs");
    }
    let left: Vec<String> =
        sqlx::query_scalar("select key from idempotency_key").fetch_all(&db.pool).await.expect("keys");
    assert_eq!(left, ["new"]);
}
