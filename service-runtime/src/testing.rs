//! What the services' in-process HTTP tables share: a request sent to a router without a socket, and the checks every
//! problem document must pass. For tests only (nothing in the services calls it); not behind a feature, because a
//! feature only tests turn on would build every crate above this one twice.

use tower::ServiceExt as _;

/// An answer taken apart: its status, content type and JSON body (`Null` when the body is not JSON).
pub type Parts = (u16, String, serde_json::Value);

/// Sends `request` to `app` in process.
pub async fn in_process(app: &axum::Router, request: axum::http::Request<axum::body::Body>) -> Parts {
    let response = match app.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Panics (naming `case`) unless `answer` is a problem document of `status`: `application/problem+json`, with
/// `type`, `title`, `detail` and the same `status`, and a `type` of the form `/problems/lower-case-words`.
/// Returns the document.
pub fn assert_problem(answer: Parts, status: u16, case: &str) -> serde_json::Value {
    let (got, content_type, body) = answer;
    assert_eq!(got, status, "{case}: {body}");
    assert_eq!(content_type, "application/problem+json", "{case}");
    assert_eq!(body["status"], status, "{case}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "{case}: problem lacks {member}: {body}");
    }
    let kind = body["type"].as_str().and_then(|t| t.strip_prefix("/problems/")).unwrap_or_default();
    assert!(!kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{case}: type {body}");
    body
}

/// A GET of `path`, as [`in_process`] takes it.
pub fn get(path: &str) -> axum::http::Request<axum::body::Body> {
    request(axum::http::Method::GET, path, None, Vec::new())
}

/// A request of `method` to `path` with `body`, of `content_type` when one is given.
pub fn request(
    method: axum::http::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> axum::http::Request<axum::body::Body> {
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(axum::body::Body::from(body)).unwrap_or_else(|e| panic!("a request to {path}: {e}"))
}

/// The `operationId`s an OpenAPI document gives more than one operation (OpenAPI requires each to be unique, and
/// client generators refuse a document that repeats one).
pub fn repeated_operation_ids(document: &serde_json::Value) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let paths = document["paths"].as_object().into_iter().flat_map(|paths| paths.values());
    for operation in paths.filter_map(serde_json::Value::as_object).flat_map(|methods| methods.values()) {
        if let Some(id) = operation["operationId"].as_str() {
            *seen.entry(id.to_owned()).or_default() += 1;
        }
    }
    seen.into_iter().filter(|(_, count)| *count > 1).map(|(id, _)| id).collect()
}
