//! The one error type of the read API, rendered as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

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

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::FeedUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A problem document with `about:blank` as its type and the status's reason as its title.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body.to_string()).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "mongodb unavailable"),
            Self::FeedUnavailable(cause) => tracing::warn!(error = %format!("{cause:#}"), "event feed unavailable"),
            _ => {}
        }
        let mut response = problem(self.status(), &self.to_string());
        if matches!(self, Self::Unavailable(_) | Self::FeedUnavailable(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
