//! The public JSON of one order's view: what every read of the query side answers as `data` (single reads, list
//! pages, each event of a view stream) and what clients and the tests read back. Money is an exact decimal written
//! as a string; times are RFC 3339 with milliseconds.

use serde::{Deserialize, Serialize};

use crate::OrderStatus;

/// One order as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    #[schema(format = Uuid)]
    pub order_id: String,
    pub customer_id: String,
    /// Views written before event schema v2 lack it until they are rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_segment: Option<String>,
    #[schema(value_type = OrderStatus)]
    pub status: String,
    pub currency: String,
    pub items: Vec<ViewLine>,
    /// Units ordered: the sum of the lines' quantities.
    pub item_count: i64,
    /// Decimal, as a string.
    pub total: String,
    #[schema(format = DateTime)]
    pub placed_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub version: i64,
    /// Set on cancelled orders whose cancel gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

/// One line of a view: what was ordered and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewLine {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub quantity: i64,
    /// Decimal, as a string.
    pub unit_price: String,
    /// Decimal, as a string.
    pub line_total: String,
}
