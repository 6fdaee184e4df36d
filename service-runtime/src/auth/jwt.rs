//! Bearer JWTs: verified against an allow-list of algorithms — RS256 and ES256 with the identity provider's keys
//! (a JWKS), HS256 with a development secret — never `none`, and each algorithm only with a key of its own kind;
//! then `iss`, `aud`, `exp` and `nbf` (with a small leeway). The claims make the [`Caller`]: `sub`, the customer id
//! from the configured claim, the scopes from `scope` (space-separated) or `scp` (a string or a list).
//!
//! [`mint_hs256`] makes development tokens (`command-service dev-token`) and the tests' tokens.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::jwks::{Jwks, Source};
use super::{AuthConfig, AuthError, Caller, ConfigError, Scopes};

/// Shortest HS256 secret accepted: as many bytes as the hash (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug)]
pub struct Verifier {
    hs256: Option<Secret>,
    jwks: Option<Jwks>,
    issuer: String,
    audience: String,
    customer_claim: String,
    leeway: u64,
}

/// The HS256 key, kept out of `Debug` output.
struct Secret(DecodingKey);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Verifier {
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let issuer = config.auth_issuer.clone().filter(|s| !s.is_empty()).ok_or(ConfigError::Missing("AUTH_ISSUER"))?;
        let audience =
            config.auth_audience.clone().filter(|s| !s.is_empty()).ok_or(ConfigError::Missing("AUTH_AUDIENCE"))?;
        let url = config.auth_jwks_url.as_ref().filter(|url| !url.is_empty());
        let source = match (url, &config.auth_jwks_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoKeySources),
            (Some(url), None) => {
                // Checked now, so that a typo stops the service at start instead of refusing every RS256 token.
                let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::JwksUrl(e.to_string()))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::JwksUrl("it is not an http or https URL".to_owned()));
                }
                Some(Source::Url(url.clone()))
            }
            (None, Some(path)) => {
                // A file is read now, so that a wrong path stops the service at start.
                let text = std::fs::read_to_string(path).map_err(|e| key_file(path, e.to_string()))?;
                serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&text).map_err(|e| key_file(path, e.to_string()))?;
                Some(Source::File(path.clone()))
            }
            (None, None) => None,
        };
        let hs256 = match config.auth_hs256_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => return Err(ConfigError::ShortSecret),
            Some(secret) => Some(Secret(DecodingKey::from_secret(secret.as_bytes()))),
            None => None,
        };
        if source.is_none() && hs256.is_none() {
            return Err(ConfigError::Missing("AUTH_JWKS_URL, AUTH_JWKS_FILE or AUTH_HS256_SECRET"));
        }
        if hs256.is_some() {
            tracing::warn!("AUTH_HS256_SECRET is set: HS256 tokens are accepted, which is for development only");
        }
        Ok(Self {
            hs256,
            jwks: source.map(Jwks::new),
            issuer,
            audience,
            customer_claim: config.auth_customer_claim.clone(),
            leeway: config.auth_leeway_secs,
        })
    }

    /// The caller a token stands for, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("the token is malformed"))?;
        let key = match (header.alg, &self.hs256, &self.jwks) {
            (Algorithm::HS256, Some(Secret(key)), _) => key.clone(),
            (Algorithm::RS256 | Algorithm::ES256, _, Some(jwks)) => {
                jwks.key(header.kid.as_deref(), header.alg).await.map_err(AuthError::Invalid)?
            }
            _ => return Err(AuthError::Invalid("the token's algorithm is not allowed")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|err| AuthError::Invalid(refusal(err.kind())))?
            .claims;
        let caller = caller_of(&claims, &self.customer_claim)?;
        // RFC 7519 lets `exp` be a decimal: its whole seconds count (the library checked it is a number).
        let exp =
            claims.get("exp").and_then(|exp| exp.as_u64().or_else(|| exp.as_f64().map(|exp| exp.max(0.0) as u64)));
        let expires_at = exp.map(|exp| exp.saturating_add(self.leeway));
        Ok(Caller { expires_at, ..caller })
    }
}

fn key_file(path: &std::path::Path, reason: String) -> ConfigError {
    ConfigError::KeyFile { path: path.display().to_string(), reason }
}

/// What a client is told about a refused token: the kind of fault, nothing of the token itself.
fn refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "the token's algorithm is not allowed",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is malformed",
    }
}

/// The caller a verified token's claims describe. A subject that is empty or not a string is refused: it would make
/// the principal `""`, one idempotency scope and rate-limit bucket shared by every such caller; so is one holding
/// control characters, which no store keeps as text.
pub fn caller_of(claims: &Map<String, Value>, customer_claim: &str) -> Result<Caller, AuthError> {
    let principal = claims.get("sub").and_then(Value::as_str).filter(|sub| !sub.trim().is_empty());
    let principal = principal.ok_or(AuthError::Invalid("the token's subject is empty or not a string"))?;
    if principal.chars().any(char::is_control) {
        return Err(AuthError::Invalid("the token's subject holds control characters"));
    }
    let principal = principal.to_owned();
    let customer_id = claims.get(customer_claim).and_then(Value::as_str).filter(|id| !id.is_empty()).map(str::to_owned);
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => Scopes::parse(scope.split(' ')),
        (_, Some(Value::String(scp))) => Scopes::parse(scp.split(' ')),
        (_, Some(Value::Array(scp))) => Scopes::parse(scp.iter().filter_map(Value::as_str)),
        _ => Scopes::default(),
    };
    Ok(Caller { principal, customer_id, scopes, trusted: false, expires_at: None })
}

/// A development token for `customer` with `scopes`, lasting `ttl_secs`: HS256, signed with `AUTH_HS256_SECRET`, for
/// `AUTH_ISSUER` and `AUTH_AUDIENCE` — what `command-service dev-token` prints.
pub fn dev_token(config: &AuthConfig, customer: &str, scopes: &[String], ttl_secs: u64) -> Result<String, ConfigError> {
    let secret = config.auth_hs256_secret.as_deref().filter(|s| !s.is_empty());
    let secret = secret.ok_or(ConfigError::Missing("AUTH_HS256_SECRET (dev tokens are HS256)"))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::ShortSecret);
    }
    let issuer = config.auth_issuer.as_deref().ok_or(ConfigError::Missing("AUTH_ISSUER"))?;
    let audience = config.auth_audience.as_deref().ok_or(ConfigError::Missing("AUTH_AUDIENCE"))?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".to_owned(), customer.into());
    claims.insert(config.auth_customer_claim.clone(), customer.into());
    claims.insert("iss".to_owned(), issuer.into());
    claims.insert("aud".to_owned(), audience.into());
    claims.insert("iat".to_owned(), now.into());
    claims.insert("exp".to_owned(), (now + ttl_secs).into());
    if !scopes.is_empty() {
        claims.insert("scope".to_owned(), scopes.join(" ").into());
    }
    mint_hs256(secret.as_bytes(), &claims).map_err(|_| ConfigError::ShortSecret)
}

/// An HS256 token with these claims (`exp` and the rest as given), signed with `secret`.
pub fn mint_hs256(secret: &[u8], claims: &Map<String, Value>) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "a development secret of thirty-two bytes or more";

    fn config() -> AuthConfig {
        AuthConfig {
            auth_mode: super::super::AuthMode::Jwt,
            auth_hs256_secret: Some(SECRET.to_owned()),
            auth_issuer: Some("https://issuer.test".to_owned()),
            auth_audience: Some("orders".to_owned()),
            ..AuthConfig::default()
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({"sub": "cust-1", "iss": "https://issuer.test", "aud": "orders", "exp": now + 60});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        claims.as_object().cloned().unwrap_or_default()
    }

    fn token(extra: Value) -> String {
        mint_hs256(SECRET.as_bytes(), &claims(extra)).expect("a token")
    }

    #[tokio::test]
    async fn a_good_token_makes_a_caller_of_its_claims() {
        let verifier = Verifier::new(&config()).expect("a verifier");
        let caller = verifier.verify(&token(json!({"scope": "orders:read:any openid"}))).await.expect("verified");
        assert_eq!(caller.principal, "cust-1");
        assert_eq!(caller.customer_id.as_deref(), Some("cust-1"));
        assert!(caller.scopes.read_any && !caller.scopes.write_any && !caller.trusted);
        // Accepted until `exp` and the leeway (30 s by default): a stream opened with it ends then. RFC 7519 lets
        // `exp` be a decimal: its whole seconds count.
        let expires = verifier.verify(&token(json!({"exp": 1_900_000_000}))).await.expect("verified").expires_at;
        assert_eq!(expires, Some(1_900_000_030));
        let decimal = verifier.verify(&token(json!({"exp": 1_900_000_000.75}))).await.expect("verified").expires_at;
        assert_eq!(decimal, Some(1_900_000_030));
        let scp = verifier.verify(&token(json!({"scp": ["orders:admin"]}))).await.expect("verified");
        assert!(scp.scopes.admin);
        // Scopes are separated by spaces (RFC 6749 §3.3), nothing else: a tab or a no-break space is part of a name.
        for glued in ["x\torders:admin", "orders:admin\u{a0}x", "x\u{3000}orders:admin"] {
            let caller = verifier.verify(&token(json!({"scope": glued}))).await.expect("verified");
            assert!(!caller.scopes.admin, "{glued:?}");
        }
    }

    #[tokio::test]
    async fn each_fault_of_a_token_is_refused_with_its_reason() {
        let verifier = Verifier::new(&config()).expect("a verifier");
        let now = jsonwebtoken::get_current_timestamp();
        let cases = [
            (token(json!({"exp": now - 120})), "expired"),
            (token(json!({"nbf": now + 120})), "not valid yet"),
            (token(json!({"iss": "https://elsewhere.test"})), "another issuer"),
            (token(json!({"aud": "billing"})), "another audience"),
            (mint_hs256(b"another secret, also thirty-two bytes long", &claims(json!({}))).expect("t"), "signature"),
            ("not.a.token".to_owned(), "malformed"),
        ];
        for (token, why) in cases {
            match verifier.verify(&token).await {
                Err(AuthError::Invalid(reason)) => assert!(reason.contains(why), "{why}: {reason}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        let mut no_sub = claims(json!({}));
        no_sub.remove("sub");
        let token = mint_hs256(SECRET.as_bytes(), &no_sub).expect("t");
        assert_eq!(verifier.verify(&token).await, Err(AuthError::Invalid("the token lacks a required claim")));
    }

    #[tokio::test]
    async fn a_subject_that_is_empty_or_not_a_string_is_refused() {
        // Such callers would all be principal "": one idempotency scope and one rate-limit bucket, as in `none` mode.
        let verifier = Verifier::new(&config()).expect("a verifier");
        for sub in [json!(""), json!("   "), json!(42), json!(["cust-1"]), json!({"id": "cust-1"}), json!(null)] {
            let refused = verifier.verify(&token(json!({ "sub": sub.clone() }))).await;
            assert!(matches!(refused, Err(AuthError::Invalid(_))), "{sub}: {refused:?}");
        }
        let empty = verifier.verify(&token(json!({ "sub": "" }))).await;
        assert_eq!(empty, Err(AuthError::Invalid("the token's subject is empty or not a string")));
        // Control characters (a NUL reached PostgreSQL as an idempotency key's scope: a 500).
        for sub in ["svc\u{0}", "a\nb", "\u{7f}x"] {
            let refused = verifier.verify(&token(json!({ "sub": sub }))).await;
            assert_eq!(refused, Err(AuthError::Invalid("the token's subject holds control characters")), "{sub:?}");
        }
    }

    #[tokio::test]
    async fn an_algorithm_without_a_configured_key_is_refused() {
        // Only a JWKS file: HS256 tokens are not accepted at all, whatever their secret.
        let dir = std::env::temp_dir().join(format!("jwks-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, r#"{"keys": []}"#).expect("write");
        let config = AuthConfig { auth_hs256_secret: None, auth_jwks_file: Some(dir.clone()), ..config() };
        let verifier = Verifier::new(&config).expect("a verifier");
        let refused = verifier.verify(&token(json!({}))).await;
        let _ = std::fs::remove_file(&dir);
        assert_eq!(refused, Err(AuthError::Invalid("the token's algorithm is not allowed")));
    }

    #[tokio::test]
    async fn a_dev_token_is_accepted_with_its_customer_and_scopes() {
        let token = dev_token(&config(), "cust-42", &["orders:read:any".to_owned()], 60).expect("a token");
        let caller = Verifier::new(&config()).expect("verifier").verify(&token).await.expect("verified");
        assert_eq!(caller.customer_id.as_deref(), Some("cust-42"));
        assert!(caller.scopes.read_any);
        assert!(dev_token(&AuthConfig { auth_hs256_secret: None, ..config() }, "c", &[], 60).is_err());
    }

    #[test]
    fn jwt_mode_needs_an_issuer_an_audience_and_a_key() {
        assert!(matches!(
            Verifier::new(&AuthConfig { auth_issuer: None, ..config() }),
            Err(ConfigError::Missing("AUTH_ISSUER"))
        ));
        assert!(matches!(
            Verifier::new(&AuthConfig { auth_hs256_secret: None, ..config() }),
            Err(ConfigError::Missing(_))
        ));
        assert!(matches!(
            Verifier::new(&AuthConfig { auth_hs256_secret: Some("short".to_owned()), ..config() }),
            Err(ConfigError::ShortSecret)
        ));
        for url in ["not a url", "ftp://idp.test/keys", "file:///etc/keys.json"] {
            let jwks = AuthConfig { auth_jwks_url: Some(url.to_owned()), ..config() };
            assert!(matches!(Verifier::new(&jwks), Err(ConfigError::JwksUrl(_))), "{url}");
        }
        let jwks = AuthConfig { auth_jwks_url: Some("https://idp.test/.well-known/jwks.json".to_owned()), ..config() };
        assert!(Verifier::new(&jwks).is_ok());
    }
}
