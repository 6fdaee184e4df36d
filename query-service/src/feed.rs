//! Client of the command-service's event feed (`GET /events`): the log every replay and every check of the read
//! model reads.

use shared_events::Envelope;
use std::time::Duration;

/// Events asked for per page by default (the feed's maximum).
pub const PAGE: i64 = 5_000;

/// One page of the log.
pub type Page = shared_events::FeedPage;

/// Why the feed gave no page.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// No answer, or an answer cut off: the command-service is down, restarting or slow, or the network failed.
    #[error("reading the event feed at {url}: {}", with_causes(cause))]
    Unreachable { url: String, cause: reqwest::Error },
    /// It answered with an error status.
    #[error("the event feed at {url} answered {status}")]
    Answered { url: String, status: reqwest::StatusCode },
    /// It answered, whole, something that is not a page of events.
    #[error("the event feed answered something that is not a page of events: {0}")]
    Unreadable(#[source] serde_json::Error),
}

/// `err` and its causes, in one line: reqwest's own words never say what failed (a refused connection, a timeout,
/// a body cut off).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

impl FeedError {
    /// Whether asking again may succeed: no answer, a server error, or "later" (408, 429) — not a refusal (a token
    /// it does not take, a request it rejects) or an answer that is no page.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Answered { status, .. } => {
                status.is_server_error()
                    || matches!(*status, reqwest::StatusCode::REQUEST_TIMEOUT | reqwest::StatusCode::TOO_MANY_REQUESTS)
            }
            Self::Unreadable(_) => false,
        }
    }
}

/// Where the feed is and the token it needs.
#[derive(Debug, Clone)]
pub struct Feed {
    http: reqwest::Client,
    url: String,
    /// Events asked for per page.
    page_size: i64,
    token: Option<String>,
}

impl Feed {
    pub fn new(url: String, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, url, token, page_size: PAGE })
    }

    /// The same feed read in pages of `page_size` events (1 to [`PAGE`]).
    pub fn with_page_size(mut self, page_size: i64) -> Self {
        self.page_size = page_size.clamp(1, PAGE);
        self
    }

    /// Events asked for per page: a page with fewer is the log's last.
    pub fn page_size(&self) -> i64 {
        self.page_size
    }

    /// Up to [`Feed::page_size`] events after `after`.
    pub async fn page(&self, after: i64) -> Result<Page, FeedError> {
        self.page_of(after, self.page_size).await
    }

    /// The sequence of the newest committed event.
    pub async fn head(&self) -> Result<i64, FeedError> {
        Ok(self.page_of(0, 1).await?.metadata.head)
    }

    /// Up to `limit` events after `after`.
    pub async fn page_of(&self, after: i64, limit: i64) -> Result<Page, FeedError> {
        self.get(&[("after", after.to_string()), ("limit", limit.to_string())]).await
    }

    /// Every event of one order, oldest first (an order has a handful).
    pub async fn order(&self, order: uuid::Uuid) -> Result<Vec<Envelope>, FeedError> {
        let (mut events, mut after) = (Vec::new(), 0);
        loop {
            let query = [("orderId", order.to_string()), ("after", after.to_string()), ("limit", PAGE.to_string())];
            let page = self.get(&query).await?;
            let fetched = page.events.len();
            events.extend(page.events);
            after = page.metadata.next_after;
            if fetched < PAGE as usize {
                return Ok(events);
            }
        }
    }

    async fn get(&self, query: &[(&str, String)]) -> Result<Page, FeedError> {
        let mut request = self.http.get(&self.url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |cause| FeedError::Unreachable { url: self.url.clone(), cause };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FeedError::Answered { url: self.url.clone(), status });
        }
        // A body cut off on its way is no answer; one that arrived whole and is no page is one.
        let body = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(FeedError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn a_feed_that_refuses_is_not_asked_again_one_that_failed_or_said_later_is() {
        let answered = |status| FeedError::Answered { url: "http://feed/events".to_owned(), status };
        for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST]
        {
            assert!(!answered(status).is_transient(), "{status}");
        }
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            assert!(answered(status).is_transient(), "{status}");
        }
    }
}
