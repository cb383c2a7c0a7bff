//! TLS on the gateway's own listener (`server.tls_cert_file` and
//! `server.tls_key_file`), on the real binary: `wss://` with the Rust client
//! (through `mdhub tail --ca-file`), certificates checked, plain HTTP
//! refused, and a handshake that never comes frees its permit. Chromium is
//! in tests/web.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Hub;
use common::tls::certificates;

/// Runs `mdhub ARGS…` to its end within `limit`; its stdout.
fn tail_within(args: &[&str], limit: Duration) -> String {
    let child = common::mdhub()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::output_within(child, limit, "mdhub tail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_certificate_and_nothing_without() {
    // This process's own TLS clients (reqwest, tungstenite) use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(dir.path());
    let mut env = certs.env().to_vec();
    env.push(("MDHUB_GATEWAY__HEADER_TIMEOUT_MS", "1000"));
    let hub = Hub::start(dir.path(), &["--sim-rate", "500"], &env);
    // HTTPS with the CA: wait until the hub knows AAPL (a subscribe to a
    // symbol never seen is refused, and tail would wait for ever).
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let snapshot = format!("https://{}/v1/snapshot?symbols=AAPL", hub.addr);
    common::wait_until_async(30, "AAPL published", || async {
        let body = match https.get(&snapshot).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        (body.contains("\"quote\""), body)
    })
    .await;

    // The Rust client, trusting the hub's CA: live data over wss://.
    let url = format!("wss://{}/v1/ws", hub.addr);
    let out = tail_within(
        &[
            "tail",
            "--url",
            &url,
            "--ca-file",
            certs.ca.to_str().unwrap(),
            "--count",
            "3",
            "--json",
            "AAPL",
        ],
        Duration::from_secs(30),
    );
    let frames: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3, "{out}");
    assert!(
        frames.iter().all(|f| f["data"]["symbol"] == "AAPL"),
        "{out}"
    );

    // Without the CA the certificate is not trusted.
    let err = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(_) => panic!("a certificate from an unknown issuer was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{err}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&hub.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // A socket that never starts its handshake is closed after the
    // request-head deadline.
    let mut silent = TcpStream::connect(&hub.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut b = [0u8; 16];
    let n = silent.read(&mut b);
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(hub.stop().success());
}

#[test]
fn a_key_that_does_not_match_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(dir.path());
    let out = common::mdhub()
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MDHUB_SERVER__TLS_CERT_FILE", &certs.cert)
        .env("MDHUB_SERVER__TLS_KEY_FILE", dir.path().join("ca.key"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("server.tls_cert_file"), "{err}");
    let out = common::mdhub()
        .args(["config"])
        .env("MDHUB_SERVER__TLS_CERT_FILE", &certs.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set both"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
