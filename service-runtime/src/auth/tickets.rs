//! View-stream tickets: a browser's `EventSource` cannot send an `Authorization` header, so it first asks for a ticket
//! with its bearer token (`POST /queries/orders/{id}/stream-ticket`) and then opens
//! `/queries/orders/{id}/stream?ticket=...`. A ticket is an HS256 token of this service's own — signed with
//! `AUTH_TICKET_SECRET`, audience `order-stream` — that names one order and the caller it was minted for, and lasts
//! [`TICKET_LIFETIME`]: long enough to open the stream (and for `EventSource` to reconnect soon after), short enough
//! that one leaked in a URL is soon worthless. It carries what reads need (who, which customer, whether staff) and
//! when the token it was minted with expires, at which the stream it opened ends; no more.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

use super::{AuthError, Caller, Scopes};

/// How long a ticket opens its stream.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60);
const AUDIENCE: &str = "order-stream";

/// Mints and reads tickets.
pub struct Tickets {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets(..)")
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    exp: u64,
    /// The order whose stream the ticket opens.
    oid: Uuid,
    /// The caller's customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cid: Option<String>,
    /// Whether the caller may read any customer's orders.
    #[serde(default)]
    any: bool,
    /// When the credential the ticket was minted with stops being accepted: the stream it opens ends then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
}

impl Tickets {
    /// With `secret`, or a random one of this process's own.
    pub fn new(secret: Option<&str>) -> Self {
        let secret = match secret.filter(|s| !s.is_empty()) {
            Some(secret) => secret.as_bytes().to_vec(),
            None => [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat(),
        };
        Self { encoding: EncodingKey::from_secret(&secret), decoding: DecodingKey::from_secret(&secret) }
    }

    /// A ticket for `caller` to open the stream of `order_id`, and how many seconds it lasts.
    pub fn mint(&self, caller: &Caller, order_id: Uuid) -> Result<(String, u64), AuthError> {
        let lifetime = TICKET_LIFETIME.as_secs();
        let claims = Claims {
            sub: caller.principal.clone(),
            aud: AUDIENCE.to_owned(),
            exp: jsonwebtoken::get_current_timestamp() + lifetime,
            oid: order_id,
            cid: caller.customer_id.clone(),
            any: caller.trusted || caller.scopes.read_any,
            until: caller.expires_at,
        };
        let ticket = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid("no ticket could be signed"))?;
        Ok((ticket, lifetime))
    }

    /// The caller a ticket was minted for, and the order it opens.
    pub fn read(&self, ticket: &str) -> Result<(Caller, Uuid), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(ticket, &self.decoding, &validation)
            .map_err(|_| AuthError::Invalid("the stream ticket is not valid"))?
            .claims;
        // The token the ticket was minted with has expired: a stream opened now would end at once.
        if claims.until.is_some_and(|until| until <= jsonwebtoken::get_current_timestamp()) {
            return Err(AuthError::Invalid("the token this stream ticket was minted with has expired"));
        }
        let scopes = Scopes { read_any: claims.any, ..Scopes::default() };
        let caller =
            Caller { principal: claims.sub, customer_id: claims.cid, scopes, trusted: false, expires_at: claims.until };
        Ok((caller, claims.oid))
    }
}

/// The `ticket` parameter of a query string.
pub fn from_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix("ticket=")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Caller {
        Caller {
            principal: "cust-1".to_owned(),
            customer_id: Some("cust-1".to_owned()),
            scopes: Scopes { admin: true, ..Scopes::default() },
            trusted: false,
            expires_at: Some(1_900_000_000),
        }
    }

    #[test]
    fn a_ticket_carries_its_caller_and_order_and_nothing_more() {
        let tickets = Tickets::new(Some("ticket secret"));
        let order = Uuid::now_v7();
        let (ticket, lasts) = tickets.mint(&customer(), order).expect("minted");
        assert_eq!(lasts, 60);
        let (caller, opens) = tickets.read(&ticket).expect("read");
        assert_eq!(opens, order);
        assert_eq!(caller.customer_id.as_deref(), Some("cust-1"));
        assert_eq!(caller.scopes, Scopes::default(), "a ticket reads; it administers nothing");
        assert_eq!(caller.expires_at, Some(1_900_000_000), "its stream ends when the token it came from expires");
    }

    #[test]
    fn a_ticket_whose_token_has_expired_opens_nothing() {
        let tickets = Tickets::new(Some("ticket secret"));
        let expired = Caller { expires_at: Some(jsonwebtoken::get_current_timestamp() - 1), ..customer() };
        let (ticket, _) = tickets.mint(&expired, Uuid::now_v7()).expect("minted");
        let refused = tickets.read(&ticket).map(|_| ());
        assert_eq!(refused, Err(AuthError::Invalid("the token this stream ticket was minted with has expired")));
    }

    #[test]
    fn a_ticket_of_another_secret_or_a_bearer_token_is_no_ticket() {
        let order = Uuid::now_v7();
        let (ticket, _) = Tickets::new(Some("one")).mint(&customer(), order).expect("minted");
        assert!(Tickets::new(Some("two")).read(&ticket).is_err());
        assert!(Tickets::new(None).read(&ticket).is_err(), "a random secret is no other's");
        assert!(Tickets::new(Some("one")).read("a.b.c").is_err());
    }

    #[test]
    fn the_ticket_parameter_is_found_among_others() {
        assert_eq!(from_query("minVersion=2&ticket=abc.def").as_deref(), Some("abc.def"));
        assert_eq!(from_query("minVersion=2"), None);
    }
}
