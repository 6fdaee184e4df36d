//! Catching a projection's partition up from the event feed after its queue was lost while it may have held events
//! (deleted by hand while the projector consumed it: the broker cancels the consumer). The relay had counted those
//! events delivered, so no one publishes them again; a checkpoint that came through the queue declared again would
//! carry the read model's position past them. So the loss is recorded durably first
//! ([`crate::store::ReadModelStore::mark_catch_up`]), and before the partition consumes again every event of it after
//! its stored position is read from the feed and written with the version guard to every live generation (decision
//! 0018); a loss recorded while a catch-up ran is caught up by the next one (decision 0032). Without a token for the
//! feed the partition does not consume, and says why, until one is given.

use shared_events::Partition;
use std::collections::HashMap;

use super::settings::ConsumerSettings;
use crate::store::gaps::GapOf;
use crate::store::{keep_newest, Guarded, ReadModelStore, StoreError};

/// What a catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// Events of the partition read from the feed.
    pub events: u64,
    /// The log's head when the catch-up ended: every event of the partition up to it is applied.
    pub through: i64,
}

/// Why a catch-up could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("the read store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the event feed failed: {0}")]
    Feed(crate::feed::FeedError),
    #[error(
        "the queue was lost while it held events and this replica has no token for the event feed to catch up \
        from (EVENT_FEED_TOKEN or ADMIN_TOKEN)"
    )]
    NoFeed,
}

/// [`from_feed`], then the partition's stored position moved up to what the catch-up covered, as far as a
/// checkpoint some partition stored before the feed was read vouches for (decision 0031): each stored position came
/// from a marker, which the relay publishes once every event up to it has committed, so the feed held them all.
/// Returns what the catch-up did and the position it moved to, if it moved (a partition without a stored position
/// stays without: its first comes from a marker).
pub async fn vouched(
    settings: &ConsumerSettings,
    views: &ReadModelStore,
    after: i64,
) -> Result<(CaughtUp, Option<i64>), CatchUpError> {
    let settled = views.newest_stored_position().await?;
    let caught = from_feed(settings, views, after).await?;
    let Some(vouched) = settled.map(|settled| settled.min(caught.through)).filter(|&vouched| vouched > after) else {
        return Ok((caught, None));
    };
    let moved = views.advance_stored_position(settings.partition, vouched).await?;
    Ok((caught, moved.then_some(vouched)))
}

/// Writes every event of `settings.partition` after `after` from the feed into every live generation of `views`.
pub async fn from_feed(
    settings: &ConsumerSettings,
    views: &ReadModelStore,
    after: i64,
) -> Result<CaughtUp, CatchUpError> {
    let feed = settings.feed.as_ref().ok_or(CatchUpError::NoFeed)?;
    let mut done = CaughtUp { events: 0, through: after };
    let mut after = after;
    loop {
        let page = feed.page(after).await.map_err(CatchUpError::Feed)?;
        let fetched = page.events.len() as i64;
        let mut newest: HashMap<String, Guarded> = HashMap::new();
        for envelope in page.events {
            if Partition::of(envelope.order_id, settings.partition.count) != settings.partition {
                continue;
            }
            done.events += 1;
            let gap = GapOf::of_envelope(&envelope);
            let documents = shared_events::decode_envelope(envelope)
                .map_err(|reason| reason.to_string())
                .and_then(|event| settings.projection.apply(&event));
            match documents {
                Ok(documents) => documents.into_iter().for_each(|document| keep_newest(&mut newest, document)),
                // No document holds it: a gap, as the live projector records for what it dead-letters.
                Err(reason) => {
                    tracing::warn!(%reason, sequence = gap.sequence,
                        "an event caught up from the feed cannot be applied: a gap");
                    let live = views.generations().current().await?.live();
                    views.gaps().record(&gap, &reason, &live).await?;
                }
            }
        }
        let documents: Vec<Guarded> = newest.into_values().collect();
        if !documents.is_empty() {
            views.apply_documents(&documents).await?;
        }
        after = page.metadata.next_after;
        done.through = page.metadata.head.max(after);
        if fetched < feed.page_size() {
            return Ok(done);
        }
    }
}
