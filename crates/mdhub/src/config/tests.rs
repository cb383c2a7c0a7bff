//! Tests of configuration loading and layering.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Sources {
    Sources {
        file: None,
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn database_url_is_read_and_printed_without_its_password() {
    let c = load(&env(&[(
        "DATABASE_URL",
        "postgres://u:hunter2@db.example:5432/d?sslmode=require",
    )]))
    .unwrap();
    assert_eq!(
        c.history.database_url.as_deref(),
        Some("postgres://u:hunter2@db.example:5432/d?sslmode=require")
    );
    let printed = c.to_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("postgres://u:***@db.example:5432/d?sslmode=require"),
        "{printed}"
    );
}

#[test]
fn defaults_need_nothing() {
    let c = load(&Sources::default()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.log.dir, PathBuf::from("./mdhub-data/log"));
    assert_eq!(c.bus.encoding, Encoding::Json);
}

#[test]
fn env_overrides_and_port() {
    let c = load(&env(&[
        ("MDHUB_LOG__FSYNC_INTERVAL_MS", "50"),
        ("MDHUB_DATA_DIR", "/tmp/x"),
        ("MDHUB_BUS__ENCODING", "avro"),
        ("PORT", "9999"),
    ]))
    .unwrap();
    assert_eq!(c.log.fsync_interval_ms, 50);
    assert_eq!(c.log.dir, PathBuf::from("/tmp/x/log"));
    assert_eq!(c.bus.encoding, Encoding::Avro);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9999");
}

#[test]
fn errors_name_the_key_and_source() {
    let e = load(&env(&[("MDHUB_LOG__FSYNC_INTERVAL_MS", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config: log.fsync_interval_ms (from MDHUB_LOG__FSYNC_INTERVAL_MS):"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let e = load(&env(&[("MDHUB_LOG__NOPE", "1")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `nope`"), "{e}");
    let e = load(&env(&[("PORT", "http")])).unwrap_err().to_string();
    assert!(e.contains("PORT"), "{e}");
    let e = load(&env(&[("MDHUB_INGEST__MAX_BATCH", "0")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ingest.max_batch"), "{e}");
    let e = load(&env(&[("MDHUB_LOG__PARTITIONS", "0")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("partitions"), "{e}");
}

#[test]
fn heroku_kafka_variables_are_read() {
    let c = load(&env(&[
        ("KAFKA_URL", "kafka+ssl://a:9096,kafka+ssl://b:9096"),
        ("KAFKA_PREFIX", "tenant-1."),
    ]))
    .unwrap();
    assert!(c.kafka.enabled());
    assert_eq!(c.kafka.prefix, "tenant-1.");
    let e = load(&env(&[("KAFKA_URL", "http://a:1")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("kafka.url"), "{e}");
}

#[test]
fn the_crypto_example_configures_binance() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/crypto.toml");
    let c = load(&Sources {
        file: Some(path),
        env: HashMap::new(),
    })
    .unwrap();
    use mdhub_feeds::venues::{binance, coinbase, kraken};
    let b: binance::BinanceSection = c.venues.section("binance").expect("binance configured");
    let feed = b.feed_config().unwrap();
    assert!(feed.symbols.iter().any(|s| s.as_str() == "BTC-USDT"));
    assert!(feed.url.starts_with("wss://"));
    let cb = (c.venues.section::<coinbase::CoinbaseSection>("coinbase"))
        .unwrap()
        .feed_config()
        .unwrap();
    assert_eq!(cb.url, "wss://ws-feed.exchange.coinbase.com");
    let kr = (c.venues.section::<kraken::KrakenSection>("kraken"))
        .unwrap()
        .feed_config()
        .unwrap();
    assert_eq!(kr.url, "wss://ws.kraken.com/v2");
    assert_eq!(kr.symbols[0].as_str(), "BTC-USD");
    let e = load(&env(&[("MDHUB_VENUES__BINANCE__SYMBOLS", "[\"btcusdt\"]")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("venues.binance.symbols") && e.contains("btcusdt"),
        "{e}"
    );
    let e = load(&env(&[("MDHUB_VENUES__BINANCE__SYMBOLS", "[]")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one symbol"), "{e}");
}

#[test]
fn the_fix_example_configures_a_session() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fix.toml");
    let c = load(&Sources {
        file: Some(path),
        env: HashMap::new(),
    })
    .unwrap();
    let f: mdhub_feeds::venues::fix::FixSection = c.venues.section("fix").expect("fix configured");
    let s = f.feed_config(&c.data_dir).unwrap();
    assert_eq!(
        (s.sender_comp_id.as_str(), s.target_comp_id.as_str()),
        ("MDHUB", "VENUE")
    );
    assert_eq!(s.store_dir, c.data_dir.join("fix"));
    let btc = mdhub_types::Symbol::new("BTC-USD").unwrap();
    assert_eq!(s.symbols[&btc], "BTC/USD");
    // Checked when the configuration is loaded, like every venue's section.
    let e = load(&env(&[("MDHUB_VENUES__FIX__HOST", "h")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("venues.fix.symbols"), "{e}");
}

#[test]
fn the_equities_example_takes_alpaca_keys_from_the_environment() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/equities.toml");
    let mut sources = Sources {
        file: Some(path),
        env: HashMap::new(),
    };
    let e = load(&sources).unwrap_err().to_string();
    assert!(e.contains("APCA_API_KEY_ID"), "keys are required: {e}");
    sources
        .env
        .insert("APCA_API_KEY_ID".into(), "PKTEST".into());
    sources
        .env
        .insert("APCA_API_SECRET_KEY".into(), "s3cret".into());
    let c = load(&sources).unwrap();
    let a = (c
        .venues
        .section::<mdhub_feeds::venues::alpaca::AlpacaSection>("alpaca"))
    .unwrap()
    .feed_config()
    .unwrap();
    assert_eq!((a.key.as_str(), a.secret.as_str()), ("PKTEST", "s3cret"));
    assert_eq!(a.symbols[0].as_str(), "AAPL");
    let printed = c.to_toml();
    assert!(
        !printed.contains("s3cret") && printed.contains("***"),
        "{printed}"
    );
}

#[test]
fn heroku_redis_url_is_read() {
    // Heroku Redis with TLS: a self-signed certificate, so verification
    // off through the URL fragment or the explicit setting.
    let c = load(&env(&[(
        "REDIS_URL",
        "rediss://:s3cret@ec2-1-2-3-4.compute-1.amazonaws.com:25070#insecure",
    )]))
    .unwrap();
    assert!(c.redis.enabled() && c.redis.tls());
    assert!(!c.redis.verifies_certificate());
    let printed = c.to_toml();
    assert!(
        !printed.contains("s3cret"),
        "the password is never printed: {printed}"
    );
    let c = load(&env(&[
        ("REDIS_URL", "rediss://:pw@host:6380"),
        ("MDHUB_REDIS__INSECURE_TLS", "true"),
    ]))
    .unwrap();
    assert!(!c.redis.verifies_certificate());
    let c = load(&env(&[("REDIS_URL", "rediss://:pw@host:6380")])).unwrap();
    assert!(
        c.redis.verifies_certificate(),
        "verification stays on unless asked"
    );
    let c = load(&env(&[("REDIS_URL", "redis://127.0.0.1:6379/2")])).unwrap();
    assert!(c.redis.enabled() && !c.redis.tls());
    let e = load(&env(&[("REDIS_URL", "http://a:1")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("redis.url") && !e.contains('\n'), "{e}");
    assert!(!load(&env(&[])).unwrap().redis.enabled());
}

#[test]
fn bad_toml_names_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.toml");
    std::fs::write(&p, "[log]\nfsync_interval_ms = \"x\"\n").unwrap();
    let e = load(&Sources {
        file: Some(p.clone()),
        env: HashMap::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("log.fsync_interval_ms") && e.contains("m.toml"),
        "{e}"
    );
    std::fs::write(&p, "[log\n").unwrap();
    let e = load(&Sources {
        file: Some(p),
        env: HashMap::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 1"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn the_example_file_parses_and_round_trips() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../mdhub.example.toml");
    let c = load(&Sources {
        file: Some(p),
        env: HashMap::new(),
    })
    .unwrap();
    let printed = c.to_toml();
    let again: Config = toml::from_str(&printed).unwrap();
    assert_eq!(again.to_toml(), printed);
}

#[test]
fn an_unknown_venue_is_an_error_naming_the_known_ones() {
    let e = load(&env(&[(
        "MDHUB_VENUES__BINANSE__SYMBOLS",
        "[\"BTC-USDT\"]",
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("venues.binanse: unknown venue"), "{e}");
    for id in mdhub_feeds::venues::registry::ids() {
        assert!(e.contains(id), "{e}");
    }
}

#[test]
fn printed_venue_sections_show_their_defaults() {
    let c = load(&env(&[("MDHUB_VENUES__KRAKEN__SYMBOLS", "[\"BTC-USD\"]")])).unwrap();
    let printed = c.to_toml();
    assert!(printed.contains("[venues.kraken]"), "{printed}");
    assert!(printed.contains("stale_secs = 30"), "{printed}");
    let again: toml::Value = toml::from_str(&printed).expect("printed TOML parses");
    assert!(
        again["venues"]["kraken"].get("url").is_none(),
        "unset stays unset"
    );
}
