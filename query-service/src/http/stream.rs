//! `GET /queries/orders/{id}/stream?minVersion=N`: Server-Sent Events of one order's view.
//!
//! The stream sends the view (the same JSON as a 200 single read, as `event: view` with the version as its `id`)
//! as soon as its version is at least `N` (default 1: as soon as it exists), then again on every later version. It
//! waits on the same board as waiting reads, sends a keep-alive comment every 15 s, and ends when the client goes
//! away (the subscription is dropped with the response), the service shuts down, or — with `AUTH_MODE=jwt` — the
//! token it was opened with (or that minted its ticket) expires: an `event: expired` says so first. A browser
//! `EventSource` that reconnects sends `Last-Event-ID`; the stream then resumes after that version.
//!
//! With `AUTH_MODE=jwt` a stream is opened with a bearer token or, from a browser (whose `EventSource` sends no
//! headers), with a ticket for this one order: `POST /queries/orders/{id}/stream-ticket` with the token, then
//! `?ticket=...`. Another customer's order streams nothing, as an order that does not exist yet. A stream holds one
//! of its caller's read slots while it is open (429 when none is free).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use service_runtime::auth::{self, AuthError, Caller};
use service_runtime::extract::{OrderId, Params};
use service_runtime::limits::Slot;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;
use uuid::Uuid;

use super::params::parse_min;
use super::responses::{BadRequest, StreamTicket, TooManyRequests, Unauthenticated, ViewRead};
use super::{ApiError, AppState};
use crate::read::{Subscription, Waiting};

/// Interval of the keep-alive comments that keep proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Wait before reading again after MongoDB failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The stream itself (authenticated by a bearer token or a ticket).
pub fn router() -> Router<AppState> {
    Router::new().route("/queries/orders/{id}/stream", get(stream_order))
}

/// Where a ticket for the stream is had (authenticated by a bearer token).
pub fn ticket_router() -> Router<AppState> {
    Router::new().route("/queries/orders/{id}/stream-ticket", post(stream_ticket))
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
/// then on every change; `Last-Event-ID` resumes after that version. In `jwt` mode the stream ends when the token
/// it was opened with (or that minted its ticket) expires, with `event: expired` (data `{detail}`) first.
#[utoipa::path(get, path = "/queries/orders/{id}/stream", tag = "queries",
    params(("id" = Uuid, Path, description = "The order id"), StreamParams),
    responses(
        (status = 200, description = "An event stream", body = String, content_type = "text/event-stream"),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 429, response = TooManyRequests)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all, fields(order_id))]
pub(super) async fn stream_order(
    State(state): State<AppState>,
    caller: Caller,
    ticket: Option<Extension<auth::StreamTicket>>,
    // The query string is read before the id, as it always was.
    Params(params): Params<StreamParams>,
    OrderId(id): OrderId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if ticket.is_some_and(|Extension(ticket)| ticket.0 != id) {
        return Ok(AuthError::Invalid("the stream ticket is for another order").into_response());
    }
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let min_version = parse_min("minVersion", params.min_version.as_deref())?.unwrap_or(1).max(1);
    // A reconnecting EventSource resumes after the last version it received.
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let next = resume.map_or(min_version, |seen| min_version.max(seen.saturating_add(1)));

    let slot = state.slots.take(caller.client()).map_err(ApiError::busy)?;
    let expires = caller.expires_at.and_then(deadline);
    let subscription = state.waiters.subscribe(id);
    let watch = Watch { waiting: state.waiting(), subscription, id, next, caller, expires, _slot: slot };
    let events = view_events(watch);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response())
}

/// A ticket that opens the view stream of one order for a minute ([`auth::tickets::TICKET_LIFETIME`]), for a
/// browser's `EventSource`, which cannot send the bearer token. Any order id gets one: the stream itself hides
/// what the caller may not see.
#[utoipa::path(post, path = "/queries/orders/{id}/stream-ticket", tag = "queries",
    params(("id" = Uuid, Path, description = "The order id")),
    responses(
        (status = 200, description = "The ticket and the stream's URL", body = StreamTicket),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated)),
    security((), ("bearer" = [])))]
pub(super) async fn stream_ticket(
    State(state): State<AppState>,
    caller: Caller,
    OrderId(id): OrderId,
) -> Result<Response, ApiError> {
    let (ticket, expires_in) = match state.auth.tickets().mint(&caller, id) {
        Ok(minted) => minted,
        Err(err) => return Ok(err.into_response()),
    };
    let stream_url = format!("/queries/orders/{id}/stream?ticket={ticket}");
    Ok(Json(StreamTicket { ticket, expires_in, stream_url }).into_response())
}

/// The instant of the unix time `at` (now once it has passed); `None` for one too far ahead to be an instant (a
/// token's `exp` is the issuer's to choose: that far, it never comes).
fn deadline(at: u64) -> Option<tokio::time::Instant> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    tokio::time::Instant::now().checked_add(Duration::from_secs(at).saturating_sub(now))
}

/// One stream's state: the order it follows, the lowest version it has not sent yet, who asked, when what they came
/// with expires, and the read slot it holds until it ends.
struct Watch {
    waiting: Waiting,
    subscription: Subscription,
    id: Uuid,
    next: i64,
    caller: Caller,
    expires: Option<tokio::time::Instant>,
    _slot: Slot,
}

/// The stream's events: views until the service stops or the caller's credential expires, which an `expired` event
/// says before the stream ends (a browser opens it again with a new ticket).
fn view_events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        let Some(expires) = watch.expires else {
            let event = watch.next_event().await?;
            return Some((Ok(event), Some(watch)));
        };
        let next = tokio::select! {
            event = watch.next_event() => Some(event?),
            () = tokio::time::sleep_until(expires) => None,
        };
        match next {
            Some(event) => Some((Ok(event), Some(watch))),
            None => Some((Ok(expired()), None)),
        }
    })
}

/// The last event of a stream whose credential expired.
fn expired() -> Event {
    let detail = "The credential this stream was opened with has expired: open it again with a new token or ticket.";
    Event::default().event("expired").data(serde_json::json!({ "detail": detail }).to_string())
}

impl Watch {
    /// The next view to send, or `None` when the service is shutting down.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.waiting.next_view(&mut self.subscription, self.id, self.next).await {
                Ok(Some(view)) if !self.caller.may_read(&view.customer_id) => {
                    // Hidden: an order of another customer streams nothing, as one that never comes.
                    self.waiting.shutdown.cancelled().await;
                    return None;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_expires_at_its_time_now_if_past_and_never_if_beyond_any_instant() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
        let soon = deadline(now + 60).expect("an instant");
        let left = soon.saturating_duration_since(tokio::time::Instant::now());
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(61), "{left:?}");
        let past = deadline(now - 60).expect("an instant");
        assert!(past <= tokio::time::Instant::now());
        assert_eq!(deadline(u64::MAX), None);
    }
}
