//! Client of the command-service's event feed (`GET /events`), the source of every replay.

use serde::Deserialize;
use shared_events::Envelope;
use std::time::Duration;

/// Events asked for per page (the feed's maximum).
pub const PAGE: i64 = 5_000;

/// One page of the log.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(rename = "data")]
    pub events: Vec<Envelope>,
    pub metadata: PageMetadata,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMetadata {
    /// Pass as `after` for the next page.
    pub next_after: i64,
    /// The newest committed sequence when the page was read.
    pub head: i64,
}

/// Where the feed is and the token it needs.
#[derive(Debug, Clone)]
pub struct Feed {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Feed {
    pub fn new(url: String, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, url, token })
    }

    /// Up to [`PAGE`] events after `after`.
    pub async fn page(&self, after: i64) -> anyhow::Result<Page> {
        use anyhow::Context as _;
        let mut request = self.http.get(&self.url).query(&[("after", after), ("limit", PAGE)]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("reading the event feed at {}", self.url))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "the event feed at {} answered {status}", self.url);
        response.json().await.context("the event feed answered something that is not a page of events")
    }
}
