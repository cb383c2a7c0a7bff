//! `[kafka]`: where the brokers are and how to talk to them, in the form the
//! Heroku Kafka add-on provides (`KAFKA_URL`, `KAFKA_TRUSTED_CERT`,
//! `KAFKA_CLIENT_CERT`, `KAFKA_CLIENT_CERT_KEY`, `KAFKA_PREFIX`), plus any
//! librdkafka property for other providers (SASL for Confluent Cloud, Aiven,
//! MSK).

use std::collections::{BTreeMap, HashMap};

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Kafka settings. With an empty `url` Kafka is not used (the embedded log is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Brokers, comma-separated: `kafka+ssl://host:port` (TLS),
    /// `kafka://host:port` (plain) or `host:port`. `$KAFKA_URL` sets it.
    /// Empty: Kafka is not used.
    pub url: String,
    /// PEM of the CA certificate(s) that signed the brokers' certificates —
    /// during a rotation Heroku puts two here; all are trusted.
    /// `$KAFKA_TRUSTED_CERT` sets it.
    pub trusted_cert: Option<String>,
    /// PEM of the client certificate (mutual TLS). `$KAFKA_CLIENT_CERT`.
    pub client_cert: Option<String>,
    /// PEM of the client certificate's private key. `$KAFKA_CLIENT_CERT_KEY`.
    pub client_cert_key: Option<String>,
    /// Prefix of every topic AND consumer-group name (Heroku multi-tenant
    /// plans; ends with a dot). `$KAFKA_PREFIX` sets it. Default empty.
    pub prefix: String,
    /// Verify that the broker's certificate names its host. Off by default:
    /// Heroku's broker certificates do not match their hostnames (the CA is
    /// still verified). Turn on for providers whose certificates do.
    pub verify_hostname: bool,
    /// Create `price-quotes` / `price-trades` when missing (Heroku never
    /// auto-creates; there this fails and the error says how to create them).
    /// Default true.
    pub create_topics: bool,
    /// Partitions of topics mdhub creates. Cannot change later: the symbol →
    /// partition mapping depends on it. Default 8.
    pub partitions: u32,
    /// Replication factor of topics mdhub creates; -1 = the broker's default.
    /// Default -1.
    pub replication_factor: i32,
    /// Idempotent producer (`enable.idempotence`): no duplicates or reordering
    /// on retries. Some plans need an ACL for it; turn off only there.
    /// Default true.
    pub idempotence: bool,
    /// Compression of produced batches: `none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`. Default `lz4`.
    pub compression: String,
    /// How long the producer waits to fill a batch, in milliseconds: the
    /// latency/throughput knob. 0–1 for lowest latency; 5–20 for the most
    /// throughput. Default 1.
    pub linger_ms: u32,
    /// Most messages the producer buffers while brokers are slow or down
    /// (`queue.buffering.max.messages`). At the bound, publishing waits and
    /// retries (backpressure reaches the feeds); nothing is dropped. Default 1000000.
    pub buffer_max_messages: u32,
    /// How long the producer retries one message before giving up on it
    /// (`message.timeout.ms`); the ingest stage then publishes it again.
    /// Default 300000 (5 minutes).
    pub message_timeout_ms: u32,
    /// Longest time, in milliseconds, a broker may hold a consumer's fetch
    /// when it has no new data (`fetch.wait.max.ms`). Kafka answers as soon
    /// as data arrives; brokers that wait the full time (librdkafka's mock)
    /// add up to this much latency. Lower = lower latency, more idle
    /// requests. Default 5.
    pub fetch_wait_ms: u32,
    /// Any librdkafka property, applied last (e.g. `"sasl.mechanism" = "PLAIN"`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            url: String::new(),
            trusted_cert: None,
            client_cert: None,
            client_cert_key: None,
            prefix: String::new(),
            verify_hostname: false,
            create_topics: true,
            partitions: 8,
            replication_factor: -1,
            idempotence: true,
            compression: "lz4".into(),
            linger_ms: 1,
            buffer_max_messages: 1_000_000,
            message_timeout_ms: 300_000,
            fetch_wait_ms: 5,
            properties: BTreeMap::new(),
        }
    }
}

/// A Kafka configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kafka.{key}: {message}")]
pub struct KafkaConfigError {
    /// The key (`url`, `client_cert`, …).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> KafkaConfigError {
    KafkaConfigError {
        key,
        message: message.into(),
    }
}

/// The Heroku add-on's variables, mapped to `[kafka]` keys. Used by the
/// binary's configuration layering; kept here so the mapping is tested with
/// the client configuration it produces.
pub const HEROKU_VARIABLES: [(&str, &str); 5] = [
    ("KAFKA_URL", "url"),
    ("KAFKA_TRUSTED_CERT", "trusted_cert"),
    ("KAFKA_CLIENT_CERT", "client_cert"),
    ("KAFKA_CLIENT_CERT_KEY", "client_cert_key"),
    ("KAFKA_PREFIX", "prefix"),
];

impl KafkaConfig {
    /// Is Kafka configured?
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Apply the Heroku variables present in `env` over this configuration.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        for (var, key) in HEROKU_VARIABLES {
            if let Some(v) = env.get(var) {
                match key {
                    "url" => self.url = v.clone(),
                    "trusted_cert" => self.trusted_cert = Some(v.clone()),
                    "client_cert" => self.client_cert = Some(v.clone()),
                    "client_cert_key" => self.client_cert_key = Some(v.clone()),
                    _ => self.prefix = v.clone(),
                }
            }
        }
    }

    /// `host:port` list and whether TLS is on.
    pub fn brokers(&self) -> Result<(String, bool), KafkaConfigError> {
        let mut hosts = Vec::new();
        let mut tls = None;
        for raw in self.url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (is_tls, rest) = if let Some(r) = raw.strip_prefix("kafka+ssl://") {
                (true, r)
            } else if let Some(r) = raw.strip_prefix("kafka://") {
                (false, r)
            } else if raw.contains("://") {
                return Err(bad(
                    "url",
                    format!("{raw:?}: scheme must be kafka:// or kafka+ssl://"),
                ));
            } else {
                (false, raw)
            };
            let rest = rest.trim_end_matches('/');
            let ok = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(bad("url", format!("{raw:?}: expected host:port")));
            }
            if tls.is_some_and(|t| t != is_tls) {
                return Err(bad("url", "mixes kafka:// and kafka+ssl:// brokers"));
            }
            tls = Some(is_tls);
            hosts.push(rest.to_string());
        }
        if hosts.is_empty() {
            return Err(bad(
                "url",
                "no brokers (expected e.g. kafka+ssl://host:9096,kafka+ssl://host2:9096)",
            ));
        }
        let tls = tls.unwrap_or(false) || self.trusted_cert.is_some() || self.client_cert.is_some();
        Ok((hosts.join(","), tls))
    }

    /// Range and consistency checks, naming the key.
    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        self.brokers()?;
        for (key, pem, what) in [
            ("trusted_cert", &self.trusted_cert, "CERTIFICATE"),
            ("client_cert", &self.client_cert, "CERTIFICATE"),
            ("client_cert_key", &self.client_cert_key, "PRIVATE KEY"),
        ] {
            if let Some(p) = pem
                && (!p.contains("-----BEGIN ") || !p.contains(what))
            {
                return Err(bad(
                    key,
                    format!("not PEM text with a {what} (give the PEM contents, not a file name)"),
                ));
            }
        }
        if self.client_cert.is_some() != self.client_cert_key.is_some() {
            return Err(bad(
                "client_cert_key",
                "client_cert and client_cert_key go together",
            ));
        }
        if self.partitions == 0 {
            return Err(bad("partitions", "must be at least 1"));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            return Err(bad(
                "compression",
                format!(
                    "{:?}: use none, gzip, snappy, lz4 or zstd",
                    self.compression
                ),
            ));
        }
        Ok(())
    }

    /// A topic or group name with the prefix.
    pub fn prefixed(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The librdkafka settings every client shares: brokers and security,
    /// then `properties`.
    pub fn client_config(&self) -> Result<ClientConfig, KafkaConfigError> {
        self.validate()?;
        let (brokers, tls) = self.brokers()?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers);
        c.set("client.id", concat!("mdhub/", env!("CARGO_PKG_VERSION")));
        if tls {
            c.set("security.protocol", "ssl");
            if let Some(ca) = &self.trusted_cert {
                c.set("ssl.ca.pem", ca.trim());
            }
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_cert_key) {
                c.set("ssl.certificate.pem", cert.trim());
                c.set("ssl.key.pem", key.trim());
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if self.verify_hostname {
                    "https"
                } else {
                    "none"
                },
            );
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        Ok(c)
    }

    /// Producer settings: Java-compatible partitioning, acks=all, idempotence,
    /// compression, linger and the buffering bound.
    pub fn producer_config(&self) -> Result<ClientConfig, KafkaConfigError> {
        let mut c = self.client_config()?;
        c.set("partitioner", "murmur2_random");
        c.set("acks", "all");
        c.set(
            "enable.idempotence",
            if self.idempotence { "true" } else { "false" },
        );
        c.set("compression.codec", &self.compression);
        c.set("linger.ms", self.linger_ms.to_string());
        c.set(
            "queue.buffering.max.messages",
            self.buffer_max_messages.to_string(),
        );
        c.set("message.timeout.ms", self.message_timeout_ms.to_string());
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA1: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake1\n-----END CERTIFICATE-----\n";
    const CA2: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake2\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n";

    fn heroku_env() -> HashMap<String, String> {
        [
            ("KAFKA_URL", "kafka+ssl://ec2-1.compute.amazonaws.com:9096,kafka+ssl://ec2-2.compute.amazonaws.com:9096"),
            ("KAFKA_TRUSTED_CERT", &format!("{CA1}{CA2}")),
            ("KAFKA_CLIENT_CERT", CA1),
            ("KAFKA_CLIENT_CERT_KEY", KEY),
            ("KAFKA_PREFIX", "columbia-12345."),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn heroku_variables_become_a_tls_client() {
        let mut k = KafkaConfig::default();
        k.apply_env(&heroku_env());
        let c = k.producer_config().unwrap();
        assert_eq!(
            c.get("bootstrap.servers"),
            Some("ec2-1.compute.amazonaws.com:9096,ec2-2.compute.amazonaws.com:9096")
        );
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("ssl.endpoint.identification.algorithm"), Some("none"));
        let ca = c.get("ssl.ca.pem").unwrap();
        assert_eq!(
            ca.matches("BEGIN CERTIFICATE").count(),
            2,
            "both CAs during a rotation"
        );
        assert!(c.get("ssl.key.pem").unwrap().contains("PRIVATE KEY"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(k.prefixed("price-quotes"), "columbia-12345.price-quotes");
    }

    #[test]
    fn plain_brokers_and_extra_properties() {
        let k = KafkaConfig {
            url: "kafka://127.0.0.1:9092, localhost:9093".into(),
            properties: [("sasl.mechanism".to_string(), "PLAIN".to_string())].into(),
            ..KafkaConfig::default()
        };
        let c = k.client_config().unwrap();
        assert_eq!(
            c.get("bootstrap.servers"),
            Some("127.0.0.1:9092,localhost:9093")
        );
        assert_eq!(c.get("security.protocol"), None);
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: [(KafkaConfig, &str); 6] = [
            (
                KafkaConfig {
                    url: "http://x:1".into(),
                    ..Default::default()
                },
                "kafka.url",
            ),
            (
                KafkaConfig {
                    url: "kafka://x".into(),
                    ..Default::default()
                },
                "kafka.url",
            ),
            (
                KafkaConfig {
                    url: "kafka://x:1,kafka+ssl://y:2".into(),
                    ..Default::default()
                },
                "mixes",
            ),
            (
                KafkaConfig {
                    url: "kafka+ssl://x:1".into(),
                    trusted_cert: Some("/etc/ca.pem".into()),
                    ..Default::default()
                },
                "kafka.trusted_cert",
            ),
            (
                KafkaConfig {
                    url: "kafka+ssl://x:1".into(),
                    client_cert: Some(CA1.into()),
                    ..Default::default()
                },
                "kafka.client_cert_key",
            ),
            (
                KafkaConfig {
                    url: "kafka://x:1".into(),
                    compression: "brotli".into(),
                    ..Default::default()
                },
                "kafka.compression",
            ),
        ];
        for (k, want) in cases {
            let e = k.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e} should contain {want}");
        }
        assert!(
            KafkaConfig::default().validate().is_ok(),
            "disabled Kafka needs nothing"
        );
    }
}
