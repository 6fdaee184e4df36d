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

    /// Placed → Confirmed → Shipped; Placed or Confirmed → Cancelled. Anything else is refused with a sentence a
    /// person understands.
    pub fn apply(self, from: OrderStatus) -> Result<OrderStatus, String> {
        use OrderStatus::*;
        match (self, from) {
            (Self::Confirm, Placed) => Ok(Confirmed),
            (Self::Ship, Confirmed) => Ok(Shipped),
            (Self::Cancel, Placed | Confirmed) => Ok(Cancelled),
            (Self::Confirm, Confirmed) => Err("The order is already confirmed.".to_owned()),
            (Self::Ship, Placed) => Err("The order must be confirmed before it can be shipped.".to_owned()),
            (Self::Ship, Shipped) => Err("The order has already been shipped.".to_owned()),
            (Self::Cancel, Shipped) => Err("The order has been shipped and can no longer be cancelled.".to_owned()),
            (_, Cancelled) => Err(format!("The order is cancelled; it cannot be {}.", self.past_participle())),
            (Self::Confirm, Shipped) => Err("The order has already been shipped.".to_owned()),
        }
    }

    /// Every status this transition moves an order from, and the one it moves it to (the same from each).
    pub fn applies_from(self) -> (Vec<OrderStatus>, OrderStatus) {
        use OrderStatus::*;
        let from: Vec<(OrderStatus, OrderStatus)> = [Placed, Confirmed, Shipped, Cancelled]
            .into_iter()
            .filter_map(|status| self.apply(status).ok().map(|next| (status, next)))
            .collect();
        let to = match self {
            Self::Confirm => Confirmed,
            Self::Ship => Shipped,
            Self::Cancel => Cancelled,
        };
        debug_assert!(from.iter().all(|(_, next)| *next == to));
        (from.into_iter().map(|(status, _)| status).collect(), to)
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
        assert_eq!(Transition::Confirm.applies_from(), (vec![Placed], Confirmed));
        assert_eq!(Transition::Ship.applies_from(), (vec![Confirmed], Shipped));
        assert_eq!(Transition::Cancel.applies_from(), (vec![Placed, Confirmed], Cancelled));
    }

    #[test]
    fn the_happy_paths_move_forward() {
        assert_eq!(Transition::Confirm.apply(Placed), Ok(Confirmed));
        assert_eq!(Transition::Ship.apply(Confirmed), Ok(Shipped));
        assert_eq!(Transition::Cancel.apply(Placed), Ok(Cancelled));
        assert_eq!(Transition::Cancel.apply(Confirmed), Ok(Cancelled));
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
            let why = transition.apply(from).expect_err("refused");
            assert!(why.ends_with('.') && why.len() > 10, "{transition:?} from {from:?}: {why}");
        }
        assert!(Transition::Cancel.apply(Cancelled).expect_err("refused").contains("cancelled again"));
    }

    #[test]
    fn reasons_are_bounded_in_characters() {
        assert_eq!(parse_reason(None), Ok(None));
        assert!(parse_reason(Some("é".repeat(500))).is_ok());
        assert!(parse_reason(Some("x".repeat(501))).is_err());
    }
}
