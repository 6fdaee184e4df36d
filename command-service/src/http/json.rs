//! JSON request bodies whose every rejection is the service's own problem.
//!
//! [`JsonBytes`] reads the body under the size limit (413) and, when there is one, checks `Content-Type` (415).
//! [`JsonBody`] requires a body and parses it with [`parse`], which reports the JSON path of a field of the wrong
//! type (`items[0].quantity`) or an unknown field (400).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body that may be absent: `None` when empty, otherwise bytes declared as JSON.
#[derive(Debug)]
pub struct JsonBytes(pub Option<Bytes>);

/// A required JSON body, parsed into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn is_json_content_type(value: Option<&header::HeaderValue>) -> bool {
    let Some(Ok(value)) = value.map(|v| v.to_str()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json_content_type(req.headers().get(header::CONTENT_TYPE));
        let declared_empty = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        if !json && !declared_empty && req.headers().contains_key(header::CONTENT_TYPE) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!("the request body could not be read: {rejection}"))
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(Self(Some(bytes)))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        let bytes = bytes.ok_or_else(|| ApiError::MalformedJson("the request body is empty".to_owned()))?;
        Ok(Self(parse_object(&bytes)?))
    }
}

/// Parses a whole body; trailing characters after the value are an error too.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::MalformedJson(inner.to_string())
        } else {
            ApiError::MalformedJson(format!("{path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|err| ApiError::MalformedJson(err.to_string()))?;
    Ok(value)
}

/// Parses a command body, which must be a JSON object: serde would otherwise also read a struct from an array of
/// its fields in order (`[1]` as `{"expectedVersion": 1}`).
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::MalformedJson("the request body must be a JSON object".to_owned()));
    }
    parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PlaceOrder;

    #[test]
    fn content_type_must_be_json() {
        let ok = |s: &'static str| is_json_content_type(Some(&header::HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("Application/JSON"));
        assert!(ok("application/vnd.orders+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn type_errors_name_their_path() {
        let body = br#"{"customerId":"c","items":[{"sku":"s","quantity":"two","unitPrice":"1"}]}"#;
        let err = parse::<PlaceOrder>(body).expect_err("quantity is a string");
        assert!(err.to_string().contains("items[0].quantity"), "{err}");
    }

    #[test]
    fn unknown_fields_trailing_data_and_deep_nesting_are_rejected() {
        assert!(parse::<PlaceOrder>(br#"{"customerId":"c","items":[],"admin":true}"#).is_err());
        assert!(parse::<PlaceOrder>(br#"{"customerId":"c","items":[]} {}"#).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse::<serde_json::Value>(deep.as_bytes()).is_err());
    }

    #[test]
    fn command_bodies_must_be_objects() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            version: Option<i64>,
        }
        assert!(parse::<Body>(b"[1]").is_ok(), "serde reads structs from arrays");
        assert!(parse_object::<Body>(b"[1]").is_err());
        assert!(parse_object::<Body>(b" \n{\"version\": 1}").is_ok());
        assert!(parse_object::<Body>(b"1").is_err());
    }
}
