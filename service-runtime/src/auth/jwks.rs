//! The identity provider's public signing keys (a JWKS), from a URL or a file: read at first use, kept, and read again
//! when a token names a key that is not held (a key rotation) — at most once a second, so that tokens with made-up
//! key ids cannot make this process hammer the provider — and after an hour in any case.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Least time between two reads of the key set.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Longest a key set is kept without reading it again.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Longest a read of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum Source {
    Url(String),
    File(PathBuf),
}

#[derive(Debug)]
pub struct Jwks {
    source: Source,
    http: reqwest::Client,
    /// The keys held and when they were last read (`None`: never). One lock: a refresh is made by one request while
    /// the others wait for its result.
    held: Mutex<(JwkSet, Option<Instant>)>,
}

impl Jwks {
    pub fn new(source: Source) -> Self {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default();
        Self { source, http, held: Mutex::new((JwkSet { keys: Vec::new() }, None)) }
    }

    /// The key a token signed with `alg` names (`kid`), reading the set again if it is not held.
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, &'static str> {
        let mut held = self.held.lock().await;
        let stale = held.1.is_none_or(|at| at.elapsed() > MAX_AGE);
        let found = if stale { None } else { select(&held.0, kid, alg) };
        let jwk = match found {
            Some(jwk) => jwk.clone(),
            None => {
                if held.1.is_none_or(|at| at.elapsed() >= MIN_REFRESH) {
                    match self.fetch().await {
                        Ok(set) => *held = (set, Some(Instant::now())),
                        Err(reason) => {
                            tracing::warn!(%reason, "reading the signing keys failed; keeping the ones held")
                        }
                    }
                }
                select(&held.0, kid, alg).cloned().ok_or("the token names no signing key this service knows")?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|_| "the signing key is not usable")
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let text = match &self.source {
            // A small local file: read in place.
            Source::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string())?,
            Source::Url(url) => {
                let response = self.http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
                let response = response.error_for_status().map_err(|e| e.without_url().to_string())?;
                response.text().await.map_err(|e| e.to_string())?
            }
        };
        serde_json::from_str(&text).map_err(|e| format!("not a JWKS: {e}"))
    }
}

/// The one key of `set` that may verify a token signed with `alg` and naming `kid`: its id matches (a token without
/// a `kid` is taken only when exactly one key fits), its type is the algorithm's (RSA for RS256, P-256 for ES256 —
/// so a public key is never taken for an HMAC secret), and its own `alg` and `use`, if given, agree.
pub fn select<'a>(set: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let fits = |jwk: &&Jwk| {
        let family = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
            (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
            _ => false,
        };
        let declared = matches!(
            (jwk.common.key_algorithm, alg),
            (None, _) | (Some(KeyAlgorithm::RS256), Algorithm::RS256) | (Some(KeyAlgorithm::ES256), Algorithm::ES256)
        );
        let signing = matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature));
        family && declared && signing
    };
    match kid {
        Some(kid) => set.keys.iter().filter(fits).find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = set.keys.iter().filter(fits);
            let first = candidates.next();
            candidates.next().is_none().then_some(first).flatten()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: serde_json::Value) -> JwkSet {
        serde_json::from_value(serde_json::json!({ "keys": keys })).expect("a JWKS")
    }

    fn rsa(kid: &str) -> serde_json::Value {
        serde_json::json!({"kty": "RSA", "kid": kid, "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1Wl\
            UzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8\
            exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIu\
            QhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"})
    }

    fn p256(kid: &str) -> serde_json::Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[test]
    fn a_key_is_taken_only_for_its_own_algorithm_and_id() {
        let keys = set(serde_json::json!([rsa("r1"), p256("e1")]));
        assert!(select(&keys, Some("r1"), Algorithm::RS256).is_some());
        assert!(select(&keys, Some("e1"), Algorithm::ES256).is_some());
        assert!(select(&keys, Some("r1"), Algorithm::ES256).is_none(), "an RSA key never verifies ES256");
        assert!(select(&keys, Some("r1"), Algorithm::HS256).is_none(), "a public key is never an HMAC secret");
        assert!(select(&keys, Some("r2"), Algorithm::RS256).is_none(), "unknown kid");
        assert!(select(&keys, None, Algorithm::RS256).is_some(), "one RSA key: a token without kid may use it");
        let two = set(serde_json::json!([rsa("r1"), rsa("r2")]));
        assert!(select(&two, None, Algorithm::RS256).is_none(), "without kid, two candidates are one too many");
    }

    #[test]
    fn a_key_declared_for_another_use_or_algorithm_is_not_taken() {
        let mut encryption = rsa("r1");
        encryption["use"] = "enc".into();
        let mut declared_ps256 = rsa("r2");
        declared_ps256["alg"] = "PS256".into();
        let keys = set(serde_json::json!([encryption, declared_ps256]));
        assert!(select(&keys, Some("r1"), Algorithm::RS256).is_none());
        assert!(select(&keys, Some("r2"), Algorithm::RS256).is_none());
    }
}
