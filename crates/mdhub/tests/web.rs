//! The web UI and the JavaScript client (`crates/mdhub_gateway/web/`): the
//! embedded files over HTTP, mdhub.js's unit tests in Node, and the UI in
//! headless Chromium (tests/web/ui.mjs, playwright-core) across a restart of
//! `mdhub run`, signing in to a hub that requires a credential
//! (tests/web/auth.mjs), and the UI over https:// and wss:// from a hub that
//! terminates TLS itself (tests/web/tls.mjs). scripts/test.sh installs Node's test dependencies
//! and Debian's chromium; a missing one fails these tests, it never skips them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Hub, free_port, http_get_with as get};

/// The repository root (tests/web lives there).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `node`, checked to run: `$MDHUB_TEST_NODE` or the one on PATH.
fn node() -> Command {
    let bin = std::env::var("MDHUB_TEST_NODE").unwrap_or_else(|_| "node".into());
    let runs = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "{bin} does not run: install Node.js 20+ (scripts/test.sh needs it too)"
    );
    let mut c = Command::new(bin);
    c.current_dir(repo());
    c
}

/// Chromium and playwright-core, or a panic that says how to get them.
fn browser() -> String {
    let chromium =
        std::env::var("MDHUB_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: run scripts/test.sh (apt-get install chromium) or set MDHUB_TEST_CHROMIUM"
    );
    let playwright = repo().join("tests/web/node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "playwright-core is not installed in tests/web: run scripts/test.sh (npm ci there)"
    );
    chromium
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(": ")?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

#[test]
fn the_ui_and_mdhub_js_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let (status, head, body) = get(&hub.addr, "/", "");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(body.contains(r#"src="/web/app.js""#));
    let (status, head, body) = get(&hub.addr, "/mdhub.js", "");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&head, "cache-control"), "no-cache");
    assert_eq!(header(&head, "access-control-allow-origin"), "*");
    assert!(body.contains("export class MdhubClient"));
    // Revalidation: the same ETag gets a 304 without a body.
    let etag = header(&head, "etag");
    let (status, _, body) = get(
        &hub.addr,
        "/mdhub.js",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((status, body.len()), (304, 0));
    for path in [
        "/web/app.js",
        "/web/app.css",
        "/web/manifest.webmanifest",
        "/web/icon.svg",
        "/web/vendor/lightweight-charts.standalone.production.mjs",
        "/web/vendor/lightweight-charts.LICENSE",
    ] {
        let (status, head, body) = get(&hub.addr, path, "");
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.is_empty() && header(&head, "etag").starts_with('"'),
            "{path}"
        );
    }
    for path in ["/web/nope.js", "/web/../Cargo.toml", "/nope.js"] {
        assert_eq!(get(&hub.addr, path, "").0, 404, "{path}");
    }
}

#[test]
fn mdhub_js_unit_tests_in_node() {
    let out = node()
        .args(["--test", "tests/web/mdhub.test.mjs"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test tests/web/mdhub.test.mjs failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# fail 0"), "{text}");
}

#[test]
fn the_ui_shows_live_prices_and_resumes_across_a_restart() {
    let chromium = browser();
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let data = dir.path().to_str().unwrap().to_string();
    let start = || {
        let args = [
            "run",
            "--listen",
            &addr,
            "--data-dir",
            &data,
            "--sim-rate",
            "1000",
            "--seed",
            "7",
        ];
        Hub::start_role(dir.path(), &args, &[])
    };
    let mut hub = Some(start());
    let screenshot = repo().join("target/ui-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let t0 = Instant::now();
    let mut ui = node()
        .arg("tests/web/ui.mjs")
        .args(["--url", &format!("http://{addr}")])
        .arg("--screenshot")
        .arg(&screenshot)
        .env("MDHUB_TEST_CHROMIUM", chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node tests/web/ui.mjs");
    let mut to_ui = ui.stdin.take().unwrap();
    // The script asks for the hub to be stopped and started; its progress
    // and failures go to stderr, which the test shows as it is.
    for line in BufReader::new(ui.stdout.take().unwrap()).lines() {
        match line.unwrap().as_str() {
            "stop-hub" => {
                let stopped = hub.take().expect("a running hub").stop();
                assert!(stopped.success(), "mdhub run exited with {stopped}");
                writeln!(to_ui, "hub-stopped").unwrap();
            }
            "start-hub" => {
                hub = Some(start());
                writeln!(to_ui, "hub-started").unwrap();
            }
            other => panic!("unexpected line from ui.mjs: {other:?}"),
        }
    }
    let status = ui.wait().unwrap();
    println!("ui.mjs took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        status.success(),
        "tests/web/ui.mjs failed ({status}); its output is above"
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}

/// `mdhub keygen` for a key entitled to `symbols`: the key and its SHA-256.
fn keygen(name: &str, symbols: &str) -> (String, String) {
    let out = common::mdhub()
        .args(["keygen", "--name", name, "--symbols", symbols])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let key = text.lines().find_map(|l| l.strip_prefix("# mdk_"));
    let sha = text.lines().find_map(|l| l.strip_prefix("sha256 = "));
    match (key, sha) {
        (Some(key), Some(sha)) => (format!("mdk_{key}"), sha.trim_matches('"').to_string()),
        _ => panic!("no key and hash in mdhub keygen's output:\n{text}"),
    }
}

#[test]
fn the_ui_signs_in_to_a_hub_that_requires_a_key() {
    let chromium = browser();
    let (key, sha) = keygen("desk", "AAPL,BTC-*");
    let keys = format!(
        r#"[{{name="desk",sha256="{sha}",symbols=["AAPL","BTC-*"],channels=["quotes","trades"],max_connections=2}}]"#
    );
    let env = [
        ("MDHUB_GATEWAY__AUTH__MODE", "required"),
        ("MDHUB_GATEWAY__AUTH__KEYS", keys.as_str()),
        (
            "MDHUB_GATEWAY__AUTH__JWT_SECRET",
            "web-test-secret-of-at-least-32-bytes",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "1000", "--seed", "7"], &env);
    // The page and its files need no credential; the data behind them does.
    assert_eq!(get(&hub.addr, "/", "").0, 200);
    assert_eq!(get(&hub.addr, "/web/app.js", "").0, 200);
    let bars = "/v1/history/bars?symbol=AAPL&interval=1m";
    assert_eq!(get(&hub.addr, bars, "").0, 401);
    let bearer = format!("Authorization: Bearer {key}\r\n");
    assert_eq!(get(&hub.addr, bars, &bearer).0, 200);
    let screenshot = repo().join("target/ui-auth-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let t0 = Instant::now();
    let status = node()
        .arg("tests/web/auth.mjs")
        .args(["--url", &format!("http://{}", hub.addr), "--key", &key])
        .arg("--screenshot")
        .arg(&screenshot)
        .env("MDHUB_TEST_CHROMIUM", chromium)
        .status()
        .expect("start node tests/web/auth.mjs");
    println!("auth.mjs took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        status.success(),
        "tests/web/auth.mjs failed ({status}); its output is above"
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}

#[test]
fn the_ui_over_https_and_wss() {
    let chromium = browser();
    let dir = tempfile::tempdir().unwrap();
    let certs = common::tls::certificates(dir.path());
    let hub = Hub::start(dir.path(), &["--sim-rate", "200"], &certs.env());
    let status = node()
        .arg("tests/web/tls.mjs")
        .args(["--url", &format!("https://{}", hub.addr)])
        .env("NODE_EXTRA_CA_CERTS", &certs.ca)
        .env("MDHUB_TEST_CHROMIUM", chromium)
        .status()
        .expect("start node tests/web/tls.mjs");
    assert!(
        status.success(),
        "tests/web/tls.mjs failed ({status}); its output is above"
    );
    assert!(hub.stop().success());
}

/// The phone and tablet views (tests/web/mobile.mjs): no sideways
/// scrolling, bid and ask on every row, tap → chart and trades → back, the
/// manifest and icons, a hidden page slowed down at the gateway. The
/// screenshots land in target/web-screenshots (docs/web.md shows them).
#[test]
fn the_ui_on_a_phone_and_a_tablet() {
    let chromium = browser();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "1000"], &[]);
    let shots = repo().join("target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let status = node()
        .arg("tests/web/mobile.mjs")
        .args(["--url", &format!("http://{}", hub.addr)])
        .arg("--screenshots")
        .arg(&shots)
        .env("MDHUB_TEST_CHROMIUM", chromium)
        .status()
        .expect("start node tests/web/mobile.mjs");
    assert!(
        status.success(),
        "tests/web/mobile.mjs failed ({status}); its output is above"
    );
    assert!(hub.stop().success());
}
