//! A page of the event log (`GET /events` of the command-service): the command side answers it (and documents it in
//! its OpenAPI), the query side's replays and checks read it; one type for both ends.

use serde::{Deserialize, Serialize};

use crate::Envelope;

/// Events in global `sequence` order, and where the log stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedPage {
    /// The envelopes, as the relay publishes them.
    #[serde(rename = "data")]
    pub events: Vec<Envelope>,
    pub metadata: FeedMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedMetadata {
    /// Pass as `after` for the next page.
    pub next_after: i64,
    /// The newest committed sequence when the page was read.
    pub head: i64,
}
