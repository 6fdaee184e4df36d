//! The background check: a few orders a second, taken in log order (wrapping around at the head), each compared
//! with its order's events as the feed has them. Counts go to `read_model_checked_total` and
//! `read_model_divergent_total{kind}`; the last finding to `/queries/_status`. It reports and never writes: repairs
//! are an operator's `query-service verify --repair`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{check, Expected, Finding, Stored, Verdict};
use crate::feed::Feed;
use crate::metrics::QueryMetrics;
use crate::store::ReadModelStore;

/// Events read from the log per refill of the orders to check.
const REFILL: i64 = 200;

/// Pause after a check that could not be made (the feed or MongoDB unreachable), and when the log is empty.
const BACKOFF: Duration = Duration::from_secs(5);

/// The newest finding, when it was made.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastFinding {
    #[serde(flatten)]
    pub finding: Finding,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// What the sampler has found, shared with the status endpoint.
#[derive(Debug, Clone, Default)]
pub struct Findings(Arc<Mutex<Option<LastFinding>>>);

impl Findings {
    pub fn last(&self) -> Option<LastFinding> {
        self.0.lock().map(|last| last.clone()).unwrap_or_default()
    }

    fn record(&self, finding: Finding) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(LastFinding { finding, at: OffsetDateTime::now_utc() });
        }
    }
}

/// Checks `rate` orders a second until shutdown (not at all when `rate` is 0).
pub async fn run(
    views: ReadModelStore,
    feed: Feed,
    rate: f64,
    metrics: QueryMetrics,
    findings: Findings,
    shutdown: CancellationToken,
) {
    // Off, it still runs until shutdown: a supervised task that ends early is a failure.
    if rate <= 0.0 || !rate.is_finite() {
        return shutdown.cancelled().await;
    }
    let Ok(interval) = Duration::try_from_secs_f64(1.0 / rate) else {
        tracing::warn!(rate, "READ_MODEL_SAMPLE_RATE is too small to schedule: the read-model sampler is off");
        return shutdown.cancelled().await;
    };
    let (mut queue, mut after): (VecDeque<Uuid>, i64) = (VecDeque::new(), 0);
    loop {
        let mut pause = interval;
        if queue.is_empty() {
            match refill(&feed, &mut queue, after).await {
                Ok(_) if queue.is_empty() => {
                    // At the head: start over from the beginning (or wait for a first order).
                    pause = if after == 0 { BACKOFF } else { interval };
                    after = 0;
                }
                Ok(next) => after = next,
                Err(err) => {
                    tracing::debug!(error = %err, "the read-model sampler cannot read the event feed");
                    pause = BACKOFF;
                }
            }
        } else if let Some(order) = queue.pop_front() {
            match check_one(&views, &feed, order).await {
                Ok(verdict) => {
                    metrics.read_model_checked.inc();
                    if let Some(finding) = verdict {
                        tracing::warn!(
                            order_id = finding.order_id,
                            kind = finding.kind.as_str(),
                            view_version = finding.view_version,
                            log_version = finding.log_version,
                            "a view differs from the log"
                        );
                        metrics.read_model_divergent.with_label_values(&[finding.kind.as_str()]).inc();
                        findings.record(finding);
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, %order, "the read-model sampler could not check a view");
                    queue.push_front(order);
                    pause = BACKOFF;
                }
            }
        }
        if service_runtime::sleep_or_shutdown(pause, &shutdown).await {
            return;
        }
    }
}

/// Queues the distinct orders of the next events after `after`; returns where the next refill starts.
async fn refill(feed: &Feed, queue: &mut VecDeque<Uuid>, after: i64) -> anyhow::Result<i64> {
    let page = feed.page_of(after, REFILL).await?;
    for envelope in &page.events {
        if !queue.contains(&envelope.order_id) {
            queue.push_back(envelope.order_id);
        }
    }
    Ok(page.metadata.next_after)
}

/// One order's view against its events: the position first, then the view, then the log.
async fn check_one(views: &ReadModelStore, feed: &Feed, order: Uuid) -> anyhow::Result<Option<Finding>> {
    let position = views.position().await?;
    let generation = views.generations().current().await?.active;
    let id = order.to_string();
    let stored = views.get_document(&generation, &id).await?.map(Stored::from_document);
    let mut expected = Expected::default();
    for envelope in feed.order(order).await? {
        if let Ok(event) = shared_events::decode_envelope(envelope) {
            if let Ok(view) = crate::store::StoredView::from_event(&event).guarded() {
                expected.add(view, event.sequence, stored.as_ref().and_then(|s| s.version));
            }
        }
    }
    Ok(match check(&expected, stored.as_ref(), position) {
        Verdict::Differs(kind) => Some(Finding::new(id, kind, &expected, stored.as_ref())),
        Verdict::Agrees | Verdict::InFlight => None,
    })
}
