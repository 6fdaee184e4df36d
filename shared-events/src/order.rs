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
        [Self::Placed, Self::Confirmed, Self::Shipped, Self::Cancelled].into_iter().find(|status| status.as_str() == s)
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

#[cfg(test)]
mod tests {
    use super::*;

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
