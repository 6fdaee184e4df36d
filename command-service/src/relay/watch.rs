//! The relay's stage of the progress watchdog ([`service_runtime::watchdog`]): every [`LOOK_EVERY`] it reads the
//! outbox backlog. Events waiting are work for the relay; a new oldest waiting event (or none) is progress — whichever
//! relay of the database publishes, so a standby reports the same stage as the leader. A relay whose terms keep
//! failing is a cause of its own, which progress elsewhere does not answer.

use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::RelayStatus;
use crate::store;
use service_runtime::watchdog::{Cause, StageId, Watchdog};

/// How often the backlog is read.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Events wait in the outbox.
const BACKLOG: Cause = Cause { says: "events wait in the outbox", answered_by_progress: true };
/// Every term of this relay fails.
const FAILING: Cause = Cause { says: "every relay term fails", answered_by_progress: false };

/// Reports the relay's stage until `shutdown`.
pub async fn watch(pool: PgPool, status: Arc<RelayStatus>, watchdog: Watchdog, shutdown: CancellationToken) {
    let stage = StageId::relay();
    let mut oldest: Option<Option<i64>> = None;
    loop {
        match store::progress::oldest_waiting(&pool).await {
            Ok((waiting, lowest)) => {
                watchdog.holds(&stage, BACKLOG, waiting > 0);
                if oldest.is_some_and(|before| before != lowest) {
                    watchdog.progressed(&stage);
                }
                oldest = Some(lowest);
            }
            // Postgres unreachable: readiness says so on its own; what waits is unknown.
            Err(err) => tracing::debug!(error = %err, "reading the outbox backlog for the watchdog failed"),
        }
        let failing = status.failing();
        if let Some((_, error)) = &failing {
            tracing::debug!(%error, "relay terms failing");
        }
        watchdog.holds(&stage, FAILING, failing.is_some());
        if service_runtime::sleep_or_shutdown(LOOK_EVERY, &shutdown).await {
            return;
        }
    }
}
