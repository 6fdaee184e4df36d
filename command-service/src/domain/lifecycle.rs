//! The order's life: which command may move an order from which status, and to where.

use shared_events::{EventType, OrderStatus};

/// A command that changes an existing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Confirm,
    Ship,
    Cancel,
}

/// Most characters in a cancel reason.
pub const MAX_REASON_CHARS: usize = 500;

impl Transition {
    /// The route segment of the command (`/commands/orders/{id}/confirm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Ship => "ship",
            Self::Cancel => "cancel",
        }
    }

    /// The event recorded when the transition happens.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Confirm => EventType::OrderConfirmed,
            Self::Ship => EventType::OrderShipped,
            Self::Cancel => EventType::OrderCancelled,
        }
    }

    /// The status the transition moves an order to, from whichever status it moves it.
    pub fn target(self) -> OrderStatus {
        match self {
            Self::Confirm => OrderStatus::Confirmed,
            Self::Ship => OrderStatus::Shipped,
            Self::Cancel => OrderStatus::Cancelled,
        }
    }

    /// The order's life, in one table: Placed → Confirmed → Shipped; Placed or Confirmed → Cancelled. `None` when
    /// the transition moves an order in status `from`; otherwise why not, in a sentence a person understands.
    pub fn refusal(self, from: OrderStatus) -> Option<String> {
        use OrderStatus::*;
        let why = match (self, from) {
            (Self::Confirm, Placed) | (Self::Ship, Confirmed) | (Self::Cancel, Placed | Confirmed) => return None,
            (Self::Confirm, Confirmed) => "The order is already confirmed.".to_owned(),
            (Self::Ship, Placed) => "The order must be confirmed before it can be shipped.".to_owned(),
            (Self::Ship | Self::Confirm, Shipped) => "The order has already been shipped.".to_owned(),
            (Self::Cancel, Shipped) => "The order has been shipped and can no longer be cancelled.".to_owned(),
            (_, Cancelled) => format!("The order is cancelled; it cannot be {}.", self.past_participle()),
        };
        Some(why)
    }

    /// Every status the transition moves an order from ([`Transition::refusal`] refuses none of them).
    pub fn sources(self) -> Vec<OrderStatus> {
        OrderStatus::ALL.into_iter().filter(|from| self.refusal(*from).is_none()).collect()
    }

    fn past_participle(self) -> &'static str {
        match self {
            Self::Confirm => "confirmed",
            Self::Ship => "shipped",
            Self::Cancel => "cancelled again",
        }
    }
}

/// Checks a cancel reason: at most [`MAX_REASON_CHARS`] characters.
pub fn parse_reason(reason: Option<String>) -> Result<Option<String>, String> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => {
            Err(format!("must be at most {MAX_REASON_CHARS} characters"))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn each_transition_moves_from_the_statuses_it_applies_to_into_one_status() {
        assert_eq!((Transition::Confirm.sources(), Transition::Confirm.target()), (vec![Placed], Confirmed));
        assert_eq!((Transition::Ship.sources(), Transition::Ship.target()), (vec![Confirmed], Shipped));
        assert_eq!((Transition::Cancel.sources(), Transition::Cancel.target()), (vec![Placed, Confirmed], Cancelled));
    }

    #[test]
    fn every_other_move_is_refused_with_a_reason() {
        let refused = [
            (Transition::Confirm, Confirmed),
            (Transition::Confirm, Shipped),
            (Transition::Confirm, Cancelled),
            (Transition::Ship, Placed),
            (Transition::Ship, Shipped),
            (Transition::Ship, Cancelled),
            (Transition::Cancel, Shipped),
            (Transition::Cancel, Cancelled),
        ];
        for (transition, from) in refused {
            let why = transition.refusal(from).expect("refused");
            assert!(why.ends_with('.') && why.len() > 10, "{transition:?} from {from:?}: {why}");
        }
        assert!(Transition::Cancel.refusal(Cancelled).expect("refused").contains("cancelled again"));
    }

    #[test]
    fn reasons_are_bounded_in_characters() {
        assert_eq!(parse_reason(None), Ok(None));
        assert!(parse_reason(Some("é".repeat(500))).is_ok());
        assert!(parse_reason(Some("x".repeat(501))).is_err());
    }
}
