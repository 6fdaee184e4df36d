//! `query-service verify [--repair]`: every document of each read model's active generation against the whole log.
//!
//! Reads, in this order, the read model's position, every stored document, then the log page by page (see the
//! module above for why that order makes a live check honest). Memory grows with the number of documents (one
//! stored and one expectation each).

use std::collections::HashMap;

use super::{check, repair_of, Expected, Finding, Stored, Summary, Verdict};
use crate::feed::Feed;
use crate::projection::Projection;
use crate::store::ReadModelStore;

/// What a walk found (and, with repair, mended).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The projection checked.
    pub projection: &'static str,
    pub generation: String,
    pub position: i64,
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

/// Checks every document of `projection`'s read model (`views`) against the log; with `repair`, writes each finding
/// over (see [`repair_of`]).
pub async fn verify(
    projection: &'static dyn Projection,
    views: &ReadModelStore,
    feed: &Feed,
    repair: bool,
) -> anyhow::Result<Report> {
    let position = views.position().await?;
    let generation = views.generations().current().await?.active;
    let mut stored = stored_documents(views, &generation).await?;
    let mut summary = Summary::default();
    let mut expected = expected_from_log(projection, feed, &stored, &mut summary).await?;
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
    Ok(Report { projection: projection.name(), generation, position, summary, findings })
}

/// Every document of the generation, by id.
async fn stored_documents(views: &ReadModelStore, generation: &str) -> anyhow::Result<HashMap<String, Stored>> {
    Ok(views
        .scan(generation)
        .await?
        .into_iter()
        .filter_map(|document| {
            let id = document.get_str("_id").ok()?.to_owned();
            Some((id, Stored::from_document(document)))
        })
        .collect())
}

/// What the log makes of each document, read page by page from the event feed; events the projection cannot read
/// are counted in `summary`.
async fn expected_from_log(
    projection: &'static dyn Projection,
    feed: &Feed,
    stored: &HashMap<String, Stored>,
    summary: &mut Summary,
) -> anyhow::Result<HashMap<String, Expected>> {
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut after = 0;
    loop {
        let page = feed.page(after).await?;
        let fetched = page.events.len();
        for envelope in page.events {
            let documents = shared_events::decode_envelope(envelope)
                .map_err(|reason| reason.to_string())
                .and_then(|event| Ok((event.sequence, projection.apply(&event)?)));
            let Ok((sequence, documents)) = documents else {
                summary.unreadable_events += 1;
                continue;
            };
            for document in documents {
                let stored_version = stored.get(&document.id).and_then(|s| s.version);
                expected.entry(document.id.clone()).or_default().add(document, sequence, stored_version);
            }
        }
        after = page.metadata.next_after;
        if fetched < feed.page_size() as usize {
            return Ok(expected);
        }
    }
}
