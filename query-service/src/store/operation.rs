//! One MongoDB operation of the read store: bounded in time, and the errors it ends with.

use mongodb::error::{ErrorKind, WriteFailure};
use std::time::Duration;

/// Longest any one MongoDB operation may take. The driver has no socket timeout, and a connection whose server
/// vanished mid-operation can otherwise hang the projector for good; past this the operation counts as failed and
/// is retried.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A MongoDB operation that failed or did not finish in time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Mongo(#[from] mongodb::error::Error),
    #[error("mongodb did not answer within {OPERATION_TIMEOUT:?}")]
    Timeout,
    #[error("mongodb refused a write: {0}")]
    Refused(String),
}

/// Runs `operation` for at most [`OPERATION_TIMEOUT`].
pub(super) async fn bounded<T>(
    operation: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation).await.map_err(|_| StoreError::Timeout)?.map_err(StoreError::from)
}

/// Whether MongoDB refused a write for a duplicate key (E11000).
pub(super) fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == 11000,
        ErrorKind::Command(command) => command.code == 11000,
        _ => false,
    }
}
