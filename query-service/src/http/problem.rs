//! The one error type of the read API: its statuses, kinds and details; `service_runtime::problem` renders it as
//! RFC 9457 `application/problem+json`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_runtime::problem::{kind_of_status, ApiProblem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("This method is not allowed on this resource.")]
    MethodNotAllowed,
    #[error("This endpoint needs the admin token: Authorization: Bearer <ADMIN_TOKEN>.")]
    Unauthorized,
    #[error("{0}")]
    Conflict(String),
    #[error("The read store is unavailable; retry later.")]
    Unavailable(#[source] crate::store::StoreError),
    #[error("The event feed is unavailable; retry later.")]
    FeedUnavailable(#[source] anyhow::Error),
}

impl ApiError {
    /// The error for a request to an admin endpoint, unless it may go ahead.
    pub fn admin(access: service_runtime::admin::AdminAccess) -> Result<(), Self> {
        access.require(|| Self::Unauthorized, || Self::NotFound("No such resource.".to_owned()))
    }
}

impl ApiProblem for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
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
