//! The read model's open gaps as one consumer knows them: recording a gap writes it to MongoDB and remembers it,
//! so that applying an event closes its gap without a MongoDB round trip per batch.

use std::time::Duration;
use tokio::time::Instant;

use crate::store::gaps::{GapOf, Gaps};
use crate::store::StoreError;

/// How long this consumer trusts what it knows of the open gaps before it reads them again (another consumer of
/// the read model may have recorded one meanwhile).
const GAPS_FRESH_FOR: Duration = Duration::from_secs(10);

/// The gaps of the read model that are open (in any generation), known to this consumer: recording one writes it
/// to MongoDB and remembers it; closing asks MongoDB only for sequences among them, or for events that came again.
#[derive(Debug)]
pub struct OpenGaps {
    gaps: Gaps,
    known: tokio::sync::Mutex<(std::collections::HashSet<i64>, Instant)>,
}

impl OpenGaps {
    pub async fn load(gaps: Gaps) -> Result<Self, StoreError> {
        let open = gaps.open().await?.into_iter().collect();
        Ok(Self { gaps, known: tokio::sync::Mutex::new((open, Instant::now())) })
    }

    /// Records that the event `gap` is of reached none of `generations`.
    pub async fn record(&self, gap: &GapOf, reason: &str, generations: &[String]) -> Result<(), StoreError> {
        self.gaps.record(gap, reason, generations).await?;
        self.known.lock().await.0.insert(gap.sequence);
        Ok(())
    }

    /// Closes, in `generations`, the gaps of the `applied` sequences that are open, and of those that came `again`
    /// whether known open or not; no round trip when there is none of either.
    pub async fn close(&self, applied: &[i64], again: &[i64], generations: &[String]) -> Result<(), StoreError> {
        let mut known = self.known.lock().await;
        if known.1.elapsed() >= GAPS_FRESH_FOR {
            *known = (self.gaps.open().await?.into_iter().collect(), Instant::now());
        }
        let mut closing: Vec<i64> = applied.iter().copied().filter(|s| known.0.contains(s)).collect();
        closing.extend(again.iter().filter(|s| !known.0.contains(s)));
        if closing.is_empty() {
            return Ok(());
        }
        self.gaps.close(&closing, generations).await?;
        for sequence in &closing {
            known.0.remove(sequence);
        }
        Ok(())
    }
}
