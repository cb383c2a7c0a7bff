//! Unit tests of `auth.rs`: keys, JWTs, entitlements, presentation.
use super::*;
use jsonwebtoken::{EncodingKey, Header};
use mdhub_types::Topic;

fn cfg_with_key(key: &str, symbols: &[&str], channels: &[&str]) -> AuthConfig {
    AuthConfig {
        mode: AuthMode::Required,
        keys: vec![ApiKeyConfig {
            name: "desk".into(),
            sha256: hex(&Sha256::digest(key.as_bytes())),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            channels: channels.iter().map(|s| s.to_string()).collect(),
            max_connections: Some(2),
        }],
        jwt_secret: Some("s3cret-s3cret-s3cret-s3cret-s3cret".into()),
        ..AuthConfig::default()
    }
}

#[test]
fn globs() {
    for (p, s, want) in [
        ("*", "AAPL", true),
        ("AAPL", "AAPL", true),
        ("AAPL", "AAPLX", false),
        ("BTC-*", "BTC-USDT", true),
        ("BTC-*", "ETH-USDT", false),
        ("*-USD", "EUR-USD", true),
        ("*-USD", "EUR-USDT", false),
        ("B*-*T", "BTC-USDT", true),
        ("A*A", "A", false),
    ] {
        assert_eq!(glob(p, s), want, "{p} ~ {s}");
    }
}

#[test]
fn api_keys_by_hash_with_their_entitlements() {
    let a =
        Authenticator::new(&cfg_with_key("k1", &["btc-*", "AAPL"], &["trades"]), false).unwrap();
    assert!(a.required());
    let g = a.verify("k1").unwrap();
    assert_eq!(g.user, "desk");
    assert!(g.allows("BTC-USDT") && g.allows("AAPL") && !g.allows("MSFT"));
    assert!(!g.allows_all());
    assert_eq!(g.channels(ChannelSet::ALL), ChannelSet::of(Topic::Trades));
    assert_eq!(g.max_connections, 2);
    assert_eq!(a.verify("k2"), Err(AuthError::UnknownKey));
    assert_eq!(a.verify(""), Err(AuthError::Missing));
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn jwts_carry_entitlements_and_expire() {
    let a = Authenticator::new(&cfg_with_key("k1", &["*"], &[]), false).unwrap();
    let ok = hs256(
        serde_json::json!({"sub":"bot-7","exp":now()+60,"mdhub":{"symbols":["ETH-*"],"channels":["quotes"]}}),
        "s3cret-s3cret-s3cret-s3cret-s3cret",
    );
    let g = a.verify(&ok).unwrap();
    assert_eq!(g.user, "bot-7");
    assert!(g.allows("ETH-USDT") && !g.allows("BTC-USDT"));
    assert_eq!(g.channels(ChannelSet::ALL), ChannelSet::of(Topic::Quotes));
    assert!(g.remaining().unwrap() <= Duration::from_secs(60));
    let none = hs256(
        serde_json::json!({"sub":"x","exp":now()+60}),
        "s3cret-s3cret-s3cret-s3cret-s3cret",
    );
    assert!(
        !a.verify(&none).unwrap().allows("AAPL"),
        "no mdhub claim: nothing"
    );
    let expired = hs256(
        serde_json::json!({"sub":"x","exp":now()-5}),
        "s3cret-s3cret-s3cret-s3cret-s3cret",
    );
    assert_eq!(a.verify(&expired), Err(AuthError::Expired));
    let last_second = hs256(
        serde_json::json!({"sub":"x","exp":now()}),
        "s3cret-s3cret-s3cret-s3cret-s3cret",
    );
    assert_eq!(
        a.verify(&last_second),
        Err(AuthError::Expired),
        "no time left: refused"
    );
    let forged = hs256(serde_json::json!({"sub":"x","exp":now()+60}), "guess");
    assert!(matches!(a.verify(&forged), Err(AuthError::BadToken(_))));
    let no_exp = hs256(
        serde_json::json!({"sub":"x"}),
        "s3cret-s3cret-s3cret-s3cret-s3cret",
    );
    assert!(matches!(a.verify(&no_exp), Err(AuthError::BadToken(_))));
}

#[test]
fn required_without_credentials_to_check_is_a_config_error() {
    let cfg = AuthConfig::default();
    assert!(
        !Authenticator::new(&cfg, false).unwrap().required(),
        "auto on loopback: off"
    );
    assert!(matches!(
        Authenticator::new(&cfg, true),
        Err(AuthError::Config(_))
    ));
    let off = AuthConfig {
        mode: AuthMode::Off,
        ..AuthConfig::default()
    };
    assert!(!Authenticator::new(&off, true).unwrap().required());
}

#[test]
fn credentials_from_header_or_query() {
    let mut h = axum::http::HeaderMap::new();
    assert_eq!(
        presented(&h, Some("a=1&token=abc%2Bd")),
        Some("abc+d".into())
    );
    h.insert("authorization", "Bearer xyz".parse().unwrap());
    assert_eq!(presented(&h, Some("token=abc")), Some("xyz".into()));
    assert_eq!(presented(&axum::http::HeaderMap::new(), None), None);
    h.insert("authorization", "BEARER up".parse().unwrap());
    assert_eq!(
        presented(&h, None),
        Some("up".into()),
        "the scheme is case-insensitive"
    );
    h.insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    assert_eq!(presented(&h, None), None);
}

#[test]
fn not_before_short_secrets_and_refusals() {
    let a = Authenticator::new(&cfg_with_key("k1", &["*"], &[]), false).unwrap();
    let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
    let early = hs256(
        serde_json::json!({"sub":"x","exp":now()+600,"nbf":now()+300}),
        secret,
    );
    assert!(
        matches!(a.verify(&early), Err(AuthError::BadToken(_))),
        "not valid before nbf"
    );
    let ready = hs256(
        serde_json::json!({"sub":"x","exp":now()+600,"nbf":now()-1}),
        secret,
    );
    assert!(a.verify(&ready).is_ok());
    assert_eq!(a.refused(), 1, "the early token was counted");
    assert!(a.verify("no-such-key").is_err());
    assert_eq!(a.refused(), 2);
    let short = AuthConfig {
        jwt_secret: Some("one-byte-is-not-a-secret".into()),
        ..AuthConfig::default()
    };
    match Authenticator::new(&short, false) {
        Err(AuthError::Config(m)) => assert!(m.contains("at least 32"), "{m}"),
        other => panic!("a short secret is refused: {other:?}"),
    }
}

#[test]
fn new_keys_verify() {
    let (key, hash) = new_key();
    let cfg = AuthConfig {
        mode: AuthMode::Required,
        keys: vec![ApiKeyConfig {
            name: "n".into(),
            sha256: hash,
            symbols: everything(),
            channels: vec![],
            max_connections: None,
        }],
        ..AuthConfig::default()
    };
    let a = Authenticator::new(&cfg, true).unwrap();
    assert!(a.verify(&key).unwrap().allows_all());
}

/// An EC P-256 key pair made by openssl: (PKCS#8 private PEM, public PEM).
fn openssl_p256() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("mdhub-es256-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .status()
            .expect("openssl (scripts/test.sh installs it)");
        assert!(ok.success(), "openssl {args:?}");
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.pem",
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "ec.pem",
        "-out",
        "private.pem",
    ]);
    run(&["ec", "-in", "ec.pem", "-pubout", "-out", "public.pem"]);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let keys = (read("private.pem"), read("public.pem"));
    let _ = std::fs::remove_dir_all(&dir);
    keys
}

#[test]
fn es256_tokens_verify_with_the_public_key_only() {
    let (private, public) = openssl_p256();
    let cfg = AuthConfig {
        mode: AuthMode::Required,
        jwt_public_key: Some(public),
        jwt_issuer: Some("idp.example".into()),
        ..AuthConfig::default()
    };
    let a = Authenticator::new(&cfg, true).unwrap();
    let sign = |claims: serde_json::Value| {
        let key = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    };
    let ok = sign(
        serde_json::json!({"sub":"svc","iss":"idp.example","exp":now()+60,"mdhub":{"symbols":["*"]}}),
    );
    assert!(a.verify(&ok).unwrap().allows_all());
    let wrong_issuer = sign(serde_json::json!({"sub":"svc","iss":"other","exp":now()+60}));
    assert!(matches!(
        a.verify(&wrong_issuer),
        Err(AuthError::BadToken(_))
    ));
    let hs = hs256(
        serde_json::json!({"sub":"svc","iss":"idp.example","exp":now()+60}),
        "x",
    );
    assert!(
        a.verify(&hs).is_err(),
        "an HS256 token is not accepted by an ES256 key"
    );
}
