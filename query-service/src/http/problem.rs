//! The one error type of the read API: its statuses, kinds and details; `service_runtime::problem` renders it as
//! RFC 9457 `application/problem+json`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_runtime::admin::AdminRefusal;
use service_runtime::auth::Forbidden;
use service_runtime::limits::Full;
use service_runtime::problem::{kind_of_status, ApiProblem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("This method is not allowed on this resource.")]
    MethodNotAllowed,
    /// An admin endpoint refused the request.
    #[error(transparent)]
    Admin(#[from] AdminRefusal),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Conflict(String),
    #[error("The read store is unavailable; retry later.")]
    Unavailable(#[source] crate::store::StoreError),
    #[error("The event feed is unavailable; retry later.")]
    FeedUnavailable(#[source] anyhow::Error),
}

impl ApiError {
    /// The error for a stream or waiting read that finds no slot free.
    pub fn busy(full: Full) -> Self {
        Self::TooManyRequests(
            match full {
                Full::Client => "This client holds as many view streams and waiting reads as it may; close one first.",
                Full::Total => "This service holds as many view streams and waiting reads as it can; retry shortly.",
            }
            .to_owned(),
        )
    }
}

impl From<Forbidden> for ApiError {
    fn from(forbidden: Forbidden) -> Self {
        Self::Forbidden(forbidden.0.to_owned())
    }
}

impl ApiProblem for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Admin(refusal) => refusal.status(),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::FeedUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn kind(&self) -> &'static str {
        kind_of_status(self.status())
    }

    fn detail(&self) -> String {
        self.to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "mongodb unavailable"),
            Self::FeedUnavailable(cause) => tracing::warn!(error = %format!("{cause:#}"), "event feed unavailable"),
            _ => {}
        }
        self.problem().into_response()
    }
}

impl From<service_runtime::extract::BadInput> for ApiError {
    fn from(bad: service_runtime::extract::BadInput) -> Self {
        Self::BadRequest(bad.0)
    }
}
