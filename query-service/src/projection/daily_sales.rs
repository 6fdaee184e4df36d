//! The sales dashboard projection: each event writes the one fact of its step (see [`crate::store::daily`]) — an
//! order placed on its `placedAt` day, confirmed, shipped (with its total, the day's revenue) or cancelled on the
//! day of its `updatedAt` — keyed by order and step, so it is written once whatever the delivery does.

use mongodb::bson::doc;
use shared_events::{EventType, OrderEvent};

use super::projections::{day_of, Projection};
use crate::store::daily::Step;
use crate::store::models::{ReadModel, DAILY_SALES};
use crate::store::Guarded;

#[derive(Debug)]
pub struct DailySales;

impl Projection for DailySales {
    fn model(&self) -> &'static ReadModel {
        &DAILY_SALES
    }

    fn apply(&self, event: &OrderEvent) -> Result<Vec<Guarded>, String> {
        let state = &event.state;
        let (step, at) = match event.event_type {
            EventType::OrderPlaced => (Step::Placed, state.placed_at),
            EventType::OrderConfirmed => (Step::Confirmed, state.updated_at),
            EventType::OrderShipped => (Step::Shipped, state.updated_at),
            EventType::OrderCancelled => (Step::Cancelled, state.updated_at),
        };
        let document = doc! {
            "orderId": event.order_id.to_string(),
            "day": day_of(at),
            "currency": &state.currency,
            "step": step.as_str(),
            "amount": state.total.to_string(),
        };
        Ok(vec![Guarded { id: format!("{}:{}", event.order_id, step.as_str()), version: event.version, document }])
    }
}

#[cfg(test)]
mod tests {
    use super::super::projections::given::{applied, order_life};
    use super::*;
    use crate::store::daily::{figures, DayFigures, Fact};
    use std::collections::BTreeMap;
    use EventType::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped};

    fn dashboard_after(events: &[OrderEvent]) -> BTreeMap<(String, String), DayFigures> {
        let facts: Vec<Fact> = applied(&DailySales, events)
            .values()
            .map(|g| Fact {
                day: g.document.get_str("day").expect("day").to_owned(),
                currency: g.document.get_str("currency").expect("currency").to_owned(),
                step: Step::ALL
                    .into_iter()
                    .find(|s| Some(s.as_str()) == g.document.get_str("step").ok())
                    .expect("a step"),
                amount: g.document.get_str("amount").expect("amount").parse().expect("a decimal"),
            })
            .collect();
        figures(&facts)
    }

    fn day(day: &str) -> (String, String) {
        (day.to_owned(), "EUR".to_owned())
    }

    #[test]
    fn given_an_order_through_its_life_when_projected_then_each_step_counts_once_on_its_own_day() {
        // Placed 1 Dec 23:00 UTC; confirmed a day later, shipped two days later.
        let events = order_life(1, "c1", "EUR", "19.99", &[OrderPlaced, OrderConfirmed, OrderShipped]);
        let days = dashboard_after(&events);
        assert_eq!(days[&day("2026-12-01")], DayFigures { placed: 1, ..DayFigures::default() });
        assert_eq!(days[&day("2026-12-02")], DayFigures { confirmed: 1, ..DayFigures::default() });
        let shipped = &days[&day("2026-12-03")];
        assert_eq!((shipped.shipped, shipped.revenue.to_string()), (1, "19.99".to_owned()));
        assert_eq!(days.len(), 3);
    }

    #[test]
    fn given_duplicates_reordering_and_a_cancellation_when_projected_then_nothing_counts_twice() {
        let mut events = order_life(1, "c1", "EUR", "1.01", &[OrderPlaced, OrderConfirmed, OrderShipped]);
        events.extend(order_life(2, "c2", "EUR", "5.00", &[OrderPlaced, OrderCancelled]));
        let in_order = dashboard_after(&events);
        let mut redelivered: Vec<OrderEvent> = events.iter().rev().cloned().collect();
        redelivered.extend(events.iter().cloned());
        redelivered.extend(events.iter().skip(1).step_by(2).cloned());
        assert_eq!(dashboard_after(&redelivered), in_order);
        let first = &in_order[&day("2026-12-01")];
        assert_eq!(first.placed, 2);
        let second = &in_order[&day("2026-12-02")];
        assert_eq!((second.confirmed, second.cancelled, second.shipped), (1, 1, 0));
        assert_eq!(in_order[&day("2026-12-03")].revenue.to_string(), "1.01", "a cancelled order earns nothing");
    }
}
