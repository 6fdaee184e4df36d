//! The one error type of the HTTP layer: its statuses, kinds and extensions; `service_runtime::problem` renders it
//! as RFC 9457 `application/problem+json`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_runtime::admin::AdminRefusal;
use service_runtime::auth::Forbidden;
use service_runtime::problem::{ApiProblem, Extensions};

use crate::domain::{FieldError, Refusal};
use crate::store::StoreError;

/// Everything a handler can fail with. Each variant has one status; 5xx bodies are generic and the cause is
/// logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON for this command: {0}")]
    MalformedJson(String),
    #[error("the request breaks {} rule(s)", .0.len())]
    Validation(Vec<FieldError>),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, current_version: i64, status: shared_events::OrderStatus },
    #[error("This Idempotency-Key was used for a different request.")]
    IdempotencyMismatch,
    /// An admin endpoint refused the request.
    #[error(transparent)]
    Admin(#[from] AdminRefusal),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller's commands are over its rate; retry after this long.
    #[error("This client sends commands faster than its limit; retry after Retry-After seconds.")]
    TooManyRequests(std::time::Duration),
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound => Self::NotFound("No such order.".to_owned()),
            // Never in practice (order ids are fresh UUIDv7s); if it were, the client could not have known.
            Refusal::AlreadyPlaced => Self::Internal(anyhow::anyhow!("a new order's id is taken")),
            Refusal::VersionConflict { expected, current_version, status } => Self::Conflict {
                detail: format!(
                    "The order is at version {current_version} ({}), not the expected version {expected}; \
                     read it again and retry.",
                    status.as_str()
                ),
                current_version,
                status,
            },
            Refusal::NotAllowed { reason, current_version, status } => {
                Self::Conflict { detail: reason, current_version, status }
            }
        }
    }
}

impl From<Forbidden> for ApiError {
    fn from(forbidden: Forbidden) -> Self {
        Self::Forbidden(forbidden.0.to_owned())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable(err),
            StoreError::Other(_) => Self::Internal(err.into()),
        }
    }
}

impl ApiProblem for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Admin(refusal) => refusal.status(),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed-json",
            Self::Validation(_) => "validation",
            Self::IdempotencyMismatch => "idempotency-key-reused",
            other => service_runtime::problem::kind_of_status(other.status()),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(_) => "One or more fields break the rules of this command.".to_owned(),
            Self::Unavailable(_) => "The order store is unavailable; retry later.".to_owned(),
            Self::Internal(_) => "An unexpected error occurred.".to_owned(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            _ => None,
        }
    }

    fn extensions(&self) -> Extensions {
        match self {
            Self::Validation(errors) => Extensions { errors: Some(errors.clone()), ..Extensions::default() },
            Self::Conflict { current_version, status, .. } => Extensions {
                current_version: Some(*current_version),
                order_status: Some(status.as_str().to_owned()),
                ..Extensions::default()
            },
            _ => Extensions::default(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "postgres unavailable"),
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
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
