//! The demo page at `/`: place orders and watch them reach the read model (`query-service/demo/`), through the
//! TypeScript client (`clients/typescript/dist/`, served as `/demo/lib/`). The files are compiled into the binary,
//! so it serves them with nothing beside it. Not part of the API: it is absent from
//! `/openapi.json`, and `DEMO_PAGE=false` turns it off (404).

use super::responses::DemoConfig;
use axum::extract::State;
use axum::http::header::{self, HeaderName};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use service_runtime::auth::AuthMode;
use service_runtime::extract::Segment;

use super::{ApiError, AppState};

const INDEX: &str = include_str!("../../demo/index.html");
const SCRIPT: &str = include_str!("../../demo/app.js");
const STYLE: &str = include_str!("../../demo/style.css");

/// The client library's modules the page imports (`clients/typescript/dist`, built from its `src` and checked in).
const LIBRARY: [(&str, &str); 4] = [
    ("index.js", include_str!("../../../clients/typescript/dist/index.js")),
    ("errors.js", include_str!("../../../clients/typescript/dist/errors.js")),
    ("stream.js", include_str!("../../../clients/typescript/dist/stream.js")),
    ("transport.js", include_str!("../../../clients/typescript/dist/transport.js")),
];

/// Scripts and styles from this service only; commands go to the command-service wherever it is.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; frame-ancestors 'none'";

/// What the page needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct DemoPage {
    /// The command-service as a browser reaches it; `None`: the page's own host, port 8080.
    pub command_url: Option<String>,
}

/// `DEMO_COMMAND_URL` is not an http(s) URL.
#[derive(Debug, thiserror::Error)]
#[error("DEMO_COMMAND_URL: {0:?} is not an http(s) URL such as http://localhost:8080")]
pub struct InvalidCommandUrl(String);

impl DemoPage {
    /// The page for `DEMO_COMMAND_URL` (empty: derived by the page from its own address).
    pub fn new(command_url: &str) -> Result<Self, InvalidCommandUrl> {
        let trimmed = command_url.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self { command_url: None });
        }
        let url = reqwest::Url::parse(trimmed).map_err(|_| InvalidCommandUrl(command_url.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.query().is_some() {
            return Err(InvalidCommandUrl(command_url.to_owned()));
        }
        Ok(Self { command_url: Some(trimmed.to_owned()) })
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/demo/app.js", get(script))
        .route("/demo/style.css", get(style))
        .route("/demo/lib/{module}", get(library))
        .route("/demo/config.json", get(config))
}

fn page(state: &AppState) -> Result<&DemoPage, ApiError> {
    state.demo.as_ref().ok_or_else(|| ApiError::NotFound("No such resource.".to_owned()))
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    let nosniff = (HeaderName::from_static("x-content-type-options"), "nosniff");
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache"), nosniff], body).into_response()
}

async fn index(State(state): State<AppState>) -> Result<Response, ApiError> {
    page(&state)?;
    let policy = [(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)];
    Ok((policy, file("text/html; charset=utf-8", INDEX)).into_response())
}

async fn script(State(state): State<AppState>) -> Result<Response, ApiError> {
    page(&state)?;
    Ok(file("text/javascript; charset=utf-8", SCRIPT))
}

async fn library(State(state): State<AppState>, Segment(module): Segment) -> Result<Response, ApiError> {
    page(&state)?;
    let (_, body) = LIBRARY
        .iter()
        .find(|(name, _)| *name == module)
        .ok_or_else(|| ApiError::NotFound("No such resource.".to_owned()))?;
    Ok(file("text/javascript; charset=utf-8", body))
}

async fn style(State(state): State<AppState>) -> Result<Response, ApiError> {
    page(&state)?;
    Ok(file("text/css; charset=utf-8", STYLE))
}

async fn config(State(state): State<AppState>) -> Result<Response, ApiError> {
    let page = page(&state)?;
    let auth_mode = match state.auth.mode() {
        AuthMode::None => "none",
        AuthMode::Jwt => "jwt",
    };
    Ok(Json(DemoConfig { command_url: page.command_url.clone(), auth_mode }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_url_is_an_http_url_or_nothing() {
        assert_eq!(DemoPage::new("").expect("empty").command_url, None);
        assert_eq!(
            DemoPage::new("http://localhost:8080/").expect("trailing slash").command_url.as_deref(),
            Some("http://localhost:8080")
        );
        assert!(DemoPage::new("https://orders.example/api").is_ok());
        for bad in ["localhost:8080", "ftp://host", "http://", "http://host/?q=1", "javascript:alert(1)"] {
            assert!(DemoPage::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_is_a_valid_header() {
        assert!(axum::http::HeaderValue::from_str(CONTENT_SECURITY_POLICY).is_ok());
    }
}
