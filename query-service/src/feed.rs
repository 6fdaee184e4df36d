//! Client of the command-service's event feed (`GET /events`): the log every replay and every check of the read
//! model reads.

use shared_events::Envelope;
use std::time::Duration;

/// Events asked for per page by default (the feed's maximum).
pub const PAGE: i64 = 5_000;

/// One page of the log.
pub type Page = shared_events::FeedPage;

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
    pub async fn page(&self, after: i64) -> anyhow::Result<Page> {
        self.page_of(after, self.page_size).await
    }

    /// The sequence of the newest committed event.
    pub async fn head(&self) -> anyhow::Result<i64> {
        Ok(self.page_of(0, 1).await?.metadata.head)
    }

    /// Up to `limit` events after `after`.
    pub async fn page_of(&self, after: i64, limit: i64) -> anyhow::Result<Page> {
        self.get(&[("after", after.to_string()), ("limit", limit.to_string())]).await
    }

    /// Every event of one order, oldest first (an order has a handful).
    pub async fn order(&self, order: uuid::Uuid) -> anyhow::Result<Vec<Envelope>> {
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

    async fn get(&self, query: &[(&str, String)]) -> anyhow::Result<Page> {
        use anyhow::Context as _;
        let mut request = self.http.get(&self.url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("reading the event feed at {}", self.url))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "the event feed at {} answered {status}", self.url);
        response.json().await.context("the event feed answered something that is not a page of events")
    }
}
