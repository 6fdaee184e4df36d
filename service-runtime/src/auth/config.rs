//! The authentication settings both services read (`AUTH_*`), flattened into each service's configuration.

use std::path::PathBuf;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every caller is trusted (local development, the demo, most tests).
    #[default]
    None,
    /// A bearer JWT on every endpoint that is not public.
    Jwt,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// `none` (every caller trusted) or `jwt`.
    #[arg(long, env = "AUTH_MODE", value_enum, default_value_t = AuthMode::None)]
    pub auth_mode: AuthMode,
    /// Where the identity provider publishes its signing keys (RS256, ES256); fetched, cached, and fetched again when
    /// a token names a key it does not hold.
    #[arg(long, env = "AUTH_JWKS_URL")]
    pub auth_jwks_url: Option<String>,
    /// The signing keys as a JWKS file, instead of a URL (read again when a token names a key it does not hold).
    #[arg(long, env = "AUTH_JWKS_FILE")]
    pub auth_jwks_file: Option<PathBuf>,
    /// A shared secret for HS256 tokens: for development only (`command-service dev-token` mints them).
    #[arg(long, env = "AUTH_HS256_SECRET", hide_env_values = true)]
    pub auth_hs256_secret: Option<String>,
    /// The `iss` every token must carry (required in `jwt` mode).
    #[arg(long, env = "AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// The `aud` every token must carry (required in `jwt` mode).
    #[arg(long, env = "AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// The claim that holds the caller's customer id.
    #[arg(long, env = "AUTH_CUSTOMER_CLAIM", default_value = "sub")]
    pub auth_customer_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, env = "AUTH_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub auth_leeway_secs: u64,
    /// The key that signs view-stream tickets; set the same on every query-service replica (a ticket minted by one is
    /// then good on all). Without it each process makes a random one.
    #[arg(long, env = "AUTH_TICKET_SECRET", hide_env_values = true)]
    pub auth_ticket_secret: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::None,
            auth_jwks_url: None,
            auth_jwks_file: None,
            auth_hs256_secret: None,
            auth_issuer: None,
            auth_audience: None,
            auth_customer_claim: "sub".to_owned(),
            auth_leeway_secs: 30,
            auth_ticket_secret: None,
        }
    }
}

/// A `jwt` configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("AUTH_MODE=jwt needs {0}")]
    Missing(&'static str),
    #[error("set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both")]
    TwoKeySources,
    #[error("AUTH_JWKS_FILE {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("AUTH_HS256_SECRET must be at least 32 bytes")]
    ShortSecret,
    #[error("AUTH_JWKS_URL: {0}")]
    JwksUrl(String),
}
