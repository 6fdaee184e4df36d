//! The order snapshot carried by every event payload.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OrderStatus {
    Placed,
    Confirmed,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    /// Every status, in the order of an order's life.
    pub const ALL: [Self; 4] = [Self::Placed, Self::Confirmed, Self::Shipped, Self::Cancelled];

    /// The name used on the wire, in Postgres and in the views.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "Placed",
            Self::Confirmed => "Confirmed",
            Self::Shipped => "Shipped",
            Self::Cancelled => "Cancelled",
        }
    }

    /// The inverse of [`OrderStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Segment of customers that placed orders before segments existed (schema v1), and the default for new ones.
pub const DEFAULT_SEGMENT: &str = "standard";

/// Who placed the order (schema v2; v1 carried only the id, as `customerId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Customer {
    pub id: String,
    pub segment: String,
}

/// One line of an order. Money is an exact decimal, carried as a JSON string (`"19.99"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    pub sku: String,
    /// What the customer saw the item called (schema v2, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub quantity: u32,
    pub unit_price: Decimal,
    pub line_total: Decimal,
}

/// The state of an order after the change an event records (schema v2; [`crate::upcast`] reads v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderState {
    pub customer: Customer,
    pub currency: String,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total: Decimal,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Why the order was cancelled, when it was and a reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

/// What a lifecycle event changes of the order's state: written over the previous event's payload (its
/// `cancelReason` removed first) it gives the new payload, so the write side can record a change without reading the
/// whole state back ([`StatusChange::apply_to`] is that rule, on JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

impl StatusChange {
    /// The payload after this change, from the payload before it: what the store's `(payload - 'cancelReason') ||
    /// patch` does in SQL.
    pub fn apply_to(&self, mut payload: serde_json::Value) -> Result<serde_json::Value, serde_json::Error> {
        if let (Some(fields), serde_json::Value::Object(patch)) = (payload.as_object_mut(), serde_json::to_value(self)?)
        {
            fields.remove("cancelReason");
            fields.extend(patch);
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed() -> OrderState {
        let at = OffsetDateTime::from_unix_timestamp(1_764_201_600).expect("a time");
        OrderState {
            customer: Customer { id: "c-1".to_owned(), segment: DEFAULT_SEGMENT.to_owned() },
            currency: "EUR".to_owned(),
            status: OrderStatus::Placed,
            items: vec![OrderLine {
                sku: "A".to_owned(),
                name: None,
                quantity: 2,
                unit_price: Decimal::new(1999, 2),
                line_total: Decimal::new(3998, 2),
            }],
            total: Decimal::new(3998, 2),
            placed_at: at,
            updated_at: at,
            cancel_reason: None,
        }
    }

    #[test]
    fn a_status_change_over_the_previous_payload_is_the_payload_of_the_state_after_it() {
        let before = placed();
        let later = before.updated_at + time::Duration::milliseconds(1500);
        let steps = [
            (OrderStatus::Cancelled, Some("changed my mind")),
            (OrderStatus::Confirmed, None),
            (OrderStatus::Cancelled, None),
        ];
        for (status, reason) in steps {
            // From a state that carried a reason too: the change must drop it unless it brings its own.
            let before = OrderState { cancel_reason: Some("old".to_owned()), ..before.clone() };
            let change = StatusChange { status, updated_at: later, cancel_reason: reason.map(str::to_owned) };
            let after =
                OrderState { status, updated_at: later, cancel_reason: change.cancel_reason.clone(), ..before.clone() };
            let patched = change.apply_to(serde_json::to_value(&before).expect("serialises")).expect("patches");
            assert_eq!(patched, serde_json::to_value(&after).expect("serialises"), "{status:?} {reason:?}");
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in [OrderStatus::Placed, OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Cancelled] {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).expect("status serialises");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(OrderStatus::parse("placed"), None);
    }
}
