//! `GET /queries/orders/{id}/stream?minVersion=N`: Server-Sent Events of one order's view.
//!
//! The stream sends the view (the same JSON as a 200 single read, as `event: view` with the version as its `id`)
//! as soon as its version is at least `N` (default 1: as soon as it exists), then again on every later version. It
//! waits on the same board as waiting reads — no polling — sends a keep-alive comment every 15 s, and ends when the
//! client goes away (the subscription is dropped with the response) or the service shuts down. A browser
//! `EventSource` that reconnects sends `Last-Event-ID`; the stream then resumes after that version.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;
use uuid::Uuid;

use super::params::parse_min;
use super::responses::{BadRequest, ViewRead};
use super::{ApiError, AppState};
use crate::read::{Subscription, Waiting};

/// Interval of the keep-alive comments that keep proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Wait before reading again after MongoDB failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/orders/{id}/stream", get(stream_order))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct StreamParams {
    /// The first version to send (default 1).
    #[param(value_type = Option<i64>, minimum = 0)]
    min_version: Option<String>,
}

/// Server-Sent Events: the view (`event: view`, `id: <version>`, data as a 200 single read) once at `minVersion`,
/// then on every change; `Last-Event-ID` resumes after that version.
#[utoipa::path(get, path = "/queries/orders/{id}/stream", tag = "queries",
    params(("id" = Uuid, Path, description = "The order id"), StreamParams),
    responses(
        (status = 200, description = "An event stream", body = String, content_type = "text/event-stream"),
        (status = 400, response = BadRequest)))]
#[tracing::instrument(skip_all, fields(order_id))]
pub(super) async fn stream_order(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(raw_id) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = Uuid::parse_str(&raw_id).map_err(|_| ApiError::BadRequest("the order id must be a UUID".to_owned()))?;
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let min_version = parse_min("minVersion", params.min_version.as_deref())?.unwrap_or(1).max(1);
    // A reconnecting EventSource resumes after the last version it received.
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let next = resume.map_or(min_version, |seen| min_version.max(seen.saturating_add(1)));

    let watch = Watch { waiting: state.waiting(), subscription: state.waiters.subscribe(id), id, next };
    let events = view_events(watch);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response())
}

/// One stream's state: the order it follows and the lowest version it has not sent yet.
struct Watch {
    waiting: Waiting,
    subscription: Subscription,
    id: Uuid,
    next: i64,
}

fn view_events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    })
}

impl Watch {
    /// The next view to send, or `None` when the service is shutting down.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.waiting.next_view(&mut self.subscription, self.id, self.next).await {
                Ok(Some(view)) => {
                    self.next = view.version + 1;
                    match Event::default().event("view").id(view.version.to_string()).json_data(ViewRead::of(&view)) {
                        Ok(event) => return Some(event),
                        Err(err) => tracing::error!(error = %err, order_id = %self.id, "a view could not be sent"),
                    }
                }
                Ok(None) => return None,
                Err(err) => {
                    tracing::warn!(error = %err, order_id = %self.id, "reading a streamed view failed; retrying");
                    if service_runtime::sleep_or_shutdown(RETRY_AFTER_FAILURE, &self.waiting.shutdown).await {
                        return None;
                    }
                }
            }
        }
    }
}
