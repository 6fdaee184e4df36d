//! A read at a position: what `minPosition` (and `waitMs`) mean on every read of a whole read model (lists, the
//! customer summary, the dashboard). The read first waits, server-side, until every event up to `minPosition` has
//! been applied to that read model, or `waitMs` runs out (then it answers 202, `processing`); once reached, it names
//! the events up to it that were dead-lettered (`missingPositions`) instead of claiming completeness silently. A read
//! model that does not hold the log from its start vouches for no position: it answers 202 with what is being built
//! (`building`) until a generation built from the log serves it (decision 0019).

use service_runtime::auth::Caller;

use super::responses::{Building, PositionMetadata};
use super::{ApiError, AppState};
use crate::store::gaps::MAX_LISTED;
use crate::store::{ReadFrom, ReadModelStore};

/// Where a read stands against the position it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtPosition {
    /// No `minPosition` asked.
    Unasked,
    /// The read model is behind `min_position` still, at `position`: answer 202.
    Behind { min_position: i64, position: i64 },
    /// The read model does not hold the log from its start: it is being built, and answers 202 whatever its position.
    Unvouched { min_position: i64, position: i64, building: Building },
    /// Every event up to the position asked was handled; `missing` were dead-lettered and reached no document.
    Reached { position: i64, missing: Vec<i64> },
}

impl AtPosition {
    /// Waits (holding one of the caller's read slots meanwhile) until the read model `views` is at `min_position`,
    /// or `wait` runs out. A read of one `customer`'s names only the gaps that could hold an order of theirs.
    pub async fn wait(
        state: &AppState,
        views: &ReadModelStore,
        caller: &Caller,
        customer: Option<&str>,
        min_position: Option<i64>,
        wait: std::time::Duration,
    ) -> Result<Self, ApiError> {
        let Some(min_position) = min_position else { return Ok(Self::Unasked) };
        let slot = state.slots.take(caller.client()).map_err(ApiError::busy)?;
        let (position, waited) =
            state.waiting_on(views).for_position(views, min_position, wait).await.map_err(ApiError::Unavailable)?;
        drop(slot);
        if let Some(waited) = waited {
            state.metrics.waited(waited.reached, waited.took);
        }
        let (pointer, positions_kept) = if position >= min_position {
            // Vouching for the position takes the pointer as it is now, not as cached: whichever replica handled
            // the checkpoint that brought the position here recorded whether the first generation holds the whole
            // log before announcing it, and a store lost meanwhile (its pointer with it) has its position written
            // anew past what it lost while a cached pointer still says it holds the log. And the stored positions:
            // one gone under a surviving pointer means the store lost what it held; the consumer that finds out
            // records it within a second, before it writes the position anew.
            let (pointer, kept) = tokio::join!(views.generations().load(), views.holds_every_position());
            (pointer, kept.map_err(ApiError::Unavailable)?)
        } else {
            (views.generations().current().await, true)
        };
        let pointer = pointer.map_err(ApiError::Unavailable)?;
        if !views.generations().active_complete(&pointer) || !positions_kept {
            let building = pointer.building.map_or_else(Building::default, |build| Building {
                generation: Some(build.name),
                replayed: build.replayed,
                total: build.total,
            });
            return Ok(Self::Unvouched { min_position, position, building });
        }
        if position < min_position {
            return Ok(Self::Behind { min_position, position });
        }
        let missing = views
            .gaps()
            .up_to(min_position, MAX_LISTED, &pointer.active, customer)
            .await
            .map_err(ApiError::Unavailable)?;
        Ok(Self::Reached { position, missing })
    }

    /// Which member may serve the read: one that waited for a position is served by the primary (a lagging
    /// secondary could miss documents up to it).
    pub fn read_from(&self) -> ReadFrom {
        match self {
            Self::Unasked => ReadFrom::Preferred,
            _ => ReadFrom::Primary,
        }
    }

    /// The positions up to the one asked whose events are in no document of the read model (empty unless reached).
    pub fn missing(&self) -> &[i64] {
        match self {
            Self::Reached { missing, .. } => missing,
            _ => &[],
        }
    }

    /// Whether the answer is a 202.
    pub fn behind(&self) -> bool {
        matches!(self, Self::Behind { .. } | Self::Unvouched { .. })
    }

    /// The metadata of the answer.
    pub fn metadata(self) -> PositionMetadata {
        match self {
            Self::Unasked => PositionMetadata::default(),
            Self::Behind { min_position, position } => PositionMetadata {
                processing: Some(true),
                position: Some(position),
                min_position: Some(min_position),
                ..PositionMetadata::default()
            },
            Self::Unvouched { min_position, position, building } => PositionMetadata {
                processing: Some(true),
                position: Some(position),
                min_position: Some(min_position),
                building: Some(building),
                ..PositionMetadata::default()
            },
            Self::Reached { position, missing } => PositionMetadata {
                processing: Some(false),
                position: Some(position),
                missing_positions: Some(missing),
                ..PositionMetadata::default()
            },
        }
    }
}
