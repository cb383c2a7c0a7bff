//! End-to-end tests of the real `mdhub` binary.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Hub, mdhub, wait_exit};

use mdhub_log::{Log, LogConfig};
use mdhub_types::{Encoding, Topic};

fn start_run(dir: &Path, extra: &[&str]) -> Hub {
    let mut args = vec!["--sim-rate", "3000"];
    args.extend_from_slice(extra);
    Hub::start(dir, &args, &[])
}

/// Per partition: (start, end), and every record decodes as an event of its topic.
fn inspect(dir: &Path) -> Vec<(Topic, u32, u64)> {
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        ..LogConfig::default()
    })
    .expect("reopen log");
    let mut out = Vec::new();
    for topic in Topic::ALL {
        let parts = log.partitions(topic.log_name()).expect("topic exists");
        for p in 0..parts {
            let start = log.start_offset(topic.log_name(), p).unwrap();
            let end = log.high_watermark(topic.log_name(), p).unwrap();
            let mut next = start;
            while next < end {
                let outcome = log
                    .read(topic.log_name(), p, next, 10_000, 8 << 20, |r| {
                        assert_eq!(r.offset, next, "offsets must be contiguous");
                        next += 1;
                        let enc = Encoding::parse(
                            std::str::from_utf8(r.header("mdhub-encoding").unwrap()).unwrap(),
                        )
                        .unwrap();
                        let e = enc.decode(r.value).expect("every record decodes");
                        assert_eq!(e.topic(), topic);
                        assert_eq!(e.symbol().as_str().as_bytes(), r.key, "key = symbol");
                    })
                    .unwrap();
                next = outcome.next_offset;
            }
            out.push((topic, p, end));
        }
    }
    out
}

fn total(v: &[(Topic, u32, u64)]) -> u64 {
    v.iter().map(|x| x.2).sum()
}

#[test]
fn help_lists_every_role() {
    let out = mdhub().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for role in [
        "run", "ingest", "serve", "archive", "query", "replay", "bench", "config",
    ] {
        assert!(
            text.contains(&format!("  {role} ")),
            "--help must list {role}:\n{text}"
        );
    }
}

/// `mdhub bench feed` in each thread layout: it runs, measures, and prints
/// one row per rate (a smoke test; its figures are in docs/benchmarks.md).
#[test]
fn bench_feed_runs_in_every_thread_layout() {
    for threads in ["shared", "split", "pinned"] {
        let out = common::mdhub_ok(&[
            "bench",
            "feed",
            "--rates",
            "200",
            "--duration",
            "0.5",
            "--threads",
            threads,
        ]);
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with("200 "))
            .unwrap_or_else(|| panic!("no row for rate 200 ({threads}):\n{out}"));
        let events: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(events > 0, "{threads}: {row}");
    }
}

/// `mdhub bench fanout --peer nats`: both sides run and the side-by-side
/// table has figures for each (a smoke test, so the NATS harness cannot rot;
/// the figures are in docs/benchmarks.md).
#[test]
fn bench_fanout_runs_beside_nats() {
    let out = common::mdhub_ok(&[
        "bench",
        "fanout",
        "--peer",
        "nats",
        "--clients",
        "4",
        "--per-client",
        "2",
        "--symbols",
        "8",
        "--rate",
        "400",
        "--warmup",
        "0.5",
        "--duration",
        "1",
    ]);
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("deliveries /s"))
        .unwrap_or_else(|| panic!("no side-by-side table:\n{out}"));
    let figures: Vec<f64> = row
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        figures.len() >= 2 && figures[0] > 0.0 && figures[1] > 0.0,
        "{row}"
    );
}

/// `mdhub bench queries`: it runs and reports the ingest rate idle and
/// under queries (a smoke test; figures in docs/benchmarks.md).
#[test]
fn bench_queries_runs() {
    let out = common::mdhub_ok(&[
        "bench",
        "queries",
        "--rate",
        "500",
        "--duration",
        "1",
        "--clients",
        "2",
        "--query-timeout-secs",
        "1",
    ]);
    assert!(out.contains("ingest, idle"), "{out}");
    assert!(out.contains("% of idle"), "{out}");
}

#[test]
fn query_without_sql_is_a_usage_error() {
    let out = mdhub().arg("query").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = mdhub().args(["query", "--bars", "aapl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--bars \"aapl\""), "{err}");
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let out = mdhub()
        .arg("run")
        .env("MDHUB_LOG__SEGMENT_BYTES", "big")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("log.segment_bytes") && err.contains("MDHUB_LOG__SEGMENT_BYTES"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[sim]\nrate = 10\nvenus = []\n").unwrap();
    let out = mdhub()
        .args(["--config"])
        .arg(&file)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("venus") && err.contains("bad.toml"), "{err}");
}

#[test]
fn config_prints_effective_toml() {
    let out = mdhub()
        .arg("config")
        .env("MDHUB_SIM__RATE", "123.5")
        .env("PORT", "9123")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(v["sim"]["rate"].as_float(), Some(123.5));
    assert_eq!(v["server"]["listen"].as_str(), Some("127.0.0.1:9123"));
}

#[test]
fn run_streams_into_the_log_stops_on_sigterm_and_continues_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_run(dir.path(), &["--seed", "7"]);
    std::thread::sleep(Duration::from_millis(1500));
    let status = hub.stop();
    assert!(
        status.success(),
        "SIGTERM must end in a clean exit, got {status}"
    );
    let first = inspect(dir.path());
    assert!(
        total(&first) > 500,
        "expected a few thousand events, got {}",
        total(&first)
    );

    let mut hub = start_run(dir.path(), &["--exit-after", "1"]);
    assert!(wait_exit(&mut hub.child, Duration::from_secs(30)).success());
    let second = inspect(dir.path());
    assert!(
        total(&second) > total(&first),
        "a restart must append to the same log"
    );
    for (a, b) in first.iter().zip(&second) {
        assert!(b.2 >= a.2, "offsets never go back: {a:?} -> {b:?}");
    }
}

#[test]
fn kill_9_then_restart_recovers_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = start_run(dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(1200));
    hub.child.kill().unwrap(); // SIGKILL
    hub.child.wait().unwrap();
    let before = inspect(dir.path());
    assert!(total(&before) > 0);
    let mut hub = start_run(dir.path(), &["--exit-after", "1"]);
    assert!(wait_exit(&mut hub.child, Duration::from_secs(30)).success());
    assert!(total(&inspect(dir.path())) > total(&before));
}

/// Every key `mdhub config` prints is documented in docs/configuration.md.
#[test]
fn every_config_key_is_documented() {
    let out = mdhub().arg("config").output().unwrap();
    let cfg: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    fn keys(t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            match v {
                toml::Value::Table(t) => keys(t, out),
                toml::Value::Array(a) => {
                    out.push(k.clone());
                    for item in a {
                        if let toml::Value::Table(t) = item {
                            keys(t, out);
                        }
                    }
                }
                _ => out.push(k.clone()),
            }
        }
    }
    let mut all = Vec::new();
    keys(&cfg, &mut all);
    for k in ["seed", "round_lot"] {
        all.push(k.to_string()); // optional keys that print only when set
    }
    for k in all {
        assert!(
            doc.contains(&format!("| `{k}` |")),
            "docs/configuration.md does not document `{k}`"
        );
    }
}

/// The TOML example in docs/configuration.md is a working configuration.
#[test]
fn configuration_doc_example_works() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mdhub.toml");
    std::fs::write(&file, example).unwrap();
    let printed = common::mdhub_ok(&[
        std::ffi::OsStr::new("--config"),
        file.as_os_str(),
        "config".as_ref(),
    ]);
    assert!(printed.contains("sim-lse"));
}

/// `mdhub normalize` turns every Binance fixture into the events the decoder
/// promises, reports each unusable line with its number and reason, and
/// exits 0.
#[test]
fn normalize_turns_venue_frames_into_events() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mdhub_feeds/src/venues/binance/fixtures");
    let mut input = String::new();
    for name in [
        "trade.json",
        "book_ticker.json",
        "combined_trade.json",
        "combined_book_ticker.json",
        "subscribe_ack.json",
        "error.json",
        "agg_trade.json",
        "edge_cases.jsonl",
    ] {
        input.push_str(&std::fs::read_to_string(dir.join(name)).unwrap());
    }
    let (ok, stdout, stderr) = normalize(
        &[
            "--venue",
            "binance",
            "--received-at",
            "2026-11-26T12:00:00.000000001Z",
        ],
        &input,
    );
    assert!(ok, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // trade, bookTicker, the two combined ones, and two good edge cases.
    assert_eq!(events.len(), 6, "{stdout}\n{stderr}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .contains(r#""price":"0.001""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""bid_price":"25.35190000""#),
        "the venue's text is kept: {stdout}"
    );
    assert!(
        stdout.contains("91234.567890123456789"),
        "exact beyond f64: {stdout}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["ts_received"] == serde_json::json!(1_795_694_400_000_000_001_i64))
    );
    for (line, why) in [
        (5, "subscription acknowledged"),
        (6, "the venue refused a request"),
        (7, "aggTrade event, not used"),
        (8, "field `p`"),
        (10, "missing field `p`"),
        (14, "malformed frame"),
        (16, "unknown symbol"),
    ] {
        assert!(
            stderr.contains(&format!("line {line}: skipped: {why}")),
            "line {line} ({why}) in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("16 frames read, 6 events written, 10 frames skipped"),
        "{stderr}"
    );

    let unknown = mdhub()
        .args(["normalize", "--venue", "nyse"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("known: alpaca, binance, coinbase, fix, kraken")
    );
}

/// `mdhub normalize --venue fix` on FIX 4.4 messages (SOH-separated, one per
/// line): a full refresh, an incremental with a bid change and a trade, a
/// reject, and session messages that carry no data.
#[test]
fn normalize_fix_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mdhub_feeds/src/venues/fix/fixtures");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let input = [
        read("logon.fix"),
        read("snapshot.fix"),
        read("incremental.fix"),
        read("reject.fix"),
        // The same refresh again: the known book is rebuilt (resync).
        read("snapshot.fix"),
    ]
    .concat();
    let (ok, stdout, stderr) = normalize(&["--venue", "fix"], &input);
    assert!(ok, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["quote", "trade", "quote", "status", "status", "quote"],
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        events[0]["bid_price"], "95000.10",
        "the venue's text is kept"
    );
    assert_eq!(events[0]["symbol"], "BTC-USD");
    assert_eq!(events[1]["price"], "95000.20");
    assert_eq!(events[1]["side"], "buy", "AggressorSide(2446)=1");
    assert_eq!(events[1]["trade_id"], "T1");
    assert_eq!(events[2]["bid_price"], "95000.15");
    assert_eq!(
        (&events[3]["symbol"], &events[3]["status"]),
        (
            &serde_json::json!("XYZ-USD"),
            &serde_json::json!("disconnected")
        ),
        "the rejected symbol gets nothing"
    );
    assert_eq!(events[4]["status"], "resync");
    assert!(stderr.contains("line 1: skipped"), "{stderr}");
    assert!(
        stderr.contains("line 4: the venue refused a request: MarketDataRequest mdhub-XYZ/USD"),
        "{stderr}"
    );
}

/// `mdhub normalize --venue coinbase` on the documented payloads, with the
/// maker-side rule and a gap report.
#[test]
fn normalize_coinbase_frames() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mdhub_feeds/src/venues/coinbase/fixtures");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let input = [
        read("subscriptions.json"),
        read("match.json"),
        read("ticker.json"),
        read("match.json").replace("\"trade_id\":10", "\"trade_id\":13"),
        read("error.json"),
    ]
    .concat();
    let (ok, stdout, stderr) = normalize(&["--venue", "coinbase"], &input);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}\n{stderr}");
    // The gap is data too: a feed-status event before the trade that showed it.
    assert!(
        lines[2].starts_with(r#"{"type":"status","venue":"coinbase","symbol":"BTC-USD""#)
            && lines[2].ends_with(r#""status":"gap","detail":"trades 11..=12 missed (2 trades)"}"#),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains(r#""trade_id":"13""#), "{}", lines[3]);
    assert!(
        lines[0].contains(r#""side":"buy""#),
        "maker sold: the taker bought: {}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""bid_price":"1285.04""#),
        "{}",
        lines[1]
    );
    assert!(
        stderr.contains("line 4: gap: BTC-USD: trades 11..=12 missed (2 trades)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: skipped: the venue refused a request: Failed to subscribe"),
        "{stderr}"
    );
}

/// Run `mdhub normalize` with `args` on `input`: (success, stdout, stderr).
fn normalize(args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = mdhub()
        .arg("normalize")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
