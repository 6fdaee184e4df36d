//! Who is asking, for both services.
//!
//! `AUTH_MODE=none` (the default, for local development) trusts every caller and says so once at start; a caller is
//! then known only by its peer address, which is what the limits per client count. `AUTH_MODE=jwt` needs
//! `Authorization: Bearer <JWT>` on every endpoint that is not public: [`jwt`] verifies it (signature from a JWKS or
//! an HS256 development secret, issuer, audience, expiry) and makes a [`Caller`] of its claims; anything wrong is a
//! 401 problem with a `WWW-Authenticate: Bearer error="invalid_token"` challenge, and the token is never logged.
//!
//! The [`authenticate`] middleware puts the [`Caller`] into the request; handlers take it as an extractor and ask
//! [`policy`] what it may see and change. Browsers' `EventSource` cannot send headers, so a view stream may also be
//! opened with a short-lived signed ticket for one order ([`tickets`], [`authenticate_stream`]).

mod config;
mod jwks;
pub mod jwt;
pub mod policy;
pub mod tickets;

pub use config::{AuthConfig, AuthMode, ConfigError};
pub use policy::{Changes, Forbidden};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::listener::Peer;
use crate::problem::Problem;

/// The scope that lets staff read any customer's orders.
pub const READ_ANY: &str = "orders:read:any";
/// The scope that lets staff place and change any customer's orders.
pub const WRITE_ANY: &str = "orders:write:any";
/// The scope of the admin endpoints in `jwt` mode (in `none` mode `ADMIN_TOKEN` guards them).
pub const ADMIN: &str = "orders:admin";
/// The scope of the event feed (`GET /events`) in `jwt` mode.
pub const EVENTS_READ: &str = "events:read";

/// What a token lets its bearer do beyond its own orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub read_any: bool,
    pub write_any: bool,
    pub admin: bool,
    pub events_read: bool,
}

impl Scopes {
    /// The scopes among `names` that this platform knows; others are ignored.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut scopes = Self::default();
        for name in names {
            match name {
                READ_ANY => scopes.read_any = true,
                WRITE_ANY => scopes.write_any = true,
                ADMIN => scopes.admin = true,
                EVENTS_READ => scopes.events_read = true,
                _ => {}
            }
        }
        scopes
    }
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject; in `none` mode the peer's IP address (`unknown` when there is none, in process).
    pub principal: String,
    /// The customer this caller is, from the configured claim; `None` when the token has none.
    pub customer_id: Option<String>,
    pub scopes: Scopes,
    /// `none` mode: every caller may do everything.
    pub trusted: bool,
    /// When what this caller came with stops being accepted (unix seconds: a token's `exp` and the leeway; a
    /// stream ticket carries its token's): a view stream opened with it ends then. `None` in `none` mode.
    pub expires_at: Option<u64>,
}

impl Caller {
    /// A caller of `none` mode, known by its address.
    pub fn trusted(peer: Option<SocketAddr>) -> Self {
        let principal = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.ip().to_string());
        Self { principal, customer_id: None, scopes: Scopes::default(), trusted: true, expires_at: None }
    }

    /// The key the limits per client count this caller under.
    pub fn client(&self) -> &str {
        &self.principal
    }
}

/// Why a request is not authenticated. The description is one of a fixed set: never the token, never its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("This endpoint needs Authorization: Bearer <token>.")]
    Missing,
    #[error("The bearer token was refused: {0}.")]
    Invalid(&'static str),
}

impl AuthError {
    /// The `WWW-Authenticate` challenge (RFC 6750 §3): no error code when no credentials were sent.
    pub fn challenge(&self) -> String {
        match self {
            Self::Missing => "Bearer realm=\"orders\"".to_owned(),
            Self::Invalid(why) => {
                format!("Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"{why}\"")
            }
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", self.to_string());
        problem.challenge = Some(self.challenge());
        problem.into_response()
    }
}

/// How this process authenticates callers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Auth(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// `None` in `none` mode.
    verifier: Option<jwt::Verifier>,
    tickets: tickets::Tickets,
}

impl Auth {
    /// From the configuration; in `jwt` mode the key source, issuer and audience must be set.
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let verifier = match config.auth_mode {
            AuthMode::None => None,
            AuthMode::Jwt => Some(jwt::Verifier::new(config)?),
        };
        let tickets = tickets::Tickets::new(config.auth_ticket_secret.as_deref());
        Ok(Self(Arc::new(Inner { verifier, tickets })))
    }

    /// `none` mode: every caller trusted.
    pub fn trusting() -> Self {
        Self(Arc::new(Inner { verifier: None, tickets: tickets::Tickets::new(None) }))
    }

    pub fn mode(&self) -> AuthMode {
        if self.0.verifier.is_some() {
            AuthMode::Jwt
        } else {
            AuthMode::None
        }
    }

    /// Says once, at start, how callers are authenticated (a warning in `none` mode: every caller is trusted).
    pub fn announce(&self, service: &str) {
        match self.mode() {
            AuthMode::None => tracing::warn!(
                service,
                "AUTH_MODE=none: every caller is trusted and may read and change every order; set AUTH_MODE=jwt \
                 in production"
            ),
            AuthMode::Jwt => tracing::info!(service, "AUTH_MODE=jwt: every non-public endpoint needs a bearer token"),
        }
    }

    /// The caller of a request with these headers, from this peer.
    pub async fn caller(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Caller, AuthError> {
        let Some(verifier) = &self.0.verifier else { return Ok(Caller::trusted(peer)) };
        verifier.verify(bearer(headers)?).await
    }

    /// Stream tickets: minted for a caller, read back by [`authenticate_stream`].
    pub fn tickets(&self) -> &tickets::Tickets {
        &self.0.tickets
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Invalid("the Authorization header is not a Bearer token"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(AuthError::Invalid("the Authorization header is not a Bearer token")),
    }
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<Peer>>().map(|info| info.0 .0)
}

/// Middleware for every non-public route: authenticates the request and hands its [`Caller`] to the handler, or
/// answers 401. Use as `route_layer(middleware::from_fn_with_state(auth, authenticate))`.
pub async fn authenticate(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let caller = auth.caller(request.headers(), peer(&request)).await;
    admit(caller, request, next).await
}

/// [`authenticate`] for view streams: a bearer token, or else a `ticket` query parameter minted for the order whose
/// stream this is (the handler checks that the ticket names its order: [`Caller`] then carries it in
/// [`StreamTicket`]).
pub async fn authenticate_stream(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let ticket = request.uri().query().and_then(tickets::from_query);
    let caller = match (auth.mode(), ticket) {
        (AuthMode::Jwt, Some(ticket)) if !request.headers().contains_key(header::AUTHORIZATION) => {
            auth.tickets().read(&ticket).map(|(caller, order_id)| {
                request.extensions_mut().insert(StreamTicket(order_id));
                caller
            })
        }
        _ => auth.caller(request.headers(), peer(&request)).await,
    };
    admit(caller, request, next).await
}

/// Hands the request on with its caller, or answers why it has none.
async fn admit(caller: Result<Caller, AuthError>, mut request: Request, next: Next) -> Response {
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => {
            tracing::info!(reason = %err, "request not authenticated");
            err.into_response()
        }
    }
}

/// The order a stream ticket was minted for, when the caller came with one instead of a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTicket(pub uuid::Uuid);

/// A handler's caller, as [`authenticate`] found it. On a route the middleware does not cover this is a 500: the
/// route was wired wrong, and nothing is answered as if the caller were known.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a handler asked for its caller on a route without authentication");
            Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
            headers
        };
        assert_eq!(bearer(&headers("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(&HeaderMap::new()), Err(AuthError::Missing));
        for wrong in ["Basic abc", "abc", "Bearer", "Bearer  "] {
            assert!(matches!(bearer(&headers(wrong)), Err(AuthError::Invalid(_))), "{wrong:?}");
        }
    }

    #[test]
    fn a_challenge_names_the_error_only_when_credentials_were_sent() {
        assert_eq!(AuthError::Missing.challenge(), "Bearer realm=\"orders\"");
        let invalid = AuthError::Invalid("the token has expired").challenge();
        assert!(invalid.contains("error=\"invalid_token\"") && invalid.contains("expired"), "{invalid}");
    }

    #[test]
    fn scopes_outside_the_platform_are_ignored() {
        let scopes = Scopes::parse("openid orders:read:any events:read profile".split_whitespace());
        assert_eq!(scopes, Scopes { read_any: true, events_read: true, ..Scopes::default() });
    }
}
