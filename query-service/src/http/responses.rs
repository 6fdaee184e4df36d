//! The shapes the OpenAPI document describes: the problem document and its responses, and what the handlers
//! answer or take beside their own types. The handlers name these in their annotations; [`super::openapi`]
//! assembles the document.

use service_runtime::problem_response;
use utoipa::ToSchema;

/// One order's view: the same JSON in single reads, lists and streams.
#[derive(Debug, ToSchema)]
#[schema(as = OrderView)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct OrderViewDoc {
    #[schema(format = Uuid)]
    order_id: String,
    customer_id: String,
    /// Views written before schema v2 lack it until they are rebuilt.
    customer_segment: Option<String>,
    status: OrderStatusDoc,
    currency: String,
    items: Vec<OrderLineDoc>,
    /// Units ordered: the sum of the lines' quantities.
    item_count: i64,
    /// Decimal, as a string.
    total: String,
    #[schema(format = DateTime)]
    placed_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    version: i64,
    /// Set on cancelled orders whose cancel gave one.
    cancel_reason: Option<String>,
}

#[derive(Debug, ToSchema)]
#[schema(as = OrderStatus)]
#[allow(dead_code)]
pub enum OrderStatusDoc {
    Placed,
    Confirmed,
    Shipped,
    Cancelled,
}

#[derive(Debug, ToSchema)]
#[schema(as = OrderLine)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct OrderLineDoc {
    sku: String,
    name: Option<String>,
    quantity: i64,
    unit_price: String,
    line_total: String,
}

/// A 200 single read (and each `view` event of a stream).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ViewRead {
    data: OrderViewDoc,
    metadata: ViewMetadata,
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ViewMetadata {
    version: i64,
    #[schema(format = DateTime)]
    last_updated: String,
    /// Always false on a 200.
    processing: bool,
}

/// A 202 single read: the view is not at `minVersion` yet (it may not exist yet: `data` null).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ViewProcessing {
    data: Option<OrderViewDoc>,
    metadata: ProcessingMetadata,
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ProcessingMetadata {
    /// The version the view is at (0: none yet).
    version: i64,
    /// Always true on a 202.
    processing: bool,
    min_version: i64,
}

/// A page of views, newest first.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ListPage {
    data: Vec<OrderViewDoc>,
    metadata: ListMetadata,
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ListMetadata {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    /// With `minPosition`: true (202) while the read model is behind it.
    processing: Option<bool>,
    /// With `minPosition`: the position the read model has reached.
    position: Option<i64>,
    /// On a 202: the position asked for.
    min_position: Option<i64>,
    /// With `minPosition`, on a 200: positions up to it whose events were dead-lettered and so are in no view
    /// (lowest first, at most 100); empty when the list is complete.
    missing_positions: Option<Vec<i64>>,
}

problem_response!(BadRequest, "A malformed id or parameter; `detail` names it.");
problem_response!(NotFound, "No such order in the read model (or an admin endpoint without a configured token).");
problem_response!(
    Conflict,
    "A rebuild already runs, there is nothing to roll back to, or this replica runs no projector."
);
problem_response!(Unavailable, "The read store or the event feed is unavailable; retry after `Retry-After`.");
problem_response!(Unauthorized, "The admin token is missing or wrong.");
