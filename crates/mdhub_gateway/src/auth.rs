//! Who may connect, and what they may see.
//!
//! A client presents a credential — an API key or a JWT — in the
//! `Authorization: Bearer …` header, a `token` query parameter, or the first
//! frame (`{"action":"auth","token":"…"}`, for browsers, which cannot set
//! headers on a WebSocket). [`Authenticator::verify`] turns it into a
//! [`Grant`]: the user, the symbol patterns and channels they are entitled
//! to, when the grant expires, and how many connections the user may hold.
//!
//! API keys are configured by the SHA-256 of the key (`mdhub keygen` makes
//! one), never the key itself. JWTs are HS256 with a shared secret, or
//! RS256/ES256 with a public key; entitlements come from the `mdhub` claim
//! (`{"symbols":["BTC-*"],"channels":["trades"]}`) and a token without it
//! is entitled to nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mdhub_types::ChannelSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whether clients must authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Off when the gateway listens on loopback only, required otherwise.
    #[default]
    Auto,
    /// Every client is entitled to everything.
    Off,
    /// Every WebSocket and data request needs a credential.
    Required,
}

/// `[gateway.auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `auto` (default), `off` or `required`.
    pub mode: AuthMode,
    /// A connection that carried no credential must send an `auth` frame
    /// within this many milliseconds (else 4401). Default 10000.
    pub timeout_ms: u64,
    /// API keys, by the SHA-256 of the key.
    pub keys: Vec<ApiKeyConfig>,
    /// HS256 shared secret for JWTs (`mdhub config` prints `***`).
    #[serde(serialize_with = "hidden")]
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA or EC P-256) for RS256/ES256 JWTs.
    pub jwt_public_key: Option<String>,
    /// Required `iss` of JWTs, if set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` of JWTs, if set.
    pub jwt_audience: Option<String>,
    /// Connections one user (key name or JWT `sub`) may hold at once; 0:
    /// no limit. Default 0 here; a key may set its own.
    pub max_connections_per_user: usize,
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds it (shown in logs and metrics, counted for limits).
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// Symbol patterns the key is entitled to: `AAPL`, `BTC-*`, `*`.
    #[serde(default = "everything")]
    pub symbols: Vec<String>,
    /// Channels: `quotes`, `trades`, `status`. Default all.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Connections this key may hold at once (overrides the default).
    #[serde(default)]
    pub max_connections: Option<usize>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Auto,
            timeout_ms: 10_000,
            keys: Vec::new(),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            max_connections_per_user: 0,
        }
    }
}

/// Open connections per user, for `max_connections`.
#[derive(Debug, Default)]
pub(crate) struct Users(parking_lot::Mutex<HashMap<String, usize>>);

/// One of a user's connections; released on drop.
#[derive(Debug)]
pub(crate) struct UserSlot {
    users: std::sync::Arc<Users>,
    user: String,
}

impl Users {
    /// A slot for `grant`'s user, unless they hold their limit already.
    pub(crate) fn acquire(self: &std::sync::Arc<Self>, grant: &Grant) -> Option<UserSlot> {
        let mut m = self.0.lock();
        let n = m.entry(grant.user.clone()).or_default();
        if grant.max_connections != 0 && *n >= grant.max_connections {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            users: self.clone(),
            user: grant.user.clone(),
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut m = self.users.0.lock();
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

/// An HS256 JWT for `sub`, valid `ttl_secs` from now (negative: already
/// expired, for tests), entitled to `symbols` and `channels` (`mdhub token`).
pub fn mint_hs256(
    secret: &str,
    sub: &str,
    ttl_secs: i64,
    symbols: &[String],
    channels: &[String],
) -> Result<String, AuthError> {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "sub": sub,
        "iat": now,
        "exp": now + ttl_secs,
        "mdhub": {"symbols": symbols, "channels": channels},
    });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| AuthError::Config(e.to_string()))
}

/// A secret as `***` when printed.
fn hidden<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

fn everything() -> Vec<String> {
    vec!["*".into()]
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Nothing presented.
    #[error(
        "no credential: send an API key or JWT (Authorization: Bearer …, ?token=…, or {{\"action\":\"auth\",\"token\":…}})"
    )]
    Missing,
    /// Not a configured key, and not a JWT.
    #[error("unknown API key")]
    UnknownKey,
    /// A JWT that does not verify.
    #[error("invalid token: {0}")]
    BadToken(String),
    /// A JWT past its `exp`.
    #[error("token expired")]
    Expired,
    /// The configuration cannot be used.
    #[error("gateway.auth: {0}")]
    Config(String),
}

/// What a verified credential allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Key name or JWT subject.
    pub user: String,
    /// Upper-case symbol patterns.
    symbols: Vec<String>,
    /// The entitled channels.
    channels: ChannelSet,
    /// When the credential stops being valid.
    pub expires_at: Option<SystemTime>,
    /// Connections the user may hold; 0: no limit.
    pub max_connections: usize,
}

impl Grant {
    /// Everything, for everyone (auth off).
    pub fn open() -> Grant {
        Grant {
            user: "anonymous".into(),
            symbols: everything(),
            channels: ChannelSet::ALL,
            expires_at: None,
            max_connections: 0,
        }
    }

    /// Every channel of `symbols` (upper-case patterns), for tests.
    #[cfg(test)]
    pub(crate) fn of_symbols(symbols: &[&str]) -> Grant {
        Grant {
            user: "tester".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            ..Grant::open()
        }
    }

    /// Whether `symbol` is entitled.
    pub fn allows(&self, symbol: &str) -> bool {
        self.symbols.iter().any(|p| glob(p, symbol))
    }

    /// Whether every symbol is entitled (needed for free-form SQL).
    pub fn allows_all(&self) -> bool {
        self.symbols.iter().any(|p| p == "*")
    }

    /// The entitled channels among `wanted`.
    pub fn channels(&self, wanted: ChannelSet) -> ChannelSet {
        self.channels.intersection(wanted)
    }

    /// Time left before expiry (zero when past), if it expires.
    pub fn remaining(&self) -> Option<Duration> {
        let at = self.expires_at?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn channel_mask(channels: &[String]) -> Result<ChannelSet, AuthError> {
    if channels.is_empty() {
        return Ok(ChannelSet::ALL);
    }
    ChannelSet::parse(channels)
        .map_err(|bad| AuthError::Config(format!("unknown channel {:?}", bad[0])))
}

/// The `mdhub` claim of a JWT.
#[derive(Debug, Default, Deserialize)]
struct Entitlements {
    #[serde(default)]
    symbols: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    mdhub: Option<Entitlements>,
}

struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Verifies credentials against `[gateway.auth]`.
#[derive(Debug)]
pub struct Authenticator {
    required: bool,
    keys: HashMap<[u8; 32], Grant>,
    jwts: Vec<Jwt>,
    default_max: usize,
    /// Credentials refused since start (`mdhub_gateway_auth_refused_total`).
    refused: std::sync::atomic::AtomicU64,
    /// When a refusal was last logged (Unix seconds): at most one line a second.
    logged_at: std::sync::atomic::AtomicU64,
}

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 §3.2 asks.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Authenticator {
    /// Build from the configuration; `public` says whether the listener is
    /// reachable from other machines (it decides `auto`). Required with no
    /// key and no JWT key configured is an error: nobody could connect.
    pub fn new(cfg: &AuthConfig, public: bool) -> Result<Authenticator, AuthError> {
        let required = match cfg.mode {
            AuthMode::Off => false,
            AuthMode::Required => true,
            AuthMode::Auto => public,
        };
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
        let mut keys = HashMap::new();
        for k in &cfg.keys {
            let hash = parse_sha256(&k.sha256).ok_or_else(|| {
                AuthError::Config(format!("key {:?}: sha256 must be 64 hex digits", k.name))
            })?;
            let grant = Grant {
                user: k.name.clone(),
                symbols: k.symbols.iter().map(|s| s.to_ascii_uppercase()).collect(),
                channels: channel_mask(&k.channels)?,
                expires_at: None,
                max_connections: k.max_connections.unwrap_or(cfg.max_connections_per_user),
            };
            keys.insert(hash, grant);
        }
        let mut jwts = Vec::new();
        if let Some(secret) = cfg.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_JWT_SECRET_BYTES {
                return Err(AuthError::Config(format!(
                    "gateway.auth.jwt_secret: {} bytes; HS256 needs at least {MIN_JWT_SECRET_BYTES} (256 bits): `openssl rand -hex 32` makes one",
                    secret.len()
                )));
            }
            jwts.push(Jwt {
                key: DecodingKey::from_secret(secret.as_bytes()),
                validation: validation(Algorithm::HS256, cfg),
            });
        }
        if let Some(pem) = cfg.jwt_public_key.as_deref() {
            jwts.push(public_key(pem, cfg)?);
        }
        if required && keys.is_empty() && jwts.is_empty() {
            return Err(AuthError::Config(
                "authentication is required (mode = \"required\", or \"auto\" on a public address) \
                 but no keys and no JWT key are configured; add [[gateway.auth.keys]] (mdhub keygen) \
                 or set gateway.auth.mode = \"off\" to serve everyone"
                    .into(),
            ));
        }
        Ok(Authenticator {
            refused: Default::default(),
            logged_at: Default::default(),
            required,
            keys,
            jwts,
            default_max: cfg.max_connections_per_user,
        })
    }

    /// Whether clients must present a credential.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The grant of a credential: a JWT (three dot-separated parts) or an
    /// API key.
    pub fn verify(&self, credential: &str) -> Result<Grant, AuthError> {
        let r = self.verify_inner(credential);
        if let Err(e) = &r
            && !matches!(e, AuthError::Missing)
        {
            self.note_refused(e);
        }
        r
    }

    /// Credentials refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Count a refusal; log it, at most once a second (a client retrying a
    /// bad key must not flood the log).
    fn note_refused(&self, e: &AuthError) {
        use std::sync::atomic::Ordering;
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.logged_at.load(Ordering::Relaxed);
        if now > last
            && self
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, refused_total = n, "refused a credential");
        }
    }

    fn verify_inner(&self, credential: &str) -> Result<Grant, AuthError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(AuthError::Missing);
        }
        if credential.split('.').count() == 3 && !self.jwts.is_empty() {
            return self.verify_jwt(credential);
        }
        let hash: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        // The map is keyed by the hash of a secret: looking it up reveals
        // nothing about keys the caller does not already hold.
        self.keys.get(&hash).cloned().ok_or(AuthError::UnknownKey)
    }

    fn verify_jwt(&self, token: &str) -> Result<Grant, AuthError> {
        let mut last = AuthError::BadToken("no JWT key configured".into());
        for j in &self.jwts {
            match jsonwebtoken::decode::<Claims>(token, &j.key, &j.validation) {
                Ok(data) => return self.grant_of(data.claims),
                Err(e) => {
                    last = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                        _ => AuthError::BadToken(e.to_string()),
                    }
                }
            }
        }
        Err(last)
    }

    fn grant_of(&self, c: Claims) -> Result<Grant, AuthError> {
        // `exp` is whole seconds and the library accepts its last second;
        // a grant with no time left would be closed at once and come back.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if c.exp <= now.as_secs() {
            return Err(AuthError::Expired);
        }
        let e = c.mdhub.unwrap_or_default();
        let channels = channel_mask(&e.channels).map_err(|e| AuthError::BadToken(e.to_string()))?;
        Ok(Grant {
            user: c.sub,
            symbols: e.symbols.iter().map(|s| s.to_ascii_uppercase()).collect(),
            channels,
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(c.exp)),
            max_connections: e.max_connections.unwrap_or(self.default_max),
        })
    }
}

fn validation(alg: Algorithm, cfg: &AuthConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 0;
    // A token is not valid before its `nbf`, when it has one.
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "sub"]);
    if let Some(iss) = &cfg.jwt_issuer {
        v.set_issuer(&[iss]);
    }
    match &cfg.jwt_audience {
        Some(aud) => v.set_audience(&[aud]),
        None => v.validate_aud = false,
    }
    v
}

/// An RSA (RS256) or EC P-256 (ES256) public key, as PEM text or a path.
fn public_key(pem: &str, cfg: &AuthConfig) -> Result<Jwt, AuthError> {
    let text = if pem.contains("-----BEGIN") {
        pem.to_string()
    } else {
        std::fs::read_to_string(pem)
            .map_err(|e| AuthError::Config(format!("jwt_public_key {pem}: {e}")))?
    };
    if let Ok(key) = DecodingKey::from_ec_pem(text.as_bytes()) {
        return Ok(Jwt {
            key,
            validation: validation(Algorithm::ES256, cfg),
        });
    }
    DecodingKey::from_rsa_pem(text.as_bytes())
        .map(|key| Jwt {
            key,
            validation: validation(Algorithm::RS256, cfg),
        })
        .map_err(|e| {
            AuthError::Config(format!("jwt_public_key: not an RSA or EC public key ({e})"))
        })
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random API key and the hex SHA-256 to configure for it.
pub fn new_key() -> (String, String) {
    let bytes: [u8; 24] = rand::random();
    let key = format!("mdk_{}", hex(&bytes));
    let hash = hex(&Sha256::digest(key.as_bytes()));
    (key, hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The credential a request presents in its headers or query string.
pub fn presented(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(|v| v.trim().to_string());
    bearer.or_else(|| url_param(query?, "token"))
}

/// One `key=value` of a query string, percent-decoded.
fn url_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexed = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hexed, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
