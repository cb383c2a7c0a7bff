//! History end to end, on the real binary: `mdhub run` archives as it
//! streams; kill -9 and restarts neither lose nor duplicate a row (checked
//! by DuckDB against the log itself); `/v1/history/*` and `mdhub query`
//! answer from hot and cold data, and bars agree with DuckDB and with an
//! exact decimal VWAP computed in Python.

mod common;

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
    fn create() -> Schema {
        let base = std::env::var("MDHUB_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("mdhub_e2e_{}", std::process::id());
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
    let pg = Schema::create();
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
