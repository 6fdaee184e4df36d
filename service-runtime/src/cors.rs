//! Cross-origin access for browsers, from `CORS_ALLOWED_ORIGINS`: empty (the default) sends no CORS headers, so
//! only same-origin pages can call the APIs; `*` lets any origin in; otherwise a comma-separated list of origins
//! such as `https://shop.example,http://localhost:5173`.

use http::{header, HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// An entry of `CORS_ALLOWED_ORIGINS` that is not an origin.
#[derive(Debug, thiserror::Error)]
#[error("CORS_ALLOWED_ORIGINS: {0:?} is not an origin like https://shop.example or http://localhost:5173")]
pub struct InvalidOrigin(String);

/// The layer for `allowed`, or `None` when no origin is allowed.
pub fn layer(allowed: &str) -> Result<Option<CorsLayer>, InvalidOrigin> {
    let allowed = allowed.trim();
    if allowed.is_empty() {
        return Ok(None);
    }
    let origins = if allowed == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(allowed.split(',').map(|origin| parse_origin(origin.trim())).collect::<Result<Vec<_>, _>>()?)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("traceparent"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}

/// `scheme://host[:port]`, nothing after: browsers send exactly that in `Origin`.
fn parse_origin(origin: &str) -> Result<HeaderValue, InvalidOrigin> {
    let invalid = || InvalidOrigin(origin.to_owned());
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).ok_or_else(invalid)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*']) {
        return Err(invalid());
    }
    HeaderValue::from_str(origin).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_anything_else_is_refused() {
        assert!(layer("").expect("empty").is_none());
        assert!(layer("  ").expect("blank").is_none());
        assert!(layer("*").expect("any").is_some());
        assert!(layer("https://shop.example, http://localhost:5173").expect("a list").is_some());
        for bad in ["shop.example", "https://", "https://shop.example/", "ftp://x", "https://a b", "http://*.example"] {
            assert!(layer(bad).is_err(), "{bad:?}");
        }
    }
}
