//! History end to end, on the real binary: `mdhub run` archives as it
//! streams; kill -9 and restarts neither lose nor duplicate a row (checked
//! by DuckDB against the log itself); `/v1/history/*` and `mdhub query`
//! answer from hot and cold data, and bars agree with DuckDB and with an
//! exact decimal VWAP computed in Python.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Hub, http_get, mdhub, wait_until};
use mdhub_log::{Log, LogConfig};
use mdhub_types::Topic;
use serde_json::Value;

fn python() -> std::path::PathBuf {
    std::env::var_os("MDHUB_TEST_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| {
            panic!(
                "MDHUB_TEST_PYTHON is not set: run scripts/test.sh, which installs DuckDB into .venv, \
                 or set MDHUB_TEST_PYTHON to a python with duckdb"
            )
        })
}

fn lake_check(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake_check.py"))
        .args(args)
        .output()
        .expect("run lake_check.py");
    assert!(
        out.status.success(),
        "lake_check.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `mdhub query --lake LAKE ARGS… --format json`, one value per line.
fn query_json(lake: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec![
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    common::mdhub_ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Run `sql` at `url` with psql; its output (asserting it succeeded).
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .expect("psql (PostgreSQL's client) runs the hot-tier checks");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A PostgreSQL schema of the test's own (dropped at the end), on the
/// machine's server (`MDHUB_TEST_DATABASE_URL`, default 127.0.0.1:5432).
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    /// The schema `mdhub_e2e_<tag>_<pid>`: tests running at once take
    /// tags of their own.
    fn create(tag: &str) -> Schema {
        let base = std::env::var("MDHUB_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("mdhub_e2e_{tag}_{}", std::process::id());
        let s = Schema {
            url: format!("{base}?options=-csearch_path%3D{name}"),
            base,
            name,
        };
        s.run(
            &format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
                s.name
            ),
            &s.base,
        );
        s
    }

    fn run(&self, sql: &str, url: &str) -> String {
        psql(url, sql)
    }

    fn psql(&self, sql: &str) -> String {
        self.run(sql, &self.url)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                &self.base,
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

const ENV: &[(&str, &str)] = &[
    ("MDHUB_HISTORY__FLUSH_INTERVAL_SECS", "1"),
    ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
];

/// `(partition, end offset)` of every non-empty partition of `topic` in the
/// embedded log under `dir`.
fn log_ends(dir: &Path, topic: Topic) -> Vec<(u64, u64)> {
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        ..LogConfig::default()
    })
    .expect("open the log after the hub stopped");
    let mut out = Vec::new();
    let name = topic.log_name();
    for p in 0..log.partitions(name).unwrap() {
        let (start, end) = (
            log.start_offset(name, p).unwrap(),
            log.high_watermark(name, p).unwrap(),
        );
        assert_eq!(start, 0, "no retention in this test");
        if end > 0 {
            out.push((u64::from(p), end));
        }
    }
    out
}

#[test]
fn kill_9_and_restarts_neither_lose_nor_duplicate_a_row() {
    let dir = tempfile::tempdir().unwrap();
    for (secs, kill) in [(3.5, true), (2.3, true), (2.0, false)] {
        let mut hub = Hub::start(dir.path(), &["--sim-rate", "4000"], ENV);
        std::thread::sleep(Duration::from_secs_f64(secs));
        if kill {
            hub.child.kill().unwrap(); // SIGKILL: no flush, no commit
            hub.child.wait().unwrap();
        } else {
            assert!(hub.stop().success(), "clean shutdown");
        }
    }
    let lake = dir.path().join("lake");
    let seen = lake_check(&["positions", lake.to_str().unwrap()]);
    for (table, topic) in [("trades", Topic::Trades), ("quotes", Topic::Quotes)] {
        let ends = log_ends(dir.path(), topic);
        assert!(!ends.is_empty());
        let rows = seen[table].as_array().unwrap();
        let got: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| {
                let r: Vec<u64> = r
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                let [partition, count, distinct, min, max] = r[..] else {
                    panic!("{r:?}")
                };
                assert_eq!(
                    count, distinct,
                    "{table} partition {partition}: duplicated rows"
                );
                assert_eq!(
                    (min, max + 1),
                    (0, count),
                    "{table} partition {partition}: missing rows"
                );
                (partition, count)
            })
            .collect();
        assert_eq!(
            got, ends,
            "{table}: the lake holds every record of the log once"
        );
    }
}

#[test]
fn history_over_rest_and_query_agree_with_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval first: the answers come from the hot tier.
    let hot_env = [
        ("MDHUB_HISTORY__FLUSH_INTERVAL_SECS", "3600"),
        ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
    ];
    // DATABASE_URL: the PostgreSQL hot tier too, in a schema of its own.
    let pg = Schema::create("rest");
    let mut env = hot_env.to_vec();
    env.push(("DATABASE_URL", pg.url.as_str()));
    let hub = Hub::start(dir.path(), &["--sim-rate", "2000", "--seed", "3"], &env);
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = http_get(&hub.addr, "/v1/history/trades?symbol=AAPL&limit=5");
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let trades = doc["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 5, "{doc}");
    assert_eq!(doc["truncated"], true);
    for t in trades {
        assert_eq!(t["symbol"], "AAPL");
        assert!(t["price"].is_string(), "exact decimals as strings: {t}");
        assert!(
            t["position"].as_str().unwrap().starts_with("trades:"),
            "{t}"
        );
    }
    let (_, status_doc) = http_get(&hub.addr, "/v1/status");
    let status_doc: Value = serde_json::from_str(&status_doc).unwrap();
    assert!(
        status_doc["archiver"]["buffered"].as_u64().unwrap() > 0,
        "{status_doc}"
    );
    assert_eq!(status_doc["archiver"]["files_written"], 0);
    assert!(
        status_doc["postgres"]["inserted"].as_u64().unwrap() > 0,
        "DATABASE_URL: rows in PostgreSQL: {status_doc}"
    );
    let rows = pg.psql("SELECT count(*) FROM mdhub_trades WHERE symbol = 'AAPL'");
    assert!(rows.trim().parse::<u64>().unwrap() > 0, "{rows}");

    // The last quote as of now, and SQL over the hot rows (the lake is
    // still empty): over REST and through `mdhub query --url`.
    let now = mdhub_types::Timestamp::now().as_nanos();
    let (status, body) = http_get(
        &hub.addr,
        &format!("/v1/history/quotes?symbol=AAPL&at={now}"),
    );
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["quote"]["symbol"], "AAPL", "{doc}");
    assert!(doc["quote"]["ts_exchange"].as_i64().unwrap() <= now);
    // Times with no data before them, down to the smallest there is: no
    // quote, no overflow, one listing instead of a scan per day.
    for at in [i64::MIN.to_string(), "1970-01-02T00:00:00Z".into()] {
        let (status, body) = http_get(
            &hub.addr,
            &format!("/v1/history/quotes?symbol=AAPL&at={at}"),
        );
        assert_eq!(status, 200, "at={at}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert!(doc["quote"].is_null(), "at={at}: {doc}");
    }
    let enc = |sql: &str| -> String {
        sql.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let (status, body) = http_get(
        &hub.addr,
        &format!(
            "/v1/history/sql?q={}",
            enc("SELECT count(*) AS n FROM trades WHERE symbol = 'AAPL'")
        ),
    );
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["rows"][0]["n"].as_u64().unwrap() > 0, "{doc}");
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SELEC 1",
    ] {
        let (status, body) = http_get(&hub.addr, &format!("/v1/history/sql?q={}", enc(sql)));
        assert_eq!(status, 400, "{sql}: {body}");
    }
    let url = format!("http://{}", hub.addr);
    let sql = "SELECT symbol, count(*) AS n, max(price) AS high FROM trades GROUP BY symbol ORDER BY symbol";
    let csv = common::mdhub_ok(&["query", "--url", &url, "--format", "csv", sql]);
    assert!(
        csv.starts_with("symbol,n,high\n") && csv.contains("\nAAPL,"),
        "{csv}"
    );

    // Bad requests are 400s with a reason.
    for (path, needle) in [
        ("/v1/history/bars?symbol=aapl", "symbol"),
        ("/v1/history/bars?symbol=AAPL&interval=1w", "interval"),
        ("/v1/history/trades?symbol=AAPL&from=soon", "from"),
    ] {
        let (status, body) = http_get(&hub.addr, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    let (status, _) = http_get(&hub.addr, "/v1/history/candles?symbol=AAPL");
    assert_eq!(status, 404);

    // Stop (the archiver writes everything), then bars three ways.
    assert!(hub.stop().success());
    let lake = dir.path().join("lake");
    let hub = Hub::start(dir.path(), &["--sim-rate", "1"], &hot_env);
    let (from, to) = (0i64, i64::MAX / 2);
    let (status, body) = http_get(
        &hub.addr,
        &format!("/v1/history/bars?symbol=AAPL&interval=1s&from={from}&to={to}"),
    );
    assert_eq!(status, 200, "{body}");
    let rest: Value = serde_json::from_str(&body).unwrap();
    drop(hub);
    let expected = lake_check(&[
        "bars",
        lake.to_str().unwrap(),
        "AAPL",
        "1000000000",
        &from.to_string(),
        &to.to_string(),
    ]);
    let expected = expected.as_array().unwrap();
    assert!(expected.len() >= 2, "a few seconds of bars: {expected:?}");
    // The DuckDB example of docs/history.md, on this lake.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/history.md"
    ))
    .unwrap();
    let example = doc
        .split("<!-- duckdb-example")
        .nth(1)
        .and_then(|rest| rest.split("```sql").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("docs/history.md has the DuckDB example");
    let example = example.replace("mdhub-data/lake", lake.to_str().unwrap());
    let rows = lake_check(&["sql", &example]);
    let rows = rows.as_array().unwrap();
    let total: u64 = rows
        .iter()
        .map(|r| r[6].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    let want: u64 = expected.iter().map(|b| b["trades"].as_u64().unwrap()).sum();
    assert_eq!(
        total, want,
        "the documented DuckDB query counts every AAPL trade"
    );
    let rest_bars = rest["bars"].as_array().unwrap();
    // The restarted hub may have added a trade or two; compare the archived ones.
    assert_eq!(
        &rest_bars[..expected.len() - 1],
        &expected[..expected.len() - 1]
    );

    let (from_s, to_s) = (from.to_string(), to.to_string());
    let lines = query_json(
        &lake,
        &[
            "--bars",
            "AAPL",
            "--interval",
            "1s",
            "--from",
            &from_s,
            "--to",
            &to_s,
        ],
    );
    assert!(lines.len() >= expected.len() - 1);
    for (cli, want) in lines.iter().zip(&expected[..expected.len() - 1]) {
        assert_eq!(
            cli["trades"].as_u64(),
            want["trades"].as_u64(),
            "{cli} vs {want}"
        );
    }

    // Whole minutes come from the files' minute bars: the same bars as
    // DuckDB and exact Python over the ticks, every field.
    let minute_to = 60_000_000_000i64 * 100_000_000;
    let want = lake_check(&[
        "bars",
        lake.to_str().unwrap(),
        "AAPL",
        "60000000000",
        "0",
        &minute_to.to_string(),
    ]);
    let minute_to_s = minute_to.to_string();
    let got = query_json(
        &lake,
        &[
            "--bars",
            "AAPL",
            "--interval",
            "1m",
            "--from",
            "0",
            "--to",
            &minute_to_s,
        ],
    );
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    let norm = |v: &Value| -> String {
        // Exact text (never a JSON float), with the column's 18 places.
        let t = v.as_str().expect("decimals as exact text").to_owned();
        match t.split_once('.') {
            Some((i, f)) if !f.trim_end_matches('0').is_empty() => {
                format!("{i}.{}", f.trim_end_matches('0'))
            }
            Some((i, _)) => i.to_string(),
            None => t,
        }
    };
    for (g, w) in got.iter().zip(want) {
        for k in ["open", "high", "low", "close", "volume", "vwap"] {
            assert_eq!(norm(&g[k]), norm(&w[k]), "{k}: {g} vs {w}");
        }
        assert_eq!(g["trades"].as_u64(), w["trades"].as_u64());
    }

    // SQL with every output format.
    let sql = "SELECT symbol, count(*) AS n FROM trades GROUP BY symbol ORDER BY symbol";
    let lake_arg = lake.to_str().unwrap();
    for format in ["table", "csv", "json"] {
        let text = common::mdhub_ok(&["query", "--lake", lake_arg, "--format", format, sql]);
        assert!(text.contains("AAPL"), "{format}: {text}");
    }
    let parquet = dir.path().join("out.parquet");
    let out_file = parquet.to_str().unwrap();
    let aapl = "SELECT * FROM trades WHERE symbol = 'AAPL'";
    common::mdhub_ok(&[
        "query", "--lake", lake_arg, "--format", "parquet", "-o", out_file, aapl,
    ]);
    assert!(std::fs::metadata(&parquet).unwrap().len() > 0);
    // A wrong query is a usage error with DataFusion's reason.
    let out = mdhub()
        .args([
            "query",
            "--lake",
            lake.to_str().unwrap(),
            "SELECT nope FROM trades",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// A PostgreSQL database of the test's own, which the test can make
/// disappear (`DROP DATABASE … WITH (FORCE)`) and bring back.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let admin = std::env::var("MDHUB_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("mdhub_stage_{}", std::process::id());
        let (base, _) = admin.rsplit_once('/').expect("a database URL");
        let db = Database {
            url: format!("{base}/{name}"),
            admin,
            name,
        };
        db.drop_it();
        db.psql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn drop_it(&self) {
        self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }

    fn psql(&self, sql: &str) {
        psql(&self.admin, sql);
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.drop_it();
    }
}

fn stage(status: &Value, name: &str) -> Value {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {status}"))
        .clone()
}

/// Issue 18's failing stages: the PostgreSQL writer's database disappears
/// and the archiver's lake becomes unwritable mid-run. Both are reported the
/// same way — their stage `retrying` in `/v1/status` with the error,
/// `mdhub_stage_up` 0, `/readyz` still 200 (the gateway serves) but
/// degraded and naming them — and both follow the documented policy: retry
/// in place from the log, recover by themselves, lose nothing.
#[test]
fn a_failing_writer_or_lake_is_reported_the_same_way_and_recovers() {
    let db = Database::create();
    let dir = tempfile::tempdir().unwrap();
    let mut env = ENV.to_vec();
    env.push(("DATABASE_URL", db.url.as_str()));
    let hub = Hub::start(dir.path(), &["--sim-rate", "400"], &env);
    let status =
        || -> Value { serde_json::from_str(&http_get(&hub.addr, "/v1/status").1).unwrap() };
    wait_until(20, "rows in PostgreSQL and in the lake", || {
        let s = status();
        let ok = s["postgres"]["inserted"].as_u64().unwrap_or(0) > 0
            && s["archiver"]["files_written"].as_u64().unwrap_or(0) > 0;
        (ok, s["consumers"].clone())
    });

    // The database disappears; the lake becomes a file.
    db.drop_it();
    let lake = dir.path().join("lake");
    let away = dir.path().join("lake.away");
    std::fs::rename(&lake, &away).unwrap();
    std::fs::write(&lake, b"not a directory").unwrap();
    let s = wait_until(30, "both stages report retrying", || {
        let s = status();
        let states = (
            stage(&s, "pg-writer")["state"].clone(),
            stage(&s, "archiver")["state"].clone(),
        );
        (states.0 == "retrying" && states.1 == "retrying", s)
    });
    for name in ["pg-writer", "archiver"] {
        let st = stage(&s, name);
        assert!(st["failures"].as_u64().unwrap() > 0, "{st}");
        assert!(st["last_error"].is_string(), "{st}");
        assert_eq!(st["on_failure"], "restart", "{st}");
    }
    let (code, body) = http_get(&hub.addr, "/readyz");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200, "the gateway still serves: {r}");
    assert_eq!(r["degraded"], true, "{r}");
    let failing: Vec<&str> = r["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        failing.contains(&"pg-writer") && failing.contains(&"archiver"),
        "{r}"
    );
    let metrics = http_get(&hub.addr, "/metrics").1;
    for name in ["pg-writer", "archiver"] {
        let line = format!("mdhub_stage_up{{stage=\"{name}\"}} 0");
        assert!(metrics.contains(&line), "{line} in /metrics");
    }

    // Both come back; the stages recover by themselves.
    std::fs::remove_file(&lake).unwrap();
    std::fs::rename(&away, &lake).unwrap();
    db.psql(&format!("CREATE DATABASE {}", db.name));
    wait_until(60, "recovered and ready, not degraded", || {
        let (code, body) = http_get(&hub.addr, "/readyz");
        (code == 200 && body.contains("\"degraded\":false"), body)
    });
    assert!(hub.stop().success(), "clean shutdown");

    // Nothing lost or written twice in the lake through the outage.
    let seen = lake_check(&["positions", lake.to_str().unwrap()]);
    for (table, topic) in [("trades", Topic::Trades), ("quotes", Topic::Quotes)] {
        let ends = log_ends(dir.path(), topic);
        let got: Vec<(u64, u64)> = seen[table]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let r: Vec<u64> = r
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                assert_eq!(r[1], r[2], "{table}: duplicated rows in {r:?}");
                (r[0], r[1])
            })
            .collect();
        assert_eq!(
            got, ends,
            "{table}: the lake holds every record of the log once"
        );
    }
}

/// 2024-05-01T12:00:00Z.
const V0: i64 = 1_714_564_800_000_000_000;

/// `BTC-USD` on two venues at clearly different prices — `coinbase` near
/// 67000, `kraken` near 60000 — trades and quotes interleaved, one event
/// every 900 ms from [`V0`] (about 9 minutes), written as the JSON events
/// clients receive.
fn two_venue_events(n: usize) -> Vec<mdhub_types::Event> {
    (0..n)
        .map(|i| {
            let (venue, base) = if i % 3 == 0 {
                ("kraken", 60_000)
            } else {
                ("coinbase", 67_000)
            };
            let ts = V0 + i as i64 * 900_000_000;
            let price = format!("{}.{:06}", base + (i * 37) % 90, (i * 104_729) % 1_000_000);
            let size = format!("0.{:08}", 1 + (i * 7919) % 99_999_999);
            let mut e = serde_json::json!({
                "venue": venue, "symbol": "BTC-USD",
                "ts_exchange": ts, "ts_received": ts + 1_000,
            });
            let more = if i % 4 != 3 {
                serde_json::json!({"type": "trade", "price": price, "size": size,
                                   "side": "sell", "trade_id": format!("v{i}")})
            } else {
                serde_json::json!({"type": "quote", "bid_price": price, "bid_size": size,
                                   "ask_price": format!("{price}5"), "ask_size": size})
            };
            e.as_object_mut()
                .unwrap()
                .extend(more.as_object().unwrap().clone());
            serde_json::from_value(e).unwrap()
        })
        .collect()
}

/// DuckDB's and exact Python's bars of `symbol` in `lake` (`lake_check.py
/// bars`), of one venue or of each.
fn lake_bars(lake: &Path, width: i64, from: i64, to: i64, venue: Option<&str>) -> Value {
    let mut args = vec![
        "bars".to_string(),
        lake.to_str().unwrap().into(),
        "BTC-USD".into(),
        width.to_string(),
        from.to_string(),
        to.to_string(),
    ];
    args.extend(venue.map(String::from));
    lake_check(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The SQL of the example marked `<!-- NAME` in docs/history.md.
fn doc_example(name: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/history.md"
    ))
    .unwrap();
    doc.split(&format!("<!-- {name}"))
        .nth(1)
        .and_then(|rest| rest.split("```sql").nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("docs/history.md has the example {name}"))
        .to_string()
}

/// A long flush interval: answers come from the hot tier until a stop.
const HOT_ENV: &[(&str, &str)] = &[
    ("MDHUB_HISTORY__FLUSH_INTERVAL_SECS", "3600"),
    ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
];

/// How many of `events` are of `topic` — of `venue`, when given.
fn count_of(events: &[mdhub_types::Event], topic: Topic, venue: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e.topic() == topic && venue.is_none_or(|v| e.venue().as_str() == v))
        .count()
}

/// Publish `events` into the embedded log under `dir` (before a hub opens it).
fn publish(dir: &Path, events: &[mdhub_types::Event]) {
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        ..LogConfig::default()
    })
    .unwrap();
    let bus = mdhub_bus::EmbeddedBus::new(
        std::sync::Arc::new(log),
        mdhub_bus::EmbeddedBusConfig {
            encoding: mdhub_types::Encoding::Json,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use mdhub_bus::Bus;
        bus.publish(events).await.unwrap();
        bus.sync().await.unwrap();
    });
}

/// Issue 20, history side: the same symbol on two venues. Trades, quotes,
/// bars and the last quote narrow to a venue with `venue=`; without it,
/// bars are one series per venue, each equal to DuckDB and Python's exact
/// decimals over that venue's trades alone — from the hot tier, and from
/// the lake (minute bars from the footers, other widths from the ticks);
/// the documented SQL example groups by venue; a bad venue is a 400.
#[test]
fn venues_apart_in_rest_history_bars_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    let events = two_venue_events(600);
    publish(dir.path(), &events);
    let count = |topic: Topic, venue: Option<&str>| count_of(&events, topic, venue);
    let (from, to) = (V0 - 60_000_000_000, V0 + 3_600_000_000_000);
    let get = |addr: &str, path: &str| -> Value {
        let (status, body) = http_get(addr, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let range = format!("symbol=BTC-USD&from={from}&to={to}");

    // The PostgreSQL hot tier too, in a schema of its own.
    let pg = Schema::create("venues");
    let mut pg_env = HOT_ENV.to_vec();
    pg_env.push(("DATABASE_URL", pg.url.as_str()));
    let hub = Hub::start(dir.path(), &["--sim-rate", "1"], &pg_env);
    wait_until(20, "the archiver holds the two venues' rows", || {
        let doc = get(
            &hub.addr,
            &format!("/v1/history/trades?{range}&limit=100000"),
        );
        let n = doc["trades"].as_array().unwrap().len();
        (n == count(Topic::Trades, None), n)
    });
    for (table, topic) in [("trades", Topic::Trades), ("quotes", Topic::Quotes)] {
        for venue in [None, Some("coinbase"), Some("kraken")] {
            let v = venue.map_or(String::new(), |v| format!("&venue={v}"));
            let doc = get(
                &hub.addr,
                &format!("/v1/history/{table}?{range}{v}&limit=100000"),
            );
            let rows = doc[table].as_array().unwrap();
            assert_eq!(rows.len(), count(topic, venue), "{table}{v}");
            assert_eq!(doc.get("venue").and_then(Value::as_str), venue);
            let venues: BTreeSet<&str> =
                rows.iter().map(|r| r["venue"].as_str().unwrap()).collect();
            match venue {
                Some(v) => assert_eq!(venues, BTreeSet::from([v])),
                None => assert_eq!(venues, BTreeSet::from(["coinbase", "kraken"])),
            }
        }
    }
    // The last quote as of a time: each venue's, and one venue's.
    let at = V0 + 300 * 900_000_000;
    let last = |venue: &str| -> i64 {
        (0..=300i64)
            .rev()
            .find(|i| *i % 4 == 3 && (if *i % 3 == 0 { "kraken" } else { "coinbase" }) == venue)
            .map(|i| V0 + i * 900_000_000)
            .unwrap()
    };
    let doc = get(
        &hub.addr,
        &format!("/v1/history/quotes?symbol=BTC-USD&at={at}"),
    );
    let quotes = doc["quotes"].as_array().unwrap();
    let got: Vec<(&str, i64)> = quotes
        .iter()
        .map(|q| {
            (
                q["venue"].as_str().unwrap(),
                q["ts_exchange"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("coinbase", last("coinbase")), ("kraken", last("kraken"))]
    );
    assert_eq!(
        doc["quote"]["ts_exchange"].as_i64(),
        Some(last("coinbase").max(last("kraken"))),
        "quote: the latest of any venue, as before"
    );
    let doc = get(
        &hub.addr,
        &format!("/v1/history/quotes?symbol=BTC-USD&venue=kraken&at={at}"),
    );
    assert_eq!(doc["quote"]["venue"], "kraken");
    assert_eq!(doc["quote"]["ts_exchange"].as_i64(), Some(last("kraken")));
    assert_eq!(doc["quotes"].as_array().unwrap().len(), 1);
    // A bad venue is a 400 with the stable code; an unknown one has no data.
    for bad in ["Kraken", "kra%20ken", "-kraken"] {
        for kind in ["trades", "quotes", "bars"] {
            let (status, body) = http_get(
                &hub.addr,
                &format!("/v1/history/{kind}?{range}&venue={bad}"),
            );
            assert_eq!(status, 400, "{kind} venue={bad}: {body}");
            let e: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(e["error"]["code"], "bad_request", "{body}");
            assert!(body.contains("venue"), "{body}");
        }
    }
    let doc = get(
        &hub.addr,
        &format!("/v1/history/bars?{range}&venue=binance"),
    );
    assert!(doc["bars"].as_array().unwrap().is_empty());

    // Bars from the hot tier, then from the lake after a restart.
    let bars_of = |addr: &str, width: i64, venue: Option<&str>| -> Value {
        let v = venue.map_or(String::new(), |v| format!("&venue={v}"));
        get(
            addr,
            &format!(
                "/v1/history/bars?{range}&interval={}ms{v}",
                width / 1_000_000
            ),
        )
    };
    let widths = [60_000_000_000i64, 7_000_000_000];
    let hot: Vec<Value> = widths
        .iter()
        .flat_map(|w| [None, Some("coinbase"), Some("kraken")].map(|v| bars_of(&hub.addr, *w, v)))
        .collect();
    assert!(hub.stop().success());
    let lake = dir.path().join("lake");
    let hub = Hub::start(dir.path(), &["--sim-rate", "1"], HOT_ENV);
    let mut i = 0;
    for width in widths {
        for venue in [None, Some("coinbase"), Some("kraken")] {
            let want = lake_bars(&lake, width, from, to, venue);
            let cold = bars_of(&hub.addr, width, venue);
            for (when, doc) in [("hot", &hot[i]), ("cold", &cold)] {
                assert_eq!(doc["bars"], want, "{when} {width} ns bars of {venue:?}");
                assert_eq!(doc["grouped_by"], "venue");
                let venues = match venue {
                    Some(v) => vec![v],
                    None => vec!["coinbase", "kraken"],
                };
                assert_eq!(doc["venues"], serde_json::json!(venues));
            }
            i += 1;
            // Two series, never one mixed: each venue's bars hold its prices.
            for b in want.as_array().unwrap() {
                let low: f64 = b["low"].as_str().unwrap().parse().unwrap();
                let high: f64 = b["high"].as_str().unwrap().parse().unwrap();
                let vwap: f64 = b["vwap"].as_str().unwrap().parse().unwrap();
                let (lo, hi) = if b["venue"] == "kraken" {
                    (60_000.0, 60_100.0)
                } else {
                    (67_000.0, 67_100.0)
                };
                assert!(lo <= low && high < hi && lo <= vwap && vwap < hi, "{b}");
            }
        }
    }

    // The documented PostgreSQL example, at the data's time: per venue and
    // minute, the same trades as the lake's minute bars.
    let pg_example =
        doc_example("pg-venue-example").replace("now()", "'2024-05-01T12:59:00Z'::timestamptz");
    let minutes = lake_bars(&lake, 60_000_000_000, from, to, None);
    let mut want: Vec<(String, String, String, String, u64)> = minutes
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["venue"].as_str().unwrap().to_string(),
                b["high"].as_str().unwrap().to_string(),
                b["low"].as_str().unwrap().to_string(),
                b["volume"].as_str().unwrap().to_string(),
                b["trades"].as_u64().unwrap(),
            )
        })
        .collect();
    want.sort_by_key(|w| w.0.clone());
    let trim = |t: &str| -> String {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t.to_string()
        }
    };
    let mut got: Vec<(String, String, String, String, u64)> = pg
        .psql(&pg_example)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                f[0].to_string(),
                trim(f[2]),
                trim(f[3]),
                trim(f[4]),
                f[6].parse().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|g| g.0.clone());
    assert_eq!(got, want, "PostgreSQL's per-venue minutes");

    // The documented SQL example, over REST: per-venue figures equal the
    // exact hour bars of each venue.
    let enc: String = doc_example("venue-sql-example")
        .trim()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let rows = get(&hub.addr, &format!("/v1/history/sql?q={enc}"))["rows"].clone();
    let hour = lake_bars(&lake, 3_600_000_000_000, V0, V0 + 3_600_000_000_000, None);
    let hour = hour.as_array().unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    let norm = |v: &Value| -> String {
        let t = v.as_str().unwrap_or_else(|| panic!("exact text: {v}"));
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.')
        } else {
            t
        };
        t.to_string()
    };
    for (row, bar) in rows.as_array().unwrap().iter().zip(hour) {
        assert_eq!(row["venue"], bar["venue"]);
        assert_eq!(row["trades"].as_u64(), bar["trades"].as_u64(), "{row}");
        for (col, key) in [
            ("low", "low"),
            ("high", "high"),
            ("volume", "volume"),
            ("vwap", "vwap"),
        ] {
            assert_eq!(norm(&row[col]), norm(&bar[key]), "{col}: {row} vs {bar}");
        }
    }
    drop(hub);
}

/// `n` events of `symbol` on two venues whose times repeat and run against
/// log order: event `i` at `V0 + ((i * 7) % 12)` seconds, so each of 12
/// times holds many rows; every fifth a quote, the rest trades.
fn tied_events(symbol: &str, n: usize) -> Vec<mdhub_types::Event> {
    (0..n)
        .map(|i| {
            let venue = if i % 3 == 0 { "kraken" } else { "coinbase" };
            let ts = V0 + ((i * 7) % 12) as i64 * 1_000_000_000;
            let price = format!("{}.{:04}", 67_000 + i % 50, (i * 7919) % 10_000);
            let mut e = serde_json::json!({
                "venue": venue, "symbol": symbol,
                "ts_exchange": ts, "ts_received": V0 + i as i64,
            });
            let more = if i % 5 == 4 {
                serde_json::json!({"type": "quote", "bid_price": price, "bid_size": "1.5",
                                   "ask_price": format!("{price}1"), "ask_size": "2"})
            } else {
                serde_json::json!({"type": "trade", "price": price, "size": format!("0.{:03}", i % 1000 + 1),
                                   "side": "buy", "trade_id": format!("t{i}")})
            };
            e.as_object_mut()
                .unwrap()
                .extend(more.as_object().unwrap().clone());
            serde_json::from_value(e).unwrap()
        })
        .collect()
}

/// Every row of `path` (a range request without `limit` or `cursor`),
/// paged `limit` at a time by following `next`; checks each page's
/// `truncated` and `next` on the way.
fn paged(addr: &str, path: &str, table: &str, limit: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100_000 {
        let c = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let url = format!("{path}&limit={limit}{c}");
        let (status, body) = http_get(addr, &url);
        assert_eq!(status, 200, "{url}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        let page = doc[table].as_array().unwrap();
        rows.extend(page.iter().cloned());
        match doc.get("next").and_then(Value::as_str) {
            Some(next) => {
                assert_eq!(page.len(), limit, "a page with a next is full: {url}");
                assert_eq!(doc["truncated"], true, "{url}");
                cursor = Some(next.to_string());
            }
            None => {
                assert!(page.len() <= limit, "{url}");
                assert_eq!(doc["truncated"], false, "{url}");
                return rows;
            }
        }
    }
    panic!("{path}: paging did not end");
}

/// Issue 24: `next`/`cursor=` page a range of trades or quotes — with
/// small pages, many rows sharing each time and times against log order,
/// one venue or both — into exactly the rows of one uncut answer, in its
/// order, from the hot tier and from the lake; the uncut answer is the
/// lake's rows in DuckDB's order; a bad cursor is a 400 `bad_cursor`.
#[test]
fn paging_with_cursors_returns_every_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // ETH-USD too, at the same times: several symbols in one request
    // merge rows of two log partitions that tie on time.
    let events = tied_events("BTC-USD", 300);
    let eth = tied_events("ETH-USD", 120);
    publish(dir.path(), &[events.clone(), eth.clone()].concat());
    let count = |topic: Topic, venue: Option<&str>| count_of(&events, topic, venue);
    let key = |r: &Value| -> (i64, u64, u64) {
        let p: Vec<u64> = r["position"].as_str().unwrap()[7..]
            .split(':')
            .map(|n| n.parse().unwrap())
            .collect();
        (r["ts_exchange"].as_i64().unwrap(), p[0], p[1])
    };
    let range = format!("symbol=BTC-USD&from={}&to={}", V0 - 1, V0 + 60_000_000_000);
    let uncut = |addr: &str, path: &str, table: &str| -> Vec<Value> {
        let (status, body) = http_get(addr, &format!("{path}&limit=100000"));
        assert_eq!(status, 200, "{path}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["truncated"], false, "{path}");
        assert!(doc.get("next").is_none(), "{path}");
        doc[table].as_array().unwrap().clone()
    };
    let check = |addr: &str, when: &str| -> Vec<Value> {
        let mut all_trades = Vec::new();
        for (table, topic) in [("trades", Topic::Trades), ("quotes", Topic::Quotes)] {
            for (venue, limits) in [(None, &[1usize, 7, 20][..]), (Some("kraken"), &[5][..])] {
                let v = venue.map_or(String::new(), |v| format!("&venue={v}"));
                let path = format!("/v1/history/{table}?{range}{v}");
                let whole = uncut(addr, &path, table);
                assert_eq!(whole.len(), count(topic, venue), "{when} {path}");
                let keys: Vec<(i64, String)> = whole
                    .iter()
                    .map(|r| {
                        (
                            r["ts_exchange"].as_i64().unwrap(),
                            r["position"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                let distinct: BTreeSet<&String> = keys.iter().map(|k| &k.1).collect();
                assert_eq!(distinct.len(), whole.len(), "{when} {path}: unique rows");
                for limit in limits {
                    let got = paged(addr, &path, table, *limit);
                    assert_eq!(got, whole, "{when} {path} paged by {limit}");
                }
                if table == "trades" && venue.is_none() {
                    all_trades = whole.clone();
                }
                if venue.is_some() {
                    continue;
                }
                // Both symbols: every row of each, merged in the one order.
                let both = path.replace("BTC-USD", "ETH-USD,BTC-USD");
                let mut want = whole;
                want.extend(uncut(addr, &path.replace("BTC-USD", "ETH-USD"), table));
                want.sort_by_key(key);
                assert_eq!(
                    want.len(),
                    count(topic, None) + count_of(&eth, topic, None),
                    "{when}"
                );
                let got = uncut(addr, &both, table);
                assert_eq!(got, want, "{when} {both}");
                assert_eq!(paged(addr, &both, table, 7), want, "{when} {both} paged");
                let symbols: BTreeSet<&str> =
                    got.iter().map(|r| r["symbol"].as_str().unwrap()).collect();
                assert_eq!(symbols, BTreeSet::from(["BTC-USD", "ETH-USD"]));
            }
        }
        all_trades
    };

    let hub = Hub::start(dir.path(), &["--sim-rate", "1"], HOT_ENV);
    wait_until(20, "the archiver holds the rows", || {
        let n = uncut(&hub.addr, &format!("/v1/history/trades?{range}"), "trades").len();
        (n == count(Topic::Trades, None), n)
    });
    let hot = check(&hub.addr, "hot");

    // Bad cursors: malformed, of another range, or where nothing pages.
    let tok = hot[10]["ts_exchange"].as_i64().unwrap();
    for path in [
        format!("/v1/history/trades?{range}&cursor=garbage"),
        format!("/v1/history/trades?{range}&cursor={tok}.0"),
        format!("/v1/history/trades?{range}&cursor={tok}.0.1.2"),
        format!("/v1/history/quotes?{range}&cursor=-1.0.0"),
        format!(
            "/v1/history/trades?symbol=BTC-USD&from={V0}&to={}&cursor={}.0.0",
            V0 + 1,
            V0 + 5_000_000_000
        ),
        format!("/v1/history/bars?{range}&cursor={tok}.0.0"),
        format!("/v1/history/quotes?symbol=BTC-USD&at={V0}&cursor={tok}.0.0"),
    ] {
        let (status, body) = http_get(&hub.addr, &path);
        assert_eq!(status, 400, "{path}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["error"]["code"], "bad_cursor", "{path}: {body}");
    }
    assert!(hub.stop().success());

    // From the lake after a restart: the same rows, the same pages; and
    // the order is DuckDB's over the lake's files.
    let hub = Hub::start(dir.path(), &["--sim-rate", "1"], HOT_ENV);
    let cold = check(&hub.addr, "cold");
    assert_eq!(cold, hot);
    // CSV and Arrow (read by pyarrow) hold the JSON answer's rows, paged
    // the same way through `x-mdhub-next`.
    for table in ["trades", "quotes"] {
        let out = Command::new(python())
            .args([
                "-c",
                FORMATS_CHECK,
                &format!("http://{}", hub.addr),
                &format!("/v1/history/{table}?{range}"),
                table,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("ok "),
            "{table}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(hub);
    let lake = dir.path().join("lake");
    let duck = lake_check(&[
        "sql",
        &format!(
            "SELECT epoch_ns(ts_exchange), 'trades:' || log_partition || ':' || log_offset \
             FROM read_parquet('{}/trades/*/*/*.parquet', hive_partitioning = true) \
             WHERE symbol = 'BTC-USD' ORDER BY ts_exchange, log_partition, log_offset",
            lake.display()
        ),
    ]);
    let ours: Vec<Value> = cold
        .iter()
        .map(|r| {
            serde_json::json!([
                r["ts_exchange"].as_i64().unwrap().to_string(),
                r["position"]
            ])
        })
        .collect();
    assert_eq!(duck, Value::Array(ours));
}

/// `FORMATS_CHECK BASE PATH TABLE`: the CSV and Arrow answers of `PATH`
/// (a trades or quotes range) hold the rows of its JSON answer — CSV the
/// same text, Arrow exact decimals and integer nanoseconds — whole, and
/// paged by 7 through `x-mdhub-next` as JSON pages through `next`.
const FORMATS_CHECK: &str = r#"
import csv, io, json, sys, urllib.request
from decimal import Decimal
import pyarrow as pa
base, path, table = sys.argv[1:4]
ARROW = "application/vnd.apache.arrow.stream"
def get(url, accept=None):
    req = urllib.request.Request(base + url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req) as r:
        return r.read(), r.headers
rows = json.loads(get(path + "&limit=100000")[0])[table]
assert rows, "rows to compare"
dec = ["price", "size"] if table == "trades" else ["bid_price", "bid_size", "ask_price", "ask_size"]
cols = ["ts_exchange", "ts_received", "venue", "symbol"] + dec
cols += ["side", "trade_id"] if table == "trades" else []

body, h = get(path + "&limit=100000&format=csv")
assert h["content-type"].startswith("text/csv") and h["x-mdhub-truncated"] == "false", dict(h)
assert "x-mdhub-next" not in h
lines = list(csv.DictReader(io.StringIO(body.decode())))
assert list(lines[0].keys()) == cols + ["position"], list(lines[0].keys())
text = lambda v: "" if v is None else str(v)
assert lines == [{k: text(r.get(k)) for k in cols + ["position"]} for r in rows]
body, h = get(path + "&limit=7", accept="text/csv")
first = json.loads(get(path + "&limit=7")[0])
assert h["x-mdhub-next"] == first["next"] and h["x-mdhub-truncated"] == "true", dict(h)
assert len(list(csv.DictReader(io.StringIO(body.decode())))) == 7

def table_rows(body):
    t = pa.ipc.open_stream(body).read_all()
    for c in dec:
        assert t.schema.field(c).type == pa.decimal128(38, 18), t.schema
    for c in ["ts_exchange", "ts_received"]:
        assert pa.types.is_timestamp(t.schema.field(c).type), t.schema
        t = t.set_column(t.schema.get_field_index(c), c, t.column(c).cast(pa.int64()))
    return t.to_pylist()
whole_body, h = get(path + "&limit=100000&format=arrow")
assert h["content-type"] == ARROW and h["x-mdhub-truncated"] == "false", dict(h)
whole = table_rows(whole_body)
paged, cursor, pages = [], "", 0
while True:
    body, h = get(path + "&limit=7" + cursor, accept=ARROW)
    assert h["content-type"] == ARROW
    page = table_rows(body)
    paged += page
    pages += 1
    nxt = h.get("x-mdhub-next")
    assert h["x-mdhub-truncated"] == ("true" if nxt else "false"), dict(h)
    if not nxt:
        break
    assert len(page) == 7
    cursor = "&cursor=" + nxt
assert paged == whole, "Arrow pages are the whole Arrow answer"
assert len(whole) == len(rows), (len(whole), len(rows))
for a, j in zip(whole, rows):
    for c in cols:
        want = Decimal(j[c]) if c in dec else j.get(c)
        assert a[c] == want, (c, a, j)
    assert f"{table}:{a['log_partition']}:{a['log_offset']}" == j["position"], (a, j)
print("ok", len(rows), pages)
"#;
