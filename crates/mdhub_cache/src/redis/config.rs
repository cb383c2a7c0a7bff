//! `[redis]`: where the Redis cache is and how to talk to it, in the form the
//! Heroku Redis add-on provides (`REDIS_URL`). The `///` docs on the fields
//! are the user documentation of each knob.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// Redis settings. With an empty `url` Redis is not used (the in-memory cache is).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[USER][:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS.
    /// A `#insecure` fragment on a `rediss://` URL turns certificate
    /// verification off (as `insecure_tls` does). `$REDIS_URL` sets it.
    /// Empty: Redis is not used. Printed with the password hidden.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// Prefix of every key mdhub writes, so several environments can share one
    /// Redis (`mdhub:`, `staging:mdhub:`). `clear` removes only keys under
    /// it. Default `mdhub:`.
    pub prefix: String,
    /// Accept any server certificate on `rediss://` (no verification). Heroku
    /// Redis uses a self-signed certificate, so it needs this; nowhere else
    /// should. Same as a `#insecure` URL fragment; no effect on `redis://`.
    /// Default false.
    pub insecure_tls: bool,
    /// Longest wait for one connection attempt (TCP, TLS and the handshake),
    /// in milliseconds. Default 5000.
    pub connect_timeout_ms: u64,
    /// Longest wait for any one cache operation's answer, in milliseconds;
    /// past it the operation fails as unavailable (retryable) instead of
    /// hanging while Redis is down or reconnecting. Default 1000.
    pub op_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            prefix: DEFAULT_PREFIX.into(),
            insecure_tls: false,
            connect_timeout_ms: 5_000,
            op_timeout_ms: 1_000,
        }
    }
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "mdhub:";

/// The Heroku add-on's variable, mapped to its `[redis]` key.
pub const HEROKU_VARIABLES: [(&str, &str); 1] = [("REDIS_URL", "url")];

/// A Redis configuration problem, naming the key; one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis.{key}: {message}")]
pub struct RedisConfigError {
    /// The key (`url`, `prefix`, …).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> RedisConfigError {
    RedisConfigError {
        key,
        message: message.into(),
    }
}

const URL_FORM: &str = "redis://[USER][:PASSWORD@]HOST[:PORT][/DB] or rediss://… for TLS";

impl RedisConfig {
    /// A configuration for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// Is Redis configured?
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Apply the Heroku variables present in `env` over this configuration.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        for (var, _) in HEROKU_VARIABLES {
            if let Some(v) = env.get(var) {
                self.url = v.clone();
            }
        }
    }

    /// Check every setting; the error is one line naming the key.
    pub fn validate(&self) -> Result<(), RedisConfigError> {
        self.connection_url()?;
        if self.prefix.is_empty() {
            return Err(bad(
                "prefix",
                "must not be empty (it keeps environments sharing one Redis apart)",
            ));
        }
        if let Some(c) = self.prefix.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(bad(
                "prefix",
                format!("{c:?} is not allowed (printable ASCII without spaces)"),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(bad("connect_timeout_ms", "must be at least 1"));
        }
        if self.op_timeout_ms == 0 {
            return Err(bad("op_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// The URL to connect with: validated, with `#insecure` when
    /// `insecure_tls` is set on a `rediss://` URL.
    pub(crate) fn connection_url(&self) -> Result<Url, RedisConfigError> {
        let text = self.url.trim();
        if text.is_empty() {
            return Err(bad("url", format!("empty (expected {URL_FORM})")));
        }
        // The parser's message never repeats the text, so no password leaks.
        let mut url = Url::parse(text)
            .map_err(|e| bad("url", format!("not a URL ({e}); expected {URL_FORM}")))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(bad(
                    "url",
                    format!("scheme `{other}://` is not supported; expected {URL_FORM}"),
                ));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("url", format!("no host; expected {URL_FORM}")));
        }
        let db = url.path().trim_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(bad(
                "url",
                format!("the path must be a database number, not `/{db}`"),
            ));
        }
        match url.fragment() {
            None => {}
            Some("insecure") if tls => {}
            Some("insecure") => {
                return Err(bad(
                    "url",
                    "`#insecure` only applies to rediss:// (TLS) URLs",
                ));
            }
            Some(other) => {
                return Err(bad(
                    "url",
                    format!("unknown fragment `#{other}` (only `#insecure` is supported)"),
                ));
            }
        }
        if tls && self.insecure_tls {
            url.set_fragment(Some("insecure"));
        }
        Ok(url)
    }

    /// TLS (`rediss://`)?
    pub fn tls(&self) -> bool {
        self.connection_url().is_ok_and(|u| u.scheme() == "rediss")
    }

    /// Is the server's certificate verified? False for `redis://` (no TLS) and
    /// for `rediss://` with `#insecure` or `insecure_tls`.
    pub fn verifies_certificate(&self) -> bool {
        self.connection_url()
            .is_ok_and(|u| u.scheme() == "rediss" && u.fragment() != Some("insecure"))
    }

    /// The URL with its password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        redact(self.url.trim())
    }

    /// `op_timeout_ms` as a duration.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }

    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// The configuration as it may be logged: the URL without its password.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted())
            .field("prefix", &self.prefix)
            .field("insecure_tls", &self.insecure_tls)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("op_timeout_ms", &self.op_timeout_ms)
            .finish()
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact(url.trim()))
}

/// Hide the password of a URL, even one that does not parse.
fn redact(text: &str) -> String {
    if let Ok(mut url) = Url::parse(text) {
        if url.password().is_some() && url.set_password(Some("***")).is_ok() {
            return url.into();
        }
        if url.password().is_none() {
            return url.into();
        }
    }
    // Unparseable: hide everything between `://` and the last `@`.
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => {
            format!("{}***{}", &text[..start + 3], &text[at..])
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> RedisConfig {
        RedisConfig::new(url)
    }

    #[test]
    fn plain_url_with_defaults() {
        let c = with_url("redis://127.0.0.1:6379");
        c.validate().unwrap();
        assert!(!c.tls());
        assert!(!c.verifies_certificate());
        assert_eq!(c.prefix, "mdhub:");
        assert_eq!(c.op_timeout(), Duration::from_secs(1));
        assert_eq!(c.redacted(), "redis://127.0.0.1:6379");
        assert_eq!(
            c.connection_url().unwrap().as_str(),
            "redis://127.0.0.1:6379"
        );
        // Host only, default port.
        with_url("redis://localhost").validate().unwrap();
    }

    #[test]
    fn password_and_database_are_kept_and_redacted() {
        let c = with_url("redis://:s3cret@cache.internal:6380/2");
        c.validate().unwrap();
        let u = c.connection_url().unwrap();
        assert_eq!(u.password(), Some("s3cret"));
        assert_eq!(u.port(), Some(6380));
        assert_eq!(u.path(), "/2");
        assert_eq!(c.redacted(), "redis://:***@cache.internal:6380/2");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let toml_like = serde_json::to_string(&c).unwrap();
        assert!(!toml_like.contains("s3cret"), "{toml_like}");
        // A user name stays visible; only the password is hidden.
        assert_eq!(
            with_url("redis://default:pw@h:1").redacted(),
            "redis://default:***@h:1"
        );
    }

    #[test]
    fn tls_urls_verify_unless_told_not_to() {
        let c = with_url("rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:25070");
        c.validate().unwrap();
        assert!(c.tls());
        assert!(c.verifies_certificate());
        assert_eq!(c.connection_url().unwrap().fragment(), None);

        let mut flag = c.clone();
        flag.insecure_tls = true;
        flag.validate().unwrap();
        assert!(!flag.verifies_certificate());
        assert_eq!(
            flag.connection_url().unwrap().as_str(),
            "rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:25070#insecure"
        );
        assert_eq!(
            flag.redacted(),
            "rediss://:***@ec2-1-2-3-4.compute-1.amazonaws.com:25070",
            "the flag is not part of the configured URL"
        );
    }

    #[test]
    fn insecure_fragment_is_the_redis_rs_convention() {
        let c = with_url("rediss://:pw@host:6380/#insecure");
        c.validate().unwrap();
        assert!(!c.verifies_certificate());
        assert_eq!(c.redacted(), "rediss://:***@host:6380/#insecure");
        // Flag and fragment together are fine.
        let mut both = c.clone();
        both.insecure_tls = true;
        assert_eq!(
            both.connection_url().unwrap().as_str(),
            "rediss://:pw@host:6380/#insecure"
        );
        // The flag does nothing without TLS.
        let mut plain = with_url("redis://host");
        plain.insecure_tls = true;
        plain.validate().unwrap();
        assert_eq!(plain.connection_url().unwrap().fragment(), None);
    }

    #[test]
    fn bad_urls_give_one_line_naming_the_key() {
        let cases = [
            ("http://host:6379", "scheme `http://` is not supported"),
            ("host:6379", "scheme `host://` is not supported"),
            ("127.0.0.1:6379", "not a URL"),
            ("", "empty"),
            ("redis://", "no host"),
            ("redis://host/db1", "database number"),
            ("redis://host#insecure", "only applies to rediss://"),
            ("rediss://host#nocheck", "unknown fragment"),
            ("redis://:pw@[::1", "not a URL"),
        ];
        for (url, want) in cases {
            let err = with_url(url).validate().unwrap_err().to_string();
            assert!(err.starts_with("redis.url: "), "{url}: {err}");
            assert!(err.contains(want), "{url}: {err}");
            assert!(!err.contains('\n'), "{url}: {err}");
            assert!(!err.contains("pw"), "{url}: password leaked: {err}");
        }
    }

    #[test]
    fn other_settings_are_checked() {
        let mut c = with_url("redis://h");
        c.prefix = String::new();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("redis.prefix:")
        );
        c.prefix = "my env:".into();
        assert!(c.validate().is_err());
        c.prefix = "staging:mdhub:".into();
        c.op_timeout_ms = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "redis.op_timeout_ms: must be at least 1"
        );
    }

    #[test]
    fn unparseable_urls_are_still_redacted() {
        assert_eq!(redact("redis://:pw@[::1"), "redis://***@[::1");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn heroku_variable_sets_the_url() {
        let mut c = RedisConfig::default();
        assert!(!c.enabled());
        c.apply_env(&[("REDIS_URL".to_string(), "rediss://h:1".to_string())].into());
        assert!(c.enabled());
        assert_eq!(c.url, "rediss://h:1");
    }

    #[test]
    fn parses_from_toml_shaped_json_and_refuses_unknown_keys() {
        let c: RedisConfig =
            serde_json::from_str(r#"{"url":"redis://h","prefix":"dev:"}"#).unwrap();
        assert_eq!(c.prefix, "dev:");
        assert_eq!(c.op_timeout_ms, 1000);
        assert!(serde_json::from_str::<RedisConfig>(r#"{"urll":"redis://h"}"#).is_err());
    }
}
