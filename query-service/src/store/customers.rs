//! The customer summary read model: one document per order in `customer_orders` — the order's contribution to its
//! customer's summary (status, currency, total, when it was placed), replaced only by a newer version of the order —
//! and the summary, derived from a customer's contributions when it is read. An order that moves (Placed →
//! Cancelled) replaces its one contribution; a duplicated or late event changes nothing: the summary is exact
//! under any redelivery.

use mongodb::bson::{doc, DateTime, Document};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr as _;

use super::operation::StoreError;
use super::{ReadFrom, ReadModelStore};

/// Newest orders a summary names.
pub const RECENT_ORDERS: usize = 5;

/// One order's contribution to its customer's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub order_id: String,
    pub status: String,
    pub currency: String,
    pub total: Decimal,
    pub placed_at: DateTime,
}

/// A customer's orders summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub orders: u64,
    /// Orders by their current status.
    pub by_status: BTreeMap<String, u64>,
    /// The totals of the orders not cancelled, per currency.
    pub spent: BTreeMap<String, Decimal>,
    pub first_order_at: Option<DateTime>,
    pub last_order_at: Option<DateTime>,
    /// The newest orders' ids, newest first (placed at, then id, descending).
    pub recent_order_ids: Vec<String>,
}

impl Summary {
    /// The summary of `contributions` (one per order).
    pub fn of(contributions: &[Contribution]) -> Self {
        let mut summary = Self::default();
        for c in contributions {
            summary.orders += 1;
            *summary.by_status.entry(c.status.clone()).or_default() += 1;
            if c.status != "Cancelled" {
                *summary.spent.entry(c.currency.clone()).or_default() += c.total;
            }
            summary.first_order_at = summary.first_order_at.min(Some(c.placed_at)).or(Some(c.placed_at));
            summary.last_order_at = summary.last_order_at.max(Some(c.placed_at));
        }
        let mut newest: Vec<&Contribution> = contributions.iter().collect();
        newest.sort_unstable_by(|a, b| (b.placed_at, &b.order_id).cmp(&(a.placed_at, &a.order_id)));
        summary.recent_order_ids = newest.into_iter().take(RECENT_ORDERS).map(|c| c.order_id.clone()).collect();
        summary
    }
}

/// The contributions of `customer_id` in the active generation of `views` (the customer summary read model), read
/// `from` the members [`ReadFrom`] names.
pub async fn contributions(
    views: &ReadModelStore,
    customer_id: &str,
    from: ReadFrom,
) -> Result<Vec<Contribution>, StoreError> {
    let fields = doc! { "status": 1, "currency": 1, "total": 1, "placedAt": 1 };
    let found = views.find_active(doc! { "customerId": customer_id }, fields, from).await?;
    found.iter().map(contribution).collect()
}

/// A stored contribution, or why it is unreadable.
fn contribution(document: &Document) -> Result<Contribution, StoreError> {
    let unreadable = || StoreError::Refused(format!("an unreadable customer contribution: {document}"));
    let text = |field| document.get_str(field).map_err(|_| unreadable());
    Ok(Contribution {
        order_id: text("_id")?.to_owned(),
        status: text("status")?.to_owned(),
        currency: text("currency")?.to_owned(),
        total: Decimal::from_str(text("total")?).map_err(|_| unreadable())?,
        placed_at: document.get_datetime("placedAt").map_err(|_| unreadable())?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, status: &str, currency: &str, total: &str, placed_at: i64) -> Contribution {
        Contribution {
            order_id: id.to_owned(),
            status: status.to_owned(),
            currency: currency.to_owned(),
            total: Decimal::from_str(total).expect("a decimal"),
            placed_at: DateTime::from_millis(placed_at),
        }
    }

    #[test]
    fn a_summary_counts_every_order_by_status_and_sums_what_was_not_cancelled_per_currency() {
        let summary = Summary::of(&[
            order("a", "Placed", "EUR", "10.10", 3),
            order("b", "Shipped", "EUR", "0.20", 1),
            order("c", "Cancelled", "EUR", "99.99", 7),
            order("d", "Confirmed", "USD", "5.00", 5),
        ]);
        assert_eq!(summary.orders, 4);
        let by_status: Vec<(&str, u64)> = summary.by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(by_status, [("Cancelled", 1), ("Confirmed", 1), ("Placed", 1), ("Shipped", 1)]);
        let spent: Vec<(&str, String)> = summary.spent.iter().map(|(c, a)| (c.as_str(), a.to_string())).collect();
        assert_eq!(spent, [("EUR", "10.30".to_owned()), ("USD", "5.00".to_owned())], "exact, cancelled left out");
        assert_eq!(summary.first_order_at, Some(DateTime::from_millis(1)));
        assert_eq!(summary.last_order_at, Some(DateTime::from_millis(7)));
        assert_eq!(summary.recent_order_ids, ["c", "d", "a", "b"]);
    }

    #[test]
    fn a_summary_of_no_orders_is_empty_and_names_at_most_the_five_newest() {
        assert_eq!(Summary::of(&[]), Summary::default());
        let many: Vec<Contribution> = (0..8).map(|i| order(&format!("o{i}"), "Placed", "EUR", "1", 100)).collect();
        assert_eq!(Summary::of(&many).recent_order_ids, ["o7", "o6", "o5", "o4", "o3"], "same time: by id");
    }
}
