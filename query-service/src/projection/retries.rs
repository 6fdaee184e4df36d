//! How the projector's consumer waits out a store that fails: a MongoDB write retried until it succeeds, and a
//! failure outside the broker turned into the error that ends a consumer (which is retried with backoff).

use service_runtime::{retry_until_shutdown, Backoff};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// Runs a MongoDB write until it succeeds, with backoff; `None` when shutdown came first.
pub async fn with_retries<T, F, Fut>(shutdown: &CancellationToken, what: &str, write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    retry_until_shutdown(what, &Backoff::default(), shutdown, write).await
}

/// A failure outside the broker, as the error that ends a consumer (it is retried with backoff).
pub fn store_failed(err: &dyn std::fmt::Display) -> lapin::Error {
    lapin::Error::from(std::io::Error::other(err.to_string()))
}
