//! What the endpoints of the read side answer, as types: each handler returns one of these and the OpenAPI document
//! is derived from them, so the schema is the response. The error answers the document names are declared at the
//! end (each an `application/problem+json` body of the one problem schema).

use serde::Serialize;
use service_runtime::problem_response;
use shared_events::OrderView;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::store::StoredView;
use crate::verify::sampler::LastFinding;

/// The public JSON of a stored view.
pub fn order_view(view: &StoredView) -> OrderView {
    OrderView {
        order_id: view.id.clone(),
        customer_id: view.customer_id.clone(),
        customer_segment: view.customer_segment.clone(),
        status: view.status.clone(),
        currency: view.currency.clone(),
        items: view.items.clone(),
        item_count: view.item_count,
        total: view.total.clone(),
        placed_at: rfc3339(view.placed_at),
        updated_at: rfc3339(view.updated_at),
        version: view.version,
        cancel_reason: view.cancel_reason.clone(),
    }
}

/// A BSON date as RFC 3339 with milliseconds (empty for a date outside what RFC 3339 can write).
pub fn rfc3339(date: mongodb::bson::DateTime) -> String {
    date.try_to_rfc3339_string().unwrap_or_default()
}

/// A 200 single read (and each `view` event of a stream).
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewRead {
    pub data: OrderView,
    pub metadata: ViewMetadata,
}

impl ViewRead {
    pub fn of(view: &StoredView) -> Self {
        let metadata =
            ViewMetadata { version: view.version, last_updated: rfc3339(view.updated_at), processing: false };
        Self { data: order_view(view), metadata }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewMetadata {
    pub version: i64,
    #[schema(format = DateTime)]
    pub last_updated: String,
    /// Always false on a 200.
    pub processing: bool,
}

/// A 202 single read: the view is not at `minVersion` yet (it may not exist yet: `data` null).
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewProcessing {
    pub data: Option<OrderView>,
    pub metadata: ProcessingMetadata,
}

impl ViewProcessing {
    pub fn of(view: Option<&StoredView>, min_version: i64) -> Self {
        let version = view.map_or(0, |v| v.version);
        Self { data: view.map(order_view), metadata: ProcessingMetadata { version, processing: true, min_version } }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingMetadata {
    /// The version the view is at (0: none yet).
    pub version: i64,
    /// Always true on a 202.
    pub processing: bool,
    pub min_version: i64,
}

/// A page of views, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListPage {
    pub data: Vec<OrderView>,
    pub metadata: ListMetadata,
}

/// `GET /queries/customers/{customerId}/summary` (200, or 202 while behind `minPosition`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryRead {
    pub data: CustomerSummary,
    pub metadata: PositionMetadata,
}

/// A customer's orders summed up.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerSummary {
    pub customer_id: String,
    /// Orders placed, whatever became of them.
    pub orders: u64,
    /// Orders by their current status (every status, 0 when none).
    #[schema(example = json!({"Placed": 1, "Confirmed": 0, "Shipped": 2, "Cancelled": 1}))]
    pub by_status: BTreeMap<&'static str, u64>,
    /// Per currency, the exact total of the orders not cancelled (placed, confirmed or shipped).
    #[schema(example = json!({"EUR": "129.90"}))]
    pub spent: BTreeMap<String, String>,
    /// When the first order was placed (null: no orders yet, on a 202).
    #[schema(format = DateTime)]
    pub first_order_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_order_at: Option<String>,
    /// The newest orders (by `placedAt`), newest first, at most 5.
    pub recent_order_ids: Vec<String>,
}

/// `GET /queries/dashboard/daily` (200, or 202 while behind `minPosition`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardRead {
    pub data: Dashboard,
    pub metadata: PositionMetadata,
}

/// Sales per day (UTC) and currency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    /// The days with any activity, oldest first, one row per currency; a day without a row had none.
    pub days: Vec<DayRow>,
    /// The whole range, per currency.
    pub totals: Vec<DayRow>,
}

/// What happened on one day (or, in `totals`, over the range) in one currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayRow {
    /// The day, `YYYY-MM-DD` (absent in `totals`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub day: Option<String>,
    pub currency: String,
    /// Orders placed that day (whatever became of them later).
    pub placed: u64,
    pub confirmed: u64,
    pub shipped: u64,
    pub cancelled: u64,
    /// The exact total of the orders shipped that day.
    pub revenue: String,
}

/// Where a read of a whole read model stands against the `minPosition` it asked for (every field absent without
/// one).
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionMetadata {
    /// With `minPosition`: true (202) while the read model is behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing: Option<bool>,
    /// With `minPosition`: the position the read model has reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// On a 202: the position asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_position: Option<i64>,
    /// With `minPosition`, on a 200: positions up to it whose events were dead-lettered by this read model's
    /// projection, so that they count nowhere in it (lowest first, at most 100); empty when it is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_positions: Option<Vec<i64>>,
    /// With `minPosition`, on a 202: the read model does not hold the log from its start yet and is being built
    /// from it; until then it vouches for no position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<Building>,
}

/// A read model being built from the event log, as a read that cannot be vouched for sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Building {
    /// The generation being built (null until a rebuild has claimed one: it starts within seconds where the
    /// query-service can read the event feed).
    pub generation: Option<String>,
    /// Events replayed from the log so far, of `total`.
    pub replayed: i64,
    pub total: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMetadata {
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
    /// With `minPosition`: true (202) while the read model is behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing: Option<bool>,
    /// With `minPosition`: the position the read model has reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// On a 202: the position asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_position: Option<i64>,
    /// With `minPosition`, on a 200: positions up to it whose events were dead-lettered and so are in no view
    /// (lowest first, at most 100); empty when the list is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_positions: Option<Vec<i64>>,
    /// With `minPosition`, on a 202: the order views are being built from the event log (see [`Building`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<Building>,
}

impl ListMetadata {
    /// A page's metadata: its next cursor, and where the read stands against its `minPosition`.
    pub fn new(next_cursor: Option<String>, at: PositionMetadata) -> Self {
        Self {
            next_cursor,
            processing: at.processing,
            position: at.position,
            min_position: at.min_position,
            missing_positions: at.missing_positions,
            building: at.building,
        }
    }
}

/// `GET /admin/read-models/{projection}`: the generations, the rebuild in progress and the position.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelStatus {
    /// Whether the active generation holds the log from its start. While it does not, reads at a position answer
    /// 202 and the read model is built from the event log (`building`).
    pub complete: bool,
    /// The generation reads go to.
    pub active: String,
    /// Kept generations, newest first: what a rollback returns to.
    pub previous: Vec<String>,
    /// The previous generation a rollback is catching up, until it is active (null when none is).
    pub rejoining: Option<String>,
    pub building: Option<BuildProgress>,
    pub generations: Vec<GenerationSize>,
    /// Every event up to this sequence has been applied.
    pub position: i64,
    #[schema(format = DateTime)]
    pub switched_at: Option<String>,
}

/// One generation, its role and how many views it holds (estimated).
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerationSize {
    pub name: String,
    /// `active`, `previous`, `building` or `rejoining`.
    pub role: &'static str,
    pub views: u64,
}

/// A rebuild's progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildProgress {
    pub name: String,
    /// Events replayed so far.
    pub replayed: i64,
    /// The log's head when the rebuild began.
    pub total: i64,
    pub events_per_second: f64,
    /// Null until the rate is known.
    pub eta_seconds: Option<f64>,
    /// Events left to replay.
    pub lag_events: i64,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub heartbeat_at: Option<String>,
}

/// `POST /admin/read-models/{projection}/rebuild` and `…/rollback`: the generation being built, or rolled back to,
/// and where to watch it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildStarted {
    pub generation: String,
    /// `building` (a rebuild) or `rolling back` (a rollback).
    pub status: &'static str,
    /// The path of the status endpoint (also the `Location`).
    pub progress: String,
}

/// The projector's demo slowdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlowdownState {
    /// Delay before each batch, in ms (0: none).
    pub delay_ms: u64,
    /// When the slowdown ends by itself.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
}

/// `GET /queries/_status`: where the read model stands, for people.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Every event up to this sequence has been applied.
    pub position: i64,
    pub active_generation: String,
    /// The generation a rebuild is writing, if one runs.
    pub building: Option<String>,
    /// Reads waiting for a version or a position on this replica.
    pub waiting_reads: usize,
    /// The order views' projection; null on a replica that runs no projector.
    pub projector: Option<ProjectorStatus>,
    /// Every projection this replica runs, the order views' first (empty on a replica that runs no projector).
    pub projections: Vec<ProjectorStatus>,
    pub checks: CheckStatus,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectorStatus {
    /// The projection's name (its read model's).
    pub projection: &'static str,
    pub consuming: bool,
    /// The partitions of a split queue (`PROJECTOR_PARTITIONS` > 1) this replica consumes now; empty otherwise.
    pub partitions: Vec<u16>,
    pub last_applied_sequence: i64,
    /// Freshness lag of the last event applied.
    pub lag_ms: f64,
    /// Messages ready in the projection's queue (sampled).
    pub queue_depth: i64,
    /// The read model's position as this replica knows it (announced by its projection or a notice).
    pub position: i64,
    pub slowdown: Option<SlowdownState>,
}

/// What the background check of the views against the log has found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// Orders checked per second (0: off).
    pub rate_per_second: f64,
    pub checked: u64,
    /// Views found differing from the log, by kind (`missing`, `behind`, `diverged`, `ahead`).
    pub divergent: BTreeMap<&'static str, u64>,
    pub last_finding: Option<LastFinding>,
}

/// `POST /queries/orders/{id}/stream-ticket`: a ticket that opens that order's view stream without an
/// `Authorization` header (what a browser's `EventSource` needs).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamTicket {
    pub ticket: String,
    /// Seconds the ticket opens the stream for.
    pub expires_in: u64,
    /// The stream's path with the ticket (the stream starts at version 1); add `minVersion` to start later.
    pub stream_url: String,
}

/// `GET /demo/config.json`: what the demo page needs to know.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemoConfig {
    /// Where the page sends commands; null: the page's own origin.
    pub command_url: Option<String>,
    /// `none` or `jwt`: whether the page must send a bearer token (and open streams with tickets).
    pub auth_mode: &'static str,
}

problem_response!(BadRequest, "A malformed id or parameter, or a date range that is not one; `detail` names it.");
problem_response!(
    NotFound,
    "No such order in the read model (or another customer's, which a customer token cannot see), no orders of a \
     customer, no such read model, or an admin endpoint without a configured token."
);
problem_response!(
    Conflict,
    "A rebuild already runs, there is nothing to roll back to, or this replica runs no projector."
);
problem_response!(Unavailable, "The read store or the event feed is unavailable; retry after `Retry-After`.");
problem_response!(Unauthorized, "The admin token is missing or wrong, or (`AUTH_MODE=jwt`) the bearer token is.");
pub use service_runtime::openapi::Unauthenticated;
problem_response!(Forbidden, "The token may not do this: another customer's list, or a scope it lacks.");
problem_response!(
    TooManyRequests,
    "This client (or this service) holds as many view streams and waiting reads as it may; retry after \
     `Retry-After`."
);

/// An amount as the API shows every amount: an exact decimal with (at least) two places, `0.00` included.
pub fn money(mut amount: rust_decimal::Decimal) -> String {
    if amount.scale() < 2 {
        amount.rescale(2);
    }
    amount.to_string()
}
