//! Where a command becomes an event: the order as it stands (if any), a command, and either the change the command
//! makes — the event to append and the order it leaves — or why it is refused. Pure: no I/O, and the time is passed
//! in, so every transition and refusal is tested here, in the given / when / then form.

use shared_events::{Customer, EventType, OrderLine, OrderState, OrderStatus, StatusChange};
use time::OffsetDateTime;

use super::{NewOrder, Transition};

/// An order as stored: its version and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub version: i64,
    pub state: OrderState,
}

/// What a client asks of an order.
#[derive(Debug, Clone)]
pub enum Command {
    /// Place a new order.
    Place(NewOrder),
    /// Move an existing order on; refused unless it is at `expected_version` (when given).
    Change { transition: Transition, expected_version: Option<i64>, cancel_reason: Option<String> },
}

/// What an accepted command does: the event it records and the order after it (the event's payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub event_type: EventType,
    /// The order's version after the command.
    pub version: i64,
    pub state: OrderState,
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no such order")]
    NotFound,
    #[error("the order exists already")]
    AlreadyPlaced,
    #[error("the order is at version {current_version}, not {expected}")]
    VersionConflict { expected: i64, current_version: i64, status: OrderStatus },
    #[error("{reason}")]
    NotAllowed { reason: String, current_version: i64, status: OrderStatus },
}

/// Decides `command` on the order `current` (none for an order not placed yet), at `now`.
pub fn decide(current: Option<&Current>, command: &Command, now: OffsetDateTime) -> Result<Change, Refusal> {
    match (command, current) {
        (Command::Place(order), None) => {
            Ok(Change { event_type: EventType::OrderPlaced, version: 1, state: placed(order, now) })
        }
        // Order ids are fresh UUIDv7s: never in practice, but a command must not overwrite an order.
        (Command::Place(_), Some(_)) => Err(Refusal::AlreadyPlaced),
        (Command::Change { .. }, None) => Err(Refusal::NotFound),
        (Command::Change { transition, expected_version, cancel_reason }, Some(current)) => {
            ChangeRule::new(*transition, *expected_version, cancel_reason.clone(), now).apply(current)
        }
    }
}

/// A lifecycle command as the domain rules on it before the order is read: the event it records, what it changes
/// of the order, and what the order must be for it to apply. [`decide`] applies it to an order in hand; the store's
/// single statement is handed it, applies the same condition to the row it locks, and — when it changed nothing —
/// [`ChangeRule::admit`] says why from the order the statement found. So the rule is written here once.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRule {
    pub transition: Transition,
    /// The version the order must be at, when the command names one.
    pub expected_version: Option<i64>,
    /// What the transition changes of an order it applies to: the status it moves to, the time, and the reason
    /// (kept by a cancellation only).
    pub change: StatusChange,
}

impl ChangeRule {
    pub fn new(
        transition: Transition,
        expected_version: Option<i64>,
        cancel_reason: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        let status = transition.target();
        let cancel_reason = cancel_reason.filter(|_| status == OrderStatus::Cancelled);
        Self { transition, expected_version, change: StatusChange { status, updated_at: now, cancel_reason } }
    }

    /// The statuses an order may be in for the rule to apply (at the expected version, when one is named).
    pub fn sources(&self) -> Vec<OrderStatus> {
        self.transition.sources()
    }

    /// Whether the rule applies to an order at `current_version` in `status`, or why not: a stale expected version
    /// first, then the transition's own refusal.
    pub fn admit(&self, current_version: i64, status: OrderStatus) -> Result<(), Refusal> {
        if let Some(expected) = self.expected_version.filter(|expected| *expected != current_version) {
            return Err(Refusal::VersionConflict { expected, current_version, status });
        }
        match self.transition.refusal(status) {
            None => Ok(()),
            Some(reason) => Err(Refusal::NotAllowed { reason, current_version, status }),
        }
    }

    /// The change the rule makes to `current`, or why it does not apply.
    pub fn apply(&self, current: &Current) -> Result<Change, Refusal> {
        self.admit(current.version, current.state.status)?;
        let state = OrderState {
            status: self.change.status,
            updated_at: self.change.updated_at,
            cancel_reason: self.change.cancel_reason.clone(),
            ..current.state.clone()
        };
        Ok(Change { event_type: self.transition.event_type(), version: current.version + 1, state })
    }
}

/// The state of a freshly placed order.
fn placed(order: &NewOrder, now: OffsetDateTime) -> OrderState {
    OrderState {
        customer: Customer { id: order.customer_id.as_str().to_owned(), segment: order.segment.as_str().to_owned() },
        currency: order.currency.as_str().to_owned(),
        status: OrderStatus::Placed,
        items: order
            .lines
            .iter()
            .map(|line| OrderLine {
                sku: line.sku.as_str().to_owned(),
                name: line.name.as_ref().map(|name| name.as_str().to_owned()),
                quantity: line.quantity.get(),
                unit_price: line.unit_price.get(),
                line_total: line.line_total(),
            })
            .collect(),
        total: order.total(),
        placed_at: now,
        updated_at: now,
        cancel_reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_764_201_600 + seconds).expect("a time")
    }

    fn new_order() -> NewOrder {
        let body = r#"{"customerId": "cust-1", "currency": "EUR",
            "items": [{"sku": "A", "quantity": 2, "unitPrice": "19.99"}, {"sku": "B", "quantity": 1, "unitPrice": 5}]}"#;
        NewOrder::parse(serde_json::from_str(body).expect("a command")).expect("valid")
    }

    /// Given the order's history (the changes it went through, oldest first; none: not placed yet)…
    struct Given(Option<Current>);

    fn given(history: &[Command]) -> Given {
        let mut current = None;
        for (n, command) in history.iter().enumerate() {
            let change = decide(current.as_ref(), command, at(n as i64)).expect("the history is valid");
            current = Some(Current { version: change.version, state: change.state });
        }
        Given(current)
    }

    /// …when a command comes…
    impl Given {
        fn when(&self, command: Command) -> Then {
            Then { before: self.0.clone(), outcome: decide(self.0.as_ref(), &command, at(100)) }
        }
    }

    /// …then it records an event and leaves the order so, or it is refused.
    struct Then {
        before: Option<Current>,
        outcome: Result<Change, Refusal>,
    }

    impl Then {
        fn then(self, event_type: EventType, status: OrderStatus) -> Change {
            let change = self.outcome.unwrap_or_else(|refusal| panic!("refused: {refusal}"));
            assert_eq!((change.event_type, change.state.status), (event_type, status));
            assert_eq!(change.version, self.before.as_ref().map_or(1, |b| b.version + 1));
            assert_eq!(change.state.updated_at, at(100));
            change
        }

        fn then_refused(self) -> Refusal {
            self.outcome.expect_err("the command must be refused")
        }
    }

    fn place() -> Command {
        Command::Place(new_order())
    }

    fn change(transition: Transition) -> Command {
        Command::Change { transition, expected_version: None, cancel_reason: None }
    }

    fn confirm() -> Command {
        change(Transition::Confirm)
    }

    fn ship() -> Command {
        change(Transition::Ship)
    }

    fn cancel(reason: Option<&str>) -> Command {
        Command::Change {
            transition: Transition::Cancel,
            expected_version: None,
            cancel_reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn placing_records_order_placed_at_version_1_with_the_exact_total() {
        let change = given(&[]).when(place()).then(EventType::OrderPlaced, Placed);
        assert_eq!(change.state.total.to_string(), "44.98");
        assert_eq!(change.state.items[0].line_total.to_string(), "39.98");
        assert_eq!((change.state.placed_at, change.state.cancel_reason), (at(100), None));
    }

    #[test]
    fn an_order_is_placed_once() {
        assert_eq!(given(&[place()]).when(place()).then_refused(), Refusal::AlreadyPlaced);
    }

    #[test]
    fn a_placed_order_is_confirmed_then_shipped_keeping_what_was_ordered() {
        let confirmed = given(&[place()]).when(confirm()).then(EventType::OrderConfirmed, Confirmed);
        let shipped = given(&[place(), confirm()]).when(ship()).then(EventType::OrderShipped, Shipped);
        assert_eq!(shipped.version, 3);
        assert_eq!((shipped.state.items, shipped.state.total), (confirmed.state.items, confirmed.state.total));
        assert_eq!(shipped.state.placed_at, at(0), "placedAt stays");
    }

    #[test]
    fn a_placed_or_confirmed_order_is_cancelled_with_its_reason() {
        let change = given(&[place()]).when(cancel(Some("changed my mind"))).then(EventType::OrderCancelled, Cancelled);
        assert_eq!(change.state.cancel_reason.as_deref(), Some("changed my mind"));
        given(&[place(), confirm()]).when(cancel(None)).then(EventType::OrderCancelled, Cancelled);
    }

    #[test]
    fn a_reason_only_sticks_to_a_cancellation() {
        let with_reason = Command::Change {
            transition: Transition::Confirm,
            expected_version: None,
            cancel_reason: Some("ignored".to_owned()),
        };
        let change = given(&[place()]).when(with_reason).then(EventType::OrderConfirmed, Confirmed);
        assert_eq!(change.state.cancel_reason, None);
    }

    #[test]
    fn every_move_the_life_of_an_order_does_not_allow_is_refused_with_the_current_state() {
        let histories: [(&str, Vec<Command>, OrderStatus); 4] = [
            ("placed", vec![place()], Placed),
            ("confirmed", vec![place(), confirm()], Confirmed),
            ("shipped", vec![place(), confirm(), ship()], Shipped),
            ("cancelled", vec![place(), cancel(None)], Cancelled),
        ];
        let refused = [
            ("placed", Transition::Ship),
            ("confirmed", Transition::Confirm),
            ("shipped", Transition::Confirm),
            ("shipped", Transition::Ship),
            ("shipped", Transition::Cancel),
            ("cancelled", Transition::Confirm),
            ("cancelled", Transition::Ship),
            ("cancelled", Transition::Cancel),
        ];
        for (name, transition) in refused {
            let (_, history, status) = histories.iter().find(|(n, _, _)| *n == name).expect("a history");
            let refusal = given(history).when(change(transition)).then_refused();
            let version = history.len() as i64;
            assert!(
                matches!(&refusal, Refusal::NotAllowed { reason, current_version, status: s }
                    if *current_version == version && s == status && reason.ends_with('.')),
                "{transition:?} on a {name} order: {refusal:?}"
            );
        }
    }

    #[test]
    fn a_stale_expected_version_is_refused_before_the_transition_is_looked_at() {
        let stale = Command::Change { transition: Transition::Ship, expected_version: Some(1), cancel_reason: None };
        let refusal = given(&[place(), confirm()]).when(stale).then_refused();
        assert_eq!(refusal, Refusal::VersionConflict { expected: 1, current_version: 2, status: Confirmed });
        let current = Command::Change { transition: Transition::Ship, expected_version: Some(2), cancel_reason: None };
        given(&[place(), confirm()]).when(current).then(EventType::OrderShipped, Shipped);
    }

    #[test]
    fn a_change_to_an_order_that_does_not_exist_is_refused() {
        assert_eq!(given(&[]).when(confirm()).then_refused(), Refusal::NotFound);
    }
}
