//! Authentication and entitlements against the real binary: API keys
//! (configured by hash) and JWTs (HS256 here, ES256 with a key made by
//! openssl) presented in a header, the query string or the first frame;
//! refusals with the documented codes; per-symbol `not_entitled` while the
//! rest of a subscribe succeeds; expiry on an open connection; the per-user
//! connection limit; and the REST data endpoints behind the same rules.

mod common;

use std::time::Duration;

use common::{Hub, http_get_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const KEY: &str = "mdk_test_desk_key";
const SECRET: &str = "jwt-test-secret-of-at-least-32-bytes";

/// `mdhub keygen` prints a key and the TOML to configure it; check the
/// command, then configure a fixed key the same way through the environment.
fn hub(dir: &std::path::Path) -> Hub {
    let text = common::mdhub_ok(&["keygen", "--name", "desk", "--symbols", "AAPL,BTC-*"]);
    assert!(text.contains("[[gateway.auth.keys]]"), "{text}");
    let sha = hex_sha256(KEY);
    let keys = format!(
        r#"[{{name="desk",sha256="{sha}",symbols=["AAPL","BTC-*"],channels=["quotes","trades"],max_connections=2}}]"#
    );
    let env = [
        ("MDHUB_GATEWAY__AUTH__MODE", "required"),
        ("MDHUB_GATEWAY__AUTH__KEYS", keys.as_str()),
        ("MDHUB_GATEWAY__AUTH__JWT_SECRET", SECRET),
        ("MDHUB_GATEWAY__AUTH__TIMEOUT_MS", "1000"),
    ];
    let hub = Hub::start(dir, &["--sim-rate", "1000"], &env);
    std::thread::sleep(Duration::from_millis(300));
    hub
}

fn hex_sha256(s: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// An HS256 JWT signed with `SECRET`, made by `mdhub token`.
fn jwt(sub: &str, ttl_secs: i64, symbols: &str, channels: &str) -> String {
    let ttl = format!("{ttl_secs}s");
    let args = [
        "token",
        "--secret",
        SECRET,
        "--sub",
        sub,
        "--ttl",
        &ttl,
        "--symbols",
        symbols,
        "--channels",
        channels,
    ];
    common::mdhub_ok(&args).trim().to_string()
}

async fn open(hub: &Hub, bearer: Option<&str>, query: &str) -> Result<Ws, WsError> {
    let mut req = format!("{}{query}", hub.ws_url())
        .into_client_request()
        .unwrap();
    if let Some(b) = bearer {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {b}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn status_of(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Control frames (not data, not heartbeats) until `n` arrived or the
/// connection closed; the close code.
async fn control(ws: &mut Ws, n: usize, wait: Duration) -> (Vec<Value>, Option<u16>) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if !["update", "snapshot", "heartbeat"].contains(&v["type"].as_str().unwrap()) {
                    out.push(v);
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => return (out, f.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    (out, None)
}

/// Symbols of the data frames seen for `wait`.
async fn data_symbols(ws: &mut Ws, wait: Duration) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(s) = v["data"]["symbol"].as_str() {
                out.insert(format!("{}:{}", s, v["channel"].as_str().unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_and_entitlements_applied() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());

    // Refused at the upgrade: a wrong key, an expired or forged JWT.
    assert_eq!(status_of(open(&hub, Some("nope"), "").await), 401);
    assert_eq!(status_of(open(&hub, None, "?token=nope").await), 401);
    let expired = jwt("bot", -10, "*", "quotes,trades");
    assert_eq!(status_of(open(&hub, Some(&expired), "").await), 401);

    // A key in the header: entitled symbols subscribe, the rest are refused.
    let mut ws = open(&hub, Some(KEY), "").await.unwrap();
    let (welcome, _) = control(&mut ws, 1, Duration::from_secs(5)).await;
    assert_eq!(welcome[0]["auth_required"], true, "{welcome:?}");
    send(
        &mut ws,
        json!({"action":"subscribe","symbols":["AAPL","MSFT","BTC-USDT"],"id":1}),
    )
    .await;
    let (frames, _) = control(&mut ws, 2, Duration::from_secs(5)).await;
    assert_eq!(
        frames[0]["subscriptions"],
        json!({"AAPL":["quotes","trades"],"BTC-USDT":["quotes","trades"]})
    );
    assert_eq!(
        (frames[1]["code"].as_str(), &frames[1]["symbols"]),
        (Some("not_entitled"), &json!(["MSFT"]))
    );
    let seen = data_symbols(&mut ws, Duration::from_millis(800)).await;
    assert!(
        seen.iter()
            .all(|s| s.starts_with("AAPL:") || s.starts_with("BTC-USDT:")),
        "{seen:?}"
    );

    // The key allows two connections: the third is refused with 429.
    let second = open(&hub, None, &format!("?token={KEY}")).await.unwrap();
    assert_eq!(status_of(open(&hub, Some(KEY), "").await), 429);
    drop(second);

    // No credential: only `auth` is accepted, and only for a while.
    let mut anon = open(&hub, None, "").await.unwrap();
    control(&mut anon, 1, Duration::from_secs(5)).await;
    send(&mut anon, json!({"action":"subscribe","symbols":["AAPL"]})).await;
    let (e, _) = control(&mut anon, 1, Duration::from_secs(5)).await;
    assert_eq!(e[0]["code"], "unauthenticated");
    let (last, code) = control(&mut anon, 2, Duration::from_secs(5)).await;
    assert_eq!(code, Some(4401), "closed after auth.timeout_ms: {last:?}");
    assert_eq!(
        (last[0]["type"].as_str(), last[0]["reconnect"].as_bool()),
        (Some("closing"), Some(false))
    );

    // A JWT in the first frame, entitled to quotes of ETH-* only, that
    // expires while the connection is open.
    let token = jwt("bot-7", 2, "ETH-*", "quotes");
    let mut bot = open(&hub, None, "").await.unwrap();
    control(&mut bot, 1, Duration::from_secs(5)).await;
    send(&mut bot, json!({"action":"auth","token":token,"id":"a"})).await;
    send(
        &mut bot,
        json!({"action":"subscribe","symbols":["ETH-USDT","AAPL"],"id":2}),
    )
    .await;
    let (frames, _) = control(&mut bot, 3, Duration::from_secs(5)).await;
    assert_eq!(
        (frames[0]["type"].as_str(), frames[0]["action"].as_str()),
        (Some("ack"), Some("auth"))
    );
    assert_eq!(frames[1]["subscriptions"], json!({"ETH-USDT":["quotes"]}));
    assert_eq!(frames[2]["code"], "not_entitled");
    let (last, code) = control(&mut bot, 2, Duration::from_secs(5)).await;
    assert_eq!(
        (last[0]["type"].as_str(), &last[0]["code"], code),
        (Some("closing"), &json!(4403), Some(4403)),
        "token expiry closes the connection: {last:?}"
    );

    // A bad token in the first frame: an error, then 4401.
    let mut bad = open(&hub, None, "").await.unwrap();
    control(&mut bad, 1, Duration::from_secs(5)).await;
    send(&mut bad, json!({"action":"auth","token":"nope"})).await;
    let (frames, code) = control(&mut bad, 3, Duration::from_secs(5)).await;
    assert_eq!(frames[0]["code"], "unauthorized");
    assert_eq!(code, Some(4401));

    // REST data endpoints follow the same rules.
    let addr = hub.addr.clone();
    let rest = tokio::task::spawn_blocking(move || {
        let auth = format!("Authorization: Bearer {KEY}\r\n");
        (
            http_get_with(&addr, "/v1/snapshot?symbols=AAPL", "").0,
            http_get_with(&addr, "/v1/snapshot?symbols=AAPL,MSFT", &auth),
            http_get_with(&addr, "/v1/history/trades?symbol=MSFT", &auth).0,
            http_get_with(&addr, "/v1/history/sql?q=SELECT%201", &auth).0,
            http_get_with(&addr, "/healthz", "").0,
            http_get_with(&addr, "/v1/history/trades?symbol=AAPL,MSFT", &auth).0,
        )
    })
    .await
    .unwrap();
    assert_eq!(rest.0, 401);
    let snap: Value = serde_json::from_str(&(rest.1).2).unwrap();
    assert!(snap["symbols"]["AAPL"].is_object());
    assert_eq!(snap["unentitled"], json!(["MSFT"]));
    assert_eq!(rest.2, 403, "history of an unentitled symbol");
    assert_eq!(rest.3, 403, "SQL needs every symbol");
    assert_eq!(rest.4, 200, "health needs no credential");
    assert_eq!(rest.5, 403, "every symbol of a history request is checked");

    // A quotes-only grant sees quotes in a snapshot, never trades; the
    // Bearer scheme is case-insensitive; refusals are counted.
    let quotes_only = jwt("quoter", 60, "AAPL", "quotes");
    let addr = hub.addr.clone();
    let (snap, refused) = tokio::task::spawn_blocking(move || {
        let auth = format!("Authorization: BEARER {quotes_only}\r\n");
        let snap = http_get_with(&addr, "/v1/snapshot?symbols=AAPL", &auth);
        let bad = "Authorization: Bearer not-a-key\r\n";
        assert_eq!(
            http_get_with(&addr, "/v1/snapshot?symbols=AAPL", bad).0,
            401
        );
        (
            snap,
            common::metric(&addr, "mdhub_gateway_auth_refused_total"),
        )
    })
    .await
    .unwrap();
    assert_eq!(snap.0, 200, "{}", snap.2);
    let v: Value = serde_json::from_str(&snap.2).unwrap();
    let aapl = &v["symbols"]["AAPL"]["sim-nasdaq"];
    assert!(aapl.get("quote").is_some(), "{v}");
    assert!(
        aapl.get("trade").is_none(),
        "no trades for a quotes-only grant: {v}"
    );
    assert!(refused >= 1, "refused credentials are counted");
}

#[test]
fn a_public_address_needs_credentials_or_an_explicit_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = common::mdhub();
        c.args([
            "run",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            d,
            "--exit-after",
            "1",
        ]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let refused = run(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "no credentials configured: {err}"
    );
    assert!(
        err.contains("gateway.auth") && err.contains("mdhub keygen"),
        "{err}"
    );
    let open = run(&[("MDHUB_GATEWAY__AUTH__MODE", "off")]);
    let err = String::from_utf8_lossy(&open.stderr);
    assert!(open.status.success(), "{err}");
    assert!(err.contains("WARNING: authentication is OFF"), "{err}");
    let with_secret = run(&[("MDHUB_GATEWAY__AUTH__JWT_SECRET", SECRET)]);
    let err = String::from_utf8_lossy(&with_secret.stderr);
    assert!(
        with_secret.status.success() && err.contains("auth: required"),
        "{err}"
    );
    let printed = common::mdhub()
        .arg("config")
        .env("MDHUB_GATEWAY__AUTH__JWT_SECRET", SECRET)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        !text.contains(SECRET) && text.contains("jwt_secret = \"***\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_presents_its_token_and_stops_when_refused() {
    use mdhub_client::{Client, ClientConfig, ClientEvent};
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let first_event = |token: Option<&str>| {
        let mut cfg = ClientConfig::new(hub.ws_url());
        cfg.token = token.map(str::to_string);
        let refused = token != Some(KEY);
        async move {
            let mut c = Client::connect(cfg).unwrap();
            // A refused client may have stopped already: its commands then
            // fail with `Closed`, and the `Stopped` event is still to be read.
            if let Err(e) = c.subscribe(["AAPL"], &[]).await {
                assert!(
                    refused && matches!(e, mdhub_client::ClientError::Closed),
                    "{e}"
                );
            }
            let mut seen = Vec::new();
            while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), c.next()).await {
                let done = matches!(ev, ClientEvent::Data(_) | ClientEvent::Stopped { .. });
                seen.push(ev);
                if done {
                    break;
                }
            }
            seen
        }
    };
    let ok = first_event(Some(KEY)).await;
    assert!(matches!(ok.last(), Some(ClientEvent::Data(_))), "{ok:?}");
    for bad in [Some("nope"), None] {
        let seen = first_event(bad).await;
        assert!(
            matches!(seen.last(), Some(ClientEvent::Stopped { .. })),
            "{bad:?}: {seen:?}"
        );
    }
}
