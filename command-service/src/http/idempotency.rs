//! The `Idempotency-Key` header: the first answer of a command is recorded with the key, by the command's own
//! statement, and a retry of the same request within 24 hours gets it again ([`super::command::answer`]); the key
//! reused for another request is a 422.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::ApiError;
use crate::store::KeyUse;

pub const HEADER: &str = "idempotency-key";

/// A validated key (1–255 visible ASCII characters) and the caller it belongs to: the same key from two callers is
/// two keys.
#[derive(Debug, Clone)]
pub struct Key {
    key: String,
    caller: String,
}

impl Key {
    /// This key as sent by a caller with this [`idempotency scope`](service_runtime::auth::Caller::idempotency_scope).
    pub fn of(self, caller: &str) -> Self {
        Self { caller: caller.to_owned(), ..self }
    }

    /// The key's use by the request with `fingerprint`, whose answer will have `status` and `location`.
    pub fn used_for<'a>(&'a self, fingerprint: &'a str, status: StatusCode, location: Option<&'a str>) -> KeyUse<'a> {
        KeyUse { caller: &self.caller, key: &self.key, fingerprint, status_code: status.as_u16(), location }
    }
}

/// The optional `Idempotency-Key` header of every command, as the handlers take it.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// Retrying with the same key and body answers the first answer again; a different body is a 422.
    #[param(rename = "Idempotency-Key", value_type = Option<String>, pattern = r"^[!-~]{1,255}$")]
    pub key: Option<Key>,
}

/// A malformed key is a 400; handlers take `Result<IdempotencyKey, ApiError>` to decide when it counts.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        key(&parts.headers).map(|key| Self { key })
    }
}

/// The request's key, if it sent one; a malformed key is a 400.
fn key(headers: &HeaderMap) -> Result<Option<Key>, ApiError> {
    let Some(value) = headers.get(HEADER) else { return Ok(None) };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters.".to_owned()));
    }
    Ok(Some(Key { key: String::from_utf8_lossy(bytes).into_owned(), caller: String::new() }))
}

/// What identifies a request for its key: the route it was sent to and its canonical body.
pub fn fingerprint(method_and_path: &str, canonical_body: &str) -> String {
    let digest = Sha256::new().chain_update(method_and_path).chain_update([0]).chain_update(canonical_body).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A command's answer, before it is sent (and stored).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(status: StatusCode, location: Option<String>, body: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_string(body).map_err(|e| ApiError::Internal(e.into()))?;
        Ok(Self { status, location, body })
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/json")], self.body).into_response();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        let parse = |v: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_bytes(v).expect("header value"));
            key(&headers).map(|k| k.map(|k| k.key))
        };
        assert_eq!(parse(b"abc-123_~!").ok().flatten().as_deref(), Some("abc-123_~!"));
        assert!(parse(&[b'k'; 255]).is_ok());
        assert!(parse(&[b'k'; 256]).is_err());
        assert!(parse(b"with space").is_err());
        assert!(parse(b"").is_err());
        assert!(parse("ключ".as_bytes()).is_err());
        assert!(key(&HeaderMap::new()).is_ok_and(|k| k.is_none()));
    }

    #[test]
    fn fingerprints_separate_routes_and_bodies() {
        let a = fingerprint("POST /commands/orders", "{}");
        assert_eq!(a, fingerprint("POST /commands/orders", "{}"));
        assert_ne!(a, fingerprint("POST /commands/orders/x/confirm", "{}"));
        assert_ne!(a, fingerprint("POST /commands/orders", "{\"a\":1}"));
        assert_eq!(a.len(), 64);
    }
}
