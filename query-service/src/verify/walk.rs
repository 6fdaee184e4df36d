//! `query-service verify [--repair]`: every view of the active generation against the whole log.
//!
//! Reads, in this order, the read model's position, every stored view, then the log page by page (see the module
//! above for why that order makes a live check honest). Memory grows with the number of orders (one view and one
//! expectation each).

use std::collections::HashMap;

use super::{check, repair_of, Expected, Finding, Stored, Summary, Verdict};
use crate::feed::Feed;
use crate::store::Views;

/// What a walk found (and, with repair, mended).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub generation: String,
    pub position: i64,
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

/// Checks every view against the log; with `repair`, writes each finding over (see [`repair_of`]).
pub async fn verify(views: &Views, feed: &Feed, repair: bool) -> anyhow::Result<Report> {
    let position = views.position().await?;
    let generation = views.generations().current().await?.active;
    let mut stored: HashMap<String, Stored> = views
        .scan(&generation)
        .await?
        .into_iter()
        .filter_map(|document| {
            let id = document.get_str("_id").ok()?.to_owned();
            Some((id, Stored::from_document(document)))
        })
        .collect();

    let mut summary = Summary::default();
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut after = 0;
    loop {
        let page = feed.page(after).await?;
        let fetched = page.events.len();
        for envelope in page.events {
            match shared_events::decode_envelope(envelope) {
                Ok(event) => {
                    let id = event.order_id.to_string();
                    let stored_version = stored.get(&id).and_then(|s| s.version);
                    expected.entry(id).or_default().add(&event, stored_version);
                }
                Err(_) => summary.unreadable_events += 1,
            }
        }
        after = page.metadata.next_after;
        if fetched < feed.page_size() as usize {
            break;
        }
    }

    let mut findings = Vec::new();
    let ids: Vec<String> =
        expected.keys().chain(stored.keys().filter(|id| !expected.contains_key(*id))).cloned().collect();
    for id in ids {
        let expected = expected.remove(&id).unwrap_or_default();
        let view = stored.remove(&id);
        let verdict = check(&expected, view.as_ref(), position);
        summary.count(verdict);
        let Verdict::Differs(kind) = verdict else { continue };
        if repair {
            if let Some((guard, replacement)) = repair_of(kind, &expected, view.as_ref()) {
                if views.repair(&generation, &id, guard, replacement).await? {
                    summary.repaired += 1;
                }
            }
        }
        findings.push(Finding::new(id, kind, &expected, view.as_ref()));
    }
    findings.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    Ok(Report { generation, position, summary, findings })
}
