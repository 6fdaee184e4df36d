//! The lifecycle statement (`store::change`) against the domain: for every status × transition × expected version
//! (none, the order's own, another), the statement changes the order exactly when `decide` accepts the command,
//! into what `decide` says, and when it changes nothing it returns the order as it found it, from which the rule
//! gives the same refusal `decide` gave.

use command_service::domain::{self, decide, ChangeRule, Command, Refusal, Transition};
use command_service::store::Outcome;
use shared_events::OrderStatus;
use uuid::Uuid;

use crate::database::Database;
use crate::given::{change, key, order_in, recorded};

/// What the store holds of one order: its row's status and version, and its events.
async fn stored(db: &Database, order_id: Uuid) -> (String, i64, Vec<serde_json::Value>) {
    let (status, version): (String, i64) = sqlx::query_as("select status, version from customer_order where id = $1")
        .bind(order_id)
        .fetch_one(&db.pool)
        .await
        .expect("the order");
    let events = sqlx::query_scalar("select payload from outbox where order_id = $1 order by order_version")
        .bind(order_id)
        .fetch_all(&db.pool)
        .await
        .expect("its events");
    (status, version, events)
}

#[tokio::test]
async fn the_statement_changes_an_order_exactly_when_the_domain_decides_it_does() {
    let db = Database::new().await;
    let mut accepted = 0;
    for status in OrderStatus::ALL {
        for transition in [Transition::Confirm, Transition::Ship, Transition::Cancel] {
            for expectation in ["none", "equal", "other"] {
                let case = format!("{transition:?} on a {status:?} order, expected version {expectation}");
                let (order_id, current) = order_in(&db, "cust-table", status).await;
                let expected_version = match expectation {
                    "none" => None,
                    "equal" => Some(current.version),
                    _ if current.version > 1 => Some(current.version - 1),
                    _ => Some(current.version + 1),
                };
                let reason = Some("changed my mind".to_owned());
                let now = domain::now();
                let command = Command::Change { transition, expected_version, cancel_reason: reason.clone() };
                let decided = decide(Some(&current), &command, now);
                let rule = ChangeRule::new(transition, expected_version, reason, now);
                let before = stored(&db, order_id).await;
                match (decided, change(&db, order_id, None, &rule, None).await) {
                    (Ok(decided), Outcome::Recorded(done)) => {
                        accepted += 1;
                        assert_eq!((done.version, done.status), (decided.version, decided.state.status), "{case}");
                        let (status, version, events) = stored(&db, order_id).await;
                        assert_eq!((status.as_str(), version), (decided.state.status.as_str(), decided.version));
                        let payload = serde_json::to_value(&decided.state).expect("json");
                        assert_eq!(events.last(), Some(&payload), "{case}: the event is the order decide left");
                        assert_eq!(events.len(), before.2.len() + 1, "{case}");
                    }
                    (Err(refusal), Outcome::Unchanged(Some((version, found)))) => {
                        assert_eq!((version, found), (current.version, current.state.status), "{case}");
                        assert_eq!(rule.admit(version, found), Err(refusal), "{case}");
                        assert_eq!(stored(&db, order_id).await, before, "{case}: nothing written");
                    }
                    (decided, outcome) => panic!("{case}: the domain decided {decided:?}, the store {outcome:?}"),
                }
            }
        }
    }
    // Placed: confirm and cancel; confirmed: ship and cancel; each with no expectation and the right one.
    assert_eq!(accepted, 8, "the table holds every accepted move");
}

#[tokio::test]
async fn an_order_that_is_not_there_or_not_the_callers_is_not_found() {
    let db = Database::new().await;
    let (order_id, current) = order_in(&db, "cust-owner", OrderStatus::Placed).await;
    let rule = ChangeRule::new(Transition::Confirm, None, None, domain::now());
    assert_eq!(change(&db, Uuid::now_v7(), None, &rule, None).await, Outcome::Unchanged(None));
    assert_eq!(change(&db, order_id, Some("cust-other"), &rule, None).await, Outcome::Unchanged(None));
    assert_eq!(stored(&db, order_id).await.1, current.version, "another customer changed nothing");
    let done = recorded(change(&db, order_id, Some("cust-owner"), &rule, None).await);
    assert_eq!((done.version, done.status), (2, OrderStatus::Confirmed));
    let command = Command::Change { transition: Transition::Confirm, expected_version: None, cancel_reason: None };
    assert_eq!(decide(None, &command, domain::now()), Err(Refusal::NotFound));
}

#[tokio::test]
async fn a_change_sent_again_with_its_key_is_answered_from_the_event_it_recorded() {
    let db = Database::new().await;
    let (order_id, _) = order_in(&db, "cust-keyed", OrderStatus::Placed).await;
    let rule = ChangeRule::new(Transition::Confirm, None, None, domain::now());
    let first = recorded(change(&db, order_id, None, &rule, Some(key("alice", "k-1", "confirm"))).await);
    let again = ChangeRule::new(Transition::Confirm, None, None, domain::now());
    match change(&db, order_id, None, &again, Some(key("alice", "k-1", "confirm"))).await {
        Outcome::KeyUsed(earlier) => {
            assert_eq!((earlier.fingerprint.as_str(), earlier.recorded), ("confirm", Some(first)));
        }
        other => panic!("the retry ran: {other:?}"),
    }
    assert_eq!(db.count("outbox").await, 2, "placed and confirmed, once");
    // The same key of another caller is another key: the command runs, and is refused by the order's status.
    let other = change(&db, order_id, None, &again, Some(key("bob", "k-1", "confirm"))).await;
    assert_eq!(other, Outcome::Unchanged(Some((2, OrderStatus::Confirmed))));
    assert_eq!(db.count("idempotency_key").await, 1, "a command that changed nothing keeps no key");
}
