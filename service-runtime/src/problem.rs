//! The one error format of both HTTP APIs: RFC 9457 `application/problem+json`.
//!
//! Every error body is a [`Problem`] whose `type` is `/problems/<kind>` — one scheme for both services, listed in
//! the contract (docs/api.md) — with the status's reason as its `title`, a human `detail`, and extension members where
//! an error has more to say (`errors` on a validation failure, `currentVersion` on a conflict). A service's error
//! type supplies its status, kind, detail and extensions ([`ApiProblem`]); the rules every error shares live here:
//! `Retry-After` on 429 and 503, a `WWW-Authenticate` challenge on 401, and a problem body for error responses that a layer
//! produced without one ([`problem_for_bare_errors`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying a 429 or 503, unless the error says otherwise.
const RETRY_AFTER_SECONDS: u64 = 1;

/// An error a handler answers with.
pub trait ApiProblem {
    fn status(&self) -> StatusCode;
    /// The last segment of the `type` URI (`/problems/<kind>`).
    fn kind(&self) -> &'static str;
    /// What went wrong, for people.
    fn detail(&self) -> String;
    /// Extension members (RFC 9457 §3.2).
    fn extensions(&self) -> Extensions {
        Extensions::default()
    }

    /// The `Retry-After` seconds of a 429 or 503, when not the default 1.
    fn retry_after(&self) -> Option<u64> {
        None
    }

    /// The problem document of this error.
    fn problem(&self) -> Problem {
        Problem {
            extensions: self.extensions(),
            retry_after: self.retry_after(),
            ..Problem::new(self.status(), self.kind(), self.detail())
        }
    }
}

/// An RFC 9457 problem document: what every 4xx and 5xx of both services carries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<kind>` (the kinds are listed in docs/api.md, "Errors").
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    #[serde(flatten)]
    pub extensions: Extensions,
    /// The `WWW-Authenticate` challenge of a 401 (`Bearer` when none is given).
    #[serde(skip)]
    pub challenge: Option<String>,
    /// The `Retry-After` seconds of a 429 or 503 (1 when none is given).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// The extension members either service uses; each appears only where it applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// On a `validation` problem: every broken rule of a rejected command, by JSON path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// On a command's 409: the order's version now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// On a command's 409: the order's status now (`status` is the HTTP status in a problem document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
}

/// One broken rule of a rejected request, named by the JSON path of the field that broke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: Extensions::default(),
            challenge: None,
            retry_after: None,
        }
    }

    /// The problem of an error response that carries nothing but its status.
    pub fn for_status(status: StatusCode) -> Self {
        Self::new(status, kind_of_status(status), status.canonical_reason().unwrap_or("Error"))
    }
}

/// The kind of an error known only by its status.
pub fn kind_of_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too-many-requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_client_error() => "client-error",
        _ => "internal",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok());
            headers.insert(header::WWW_AUTHENTICATE, challenge.unwrap_or(HeaderValue::from_static("Bearer")));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after.unwrap_or(RETRY_AFTER_SECONDS)));
        }
        response
    }
}

/// Gives every error response produced without a body (a timeout layer's 408, say) a problem document, keeping its
/// headers, so that clients see one error format. Use as `middleware::map_response(problem_for_bare_errors)`.
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let mut problem = Problem::for_status(status).into_response();
    for (name, value) in response.headers() {
        problem.headers_mut().entry(name).or_insert_with(|| value.clone());
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_serialises_with_its_type_scheme_and_extensions_beside_the_members() {
        let mut problem = Problem::new(StatusCode::CONFLICT, "conflict", "The order moved on.");
        problem.extensions.current_version = Some(3);
        let json = serde_json::to_value(&problem).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"type": "/problems/conflict", "title": "Conflict", "status": 409,
                "detail": "The order moved on.", "currentVersion": 3})
        );
    }

    #[test]
    fn statuses_alone_map_to_kinds_and_503_and_401_carry_their_headers() {
        assert_eq!(Problem::for_status(StatusCode::REQUEST_TIMEOUT).kind, "/problems/timeout");
        assert_eq!(kind_of_status(StatusCode::IM_A_TEAPOT), "client-error");
        assert_eq!(kind_of_status(StatusCode::BAD_GATEWAY), "internal");
        let unavailable = Problem::for_status(StatusCode::SERVICE_UNAVAILABLE).into_response();
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "1");
        assert_eq!(unavailable.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let unauthorized = Problem::for_status(StatusCode::UNAUTHORIZED).into_response();
        assert_eq!(unauthorized.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
