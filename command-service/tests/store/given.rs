//! Orders written through the store the way the service writes them: each step decided by the domain, then its
//! statement run.

use command_service::domain::{self, decide, Change, ChangeRule, Command, Current, NewOrder, Transition};
use command_service::store::{self, KeyUse, LifecycleChange, Outcome, Recorded};
use shared_events::OrderStatus;
use uuid::Uuid;

use crate::database::Database;

/// A valid new order of `customer`: two lines, 44.98 EUR.
pub fn new_order(customer: &str) -> NewOrder {
    let body = serde_json::json!({"customerId": customer, "currency": "EUR", "items": [
        {"sku": "A", "name": "Apples", "quantity": 2, "unitPrice": "19.99"}, {"sku": "B", "quantity": 1, "unitPrice": 5}
    ]});
    NewOrder::parse(serde_json::from_value(body).expect("a command")).expect("valid")
}

/// A key of `caller` for the command whose request is `fingerprint`.
pub fn key<'a>(caller: &'a str, key: &'a str, fingerprint: &'a str) -> KeyUse<'a> {
    KeyUse { caller, key, fingerprint, status_code: 201, location: Some("/queries/orders/x") }
}

/// Places a new order of `customer`: its id, what the domain decided, and how the statement ended.
pub async fn place(db: &Database, customer: &str, key: Option<KeyUse<'_>>) -> (Uuid, Change, Outcome) {
    let order_id = Uuid::now_v7();
    let change = decide(None, &Command::Place(new_order(customer)), domain::now()).expect("a new order is placed");
    let mut conn = db.pool.acquire().await.expect("a connection");
    let outcome = store::place(&mut conn, order_id, &change, None, key).await.expect("the statement runs");
    (order_id, change, outcome)
}

/// Runs `rule` on `order_id` (for `owner`'s commands, when given).
pub async fn change(
    db: &Database,
    order_id: Uuid,
    owner: Option<&str>,
    rule: &ChangeRule,
    key: Option<KeyUse<'_>>,
) -> Outcome {
    let mut conn = db.pool.acquire().await.expect("a connection");
    let change = LifecycleChange { order_id, owner, rule };
    store::change(&mut conn, &change, None, key).await.expect("the statement runs")
}

/// What a command recorded, or a panic naming what it did instead.
pub fn recorded(outcome: Outcome) -> Recorded {
    match outcome {
        Outcome::Recorded(recorded) => recorded,
        other => panic!("the command recorded nothing: {other:?}"),
    }
}

/// The transitions that take a new order to `status`, in order.
pub fn path_to(status: OrderStatus) -> &'static [Transition] {
    match status {
        OrderStatus::Placed => &[],
        OrderStatus::Confirmed => &[Transition::Confirm],
        OrderStatus::Shipped => &[Transition::Confirm, Transition::Ship],
        OrderStatus::Cancelled => &[Transition::Cancel],
    }
}

/// A new order of `customer` in `status`, as the store holds it and as the domain sees it.
pub async fn order_in(db: &Database, customer: &str, status: OrderStatus) -> (Uuid, Current) {
    let (order_id, placed, outcome) = place(db, customer, None).await;
    recorded(outcome);
    let mut current = Current { version: placed.version, state: placed.state };
    for transition in path_to(status) {
        let rule = ChangeRule::new(*transition, None, None, domain::now());
        let decided = rule.apply(&current).expect("the path is allowed");
        let done = recorded(change(db, order_id, None, &rule, None).await);
        assert_eq!((done.version, done.status), (decided.version, decided.state.status));
        current = Current { version: decided.version, state: decided.state };
    }
    (order_id, current)
}
