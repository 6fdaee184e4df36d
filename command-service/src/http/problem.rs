//! The one error type of the HTTP layer, rendered as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

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
    #[error("This endpoint needs the admin token: Authorization: Bearer <ADMIN_TOKEN>.")]
    Unauthorized,
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::store::TransitionError> for ApiError {
    fn from(err: crate::store::TransitionError) -> Self {
        use crate::store::TransitionError as E;
        match err {
            E::NotFound(id) => Self::NotFound(format!("No order {id}.")),
            E::VersionConflict { expected, current_version, status } => Self::Conflict {
                detail: format!(
                    "The order is at version {current_version} ({}), not the expected version {expected}; \
                     read it again and retry.",
                    status.as_str()
                ),
                current_version,
                status,
            },
            E::NotAllowed { reason, current_version, status } => {
                Self::Conflict { detail: reason, current_version, status }
            }
            E::Store(err) => err.into(),
        }
    }
}

impl ApiError {
    /// The error for a request to an admin endpoint, unless it may go ahead.
    pub fn admin(access: service_runtime::admin::AdminAccess) -> Result<(), Self> {
        access.require(|| Self::Unauthorized, || Self::NotFound("No such resource.".to_owned()))
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

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members (RFC 9457 §3.2), e.g. `currentVersion` on a conflict.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with the generic title of `status` and `about:blank` as its type.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with_type(mut self, kind: &str) -> Self {
        self.kind = format!("/problems/{kind}");
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response()
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = match self {
            Self::Validation(errors) => Problem {
                errors,
                ..Problem::new(status, "One or more fields break the rules of this command.").with_type("validation")
            },
            Self::Conflict { ref detail, current_version, status: order_status } => {
                let mut problem = Problem::new(status, detail.clone()).with_type("conflict");
                problem.extensions.insert("currentVersion".to_owned(), current_version.into());
                // `status` is the HTTP status in a problem document (RFC 9457): the order's is `orderStatus`.
                problem.extensions.insert("orderStatus".to_owned(), order_status.as_str().into());
                problem
            }
            Self::IdempotencyMismatch => Problem::new(status, self.to_string()).with_type("idempotency-key-reused"),
            Self::MalformedJson(ref why) => Problem::new(status, why.clone()).with_type("malformed-json"),
            Self::Unavailable(ref cause) => {
                tracing::warn!(error = %cause, "postgres unavailable");
                Problem::new(status, "The order store is unavailable; retry later.").with_type("unavailable")
            }
            Self::Internal(ref cause) => {
                tracing::error!(error = ?cause, "request failed");
                Problem::new(status, "An unexpected error occurred.")
            }
            other => Problem::new(status, other.to_string()),
        };
        let mut response = problem.into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
