//! Who may use the admin endpoints of both services. In `AUTH_MODE=jwt` the caller's token decides, by its scope
//! (`orders:admin`; `events:read` for the event feed). In `none` mode the admin token does:
//! `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured the admin endpoints are switched off and answer
//! 404, as if they did not exist. The presented token is compared with the configured one in constant time, over
//! SHA-256 digests so that not even the length leaks.

use http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Auth, AuthMode, Caller};

/// The configured admin token (its digest), or none.
#[derive(Clone)]
pub struct AdminToken(Option<[u8; 32]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "AdminToken(set)" } else { "AdminToken(none)" })
    }
}

/// What a request may do with the admin endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAccess {
    /// No token is configured: admin endpoints do not exist (404).
    Disabled,
    /// No `Bearer` token, or the wrong one (401).
    Denied,
    Granted,
}

/// How an admin request was refused; a service's error type carries it and answers its status and detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    #[error("This endpoint needs the admin token: Authorization: Bearer <ADMIN_TOKEN>.")]
    Unauthorized,
    #[error("This token lacks the scope this endpoint needs.")]
    Forbidden,
    /// Admin endpoints are off: they answer as if they did not exist.
    #[error("No such resource.")]
    NotFound,
}

impl AdminRefusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::Unauthorized => http::StatusCode::UNAUTHORIZED,
            Self::Forbidden => http::StatusCode::FORBIDDEN,
            Self::NotFound => http::StatusCode::NOT_FOUND,
        }
    }
}

impl AdminAccess {
    /// `Ok` when granted; otherwise why not.
    pub fn require(self) -> Result<(), AdminRefusal> {
        match self {
            Self::Granted => Ok(()),
            Self::Denied => Err(AdminRefusal::Unauthorized),
            Self::Disabled => Err(AdminRefusal::NotFound),
        }
    }
}

/// Whether `caller` may use an admin endpoint — by `scoped` (the endpoint's scope) in `jwt` mode, by the admin token
/// among `headers` in `none` mode — and if not, why not.
pub fn access(
    auth: &Auth,
    token: &AdminToken,
    caller: &Caller,
    headers: &HeaderMap,
    scoped: impl FnOnce(&Caller) -> bool,
) -> Result<(), AdminRefusal> {
    match auth.mode() {
        AuthMode::Jwt if scoped(caller) => Ok(()),
        AuthMode::Jwt => Err(AdminRefusal::Forbidden),
        AuthMode::None => token.check(headers.get(header::AUTHORIZATION)).require(),
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl AdminToken {
    /// `None` or an empty string disables the admin endpoints.
    pub fn new(configured: Option<&str>) -> Self {
        Self(configured.filter(|token| !token.is_empty()).map(|token| digest(token.as_bytes())))
    }

    /// Checks the `Authorization` header of a request.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> AdminAccess {
        let Some(expected) = &self.0 else { return AdminAccess::Disabled };
        let presented = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match presented {
            Some(token) if bool::from(digest(token.as_bytes()).ct_eq(expected)) => AdminAccess::Granted,
            _ => AdminAccess::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_is_granted() {
        let token = AdminToken::new(Some("s3cret"));
        let header = |v: &str| HeaderValue::from_str(v).expect("header");
        assert_eq!(token.check(Some(&header("Bearer s3cret"))), AdminAccess::Granted);
        assert_eq!(token.check(Some(&header("bearer s3cret"))), AdminAccess::Granted);
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer ", "Bearer"] {
            assert_eq!(token.check(Some(&header(wrong))), AdminAccess::Denied, "{wrong:?}");
        }
        assert_eq!(token.check(None), AdminAccess::Denied);
        assert_eq!(format!("{token:?}"), "AdminToken(set)", "the token never reaches a log");
    }

    #[test]
    fn no_token_switches_the_admin_endpoints_off() {
        for off in [AdminToken::new(None), AdminToken::new(Some(""))] {
            assert_eq!(off.check(Some(&HeaderValue::from_static("Bearer anything"))), AdminAccess::Disabled);
        }
    }
}
