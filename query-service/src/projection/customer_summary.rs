//! The customer summary projection: each event replaces its order's contribution to the customer's summary (see
//! [`crate::store::customers`]) — status, currency, total and when it was placed, from the order's snapshot — when
//! it is newer than the stored one.

use mongodb::bson::doc;
use shared_events::OrderEvent;

use super::projections::{bson_date, Projection};
use crate::store::models::{ReadModel, CUSTOMER_SUMMARY};
use crate::store::Guarded;

#[derive(Debug)]
pub struct CustomerSummary;

impl Projection for CustomerSummary {
    fn model(&self) -> &'static ReadModel {
        &CUSTOMER_SUMMARY
    }

    fn apply(&self, event: &OrderEvent) -> Result<Vec<Guarded>, String> {
        let state = &event.state;
        let document = doc! {
            "customerId": &state.customer.id,
            "status": state.status.as_str(),
            "currency": &state.currency,
            "total": state.total.to_string(),
            "placedAt": bson_date(state.placed_at),
        };
        Ok(vec![Guarded { id: event.order_id.to_string(), version: event.version, document }])
    }
}

#[cfg(test)]
mod tests {
    use super::super::projections::given::{applied, order_life};
    use super::*;
    use crate::store::customers::{Contribution, Summary};
    use shared_events::EventType::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped};

    fn summary_after(events: &[OrderEvent]) -> Summary {
        let stored = applied(&CustomerSummary, events);
        let contributions: Vec<Contribution> = stored
            .values()
            .map(|g| Contribution {
                order_id: g.id.clone(),
                status: g.document.get_str("status").expect("status").to_owned(),
                currency: g.document.get_str("currency").expect("currency").to_owned(),
                total: g.document.get_str("total").expect("total").parse().expect("a decimal"),
                placed_at: *g.document.get_datetime("placedAt").expect("placedAt"),
            })
            .collect();
        Summary::of(&contributions)
    }

    fn spent(summary: &Summary) -> Vec<(String, String)> {
        summary.spent.iter().map(|(c, a)| (c.clone(), a.to_string())).collect()
    }

    #[test]
    fn given_an_order_placed_then_cancelled_when_projected_then_it_moves_from_placed_to_cancelled_and_is_not_spent() {
        let events = order_life(1, "c1", "EUR", "10.50", &[OrderPlaced, OrderCancelled]);
        let placed = summary_after(&events[..1]);
        assert_eq!((placed.orders, placed.by_status.get("Placed")), (1, Some(&1)));
        assert_eq!(spent(&placed), [("EUR".to_owned(), "10.50".to_owned())]);
        let cancelled = summary_after(&events);
        assert_eq!(cancelled.orders, 1, "the order moved, it was not counted twice");
        assert_eq!(cancelled.by_status.get("Placed"), None);
        assert_eq!(cancelled.by_status.get("Cancelled"), Some(&1));
        assert!(spent(&cancelled).is_empty(), "a cancelled order is not spent");
    }

    #[test]
    fn given_duplicated_and_reordered_events_when_projected_then_the_summary_is_the_one_of_the_newest_versions() {
        let mut events = order_life(1, "c1", "EUR", "1.10", &[OrderPlaced, OrderConfirmed, OrderShipped]);
        events.extend(order_life(2, "c1", "EUR", "2.20", &[OrderPlaced, OrderCancelled]));
        events.extend(order_life(3, "c1", "USD", "0.30", &[OrderPlaced]));
        let in_order = summary_after(&events);
        let mut shuffled: Vec<OrderEvent> = events.iter().rev().cloned().collect();
        shuffled.extend(events.iter().cloned());
        shuffled.extend(events.iter().step_by(2).cloned());
        assert_eq!(summary_after(&shuffled), in_order, "duplicates and reordering change nothing");
        assert_eq!(in_order.orders, 3);
        let statuses: Vec<(&str, u64)> = in_order.by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(statuses, [("Cancelled", 1), ("Placed", 1), ("Shipped", 1)]);
        assert_eq!(spent(&in_order), [("EUR".to_owned(), "1.10".to_owned()), ("USD".to_owned(), "0.30".to_owned())]);
    }
}
