//! The Python client (`clients/python`) against the real binary: a gateway
//! killed (SIGKILL) and restarted under it, and every update it hands the
//! application checked against the log — exactly once, in order, with exact
//! decimals and nanosecond times.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::Hub;
use common::log::{assert_exactly_per_venue, log_records};
use mdhub_types::{Event, Topic};
use serde_json::Value;

/// One test at a time: the resume test restarts a hub on a port it picked,
/// which a hub of another test starting meanwhile on port 0 could take.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test Python (`$MDHUB_TEST_PYTHON`, set by scripts/test.sh).
fn python() -> String {
    std::env::var("MDHUB_TEST_PYTHON").expect(
        "MDHUB_TEST_PYTHON: a Python with scripts/requirements-test.txt (scripts/test.sh sets it)",
    )
}

/// Runs `python -c script args…` with the package on the path, for at most
/// a minute; its stdout, after asserting it succeeded.
fn run_script(script: &str, args: &[&str]) -> String {
    let child = Command::new(python())
        .env("PYTHONPATH", repo().join("clients/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::output_within(
        child,
        std::time::Duration::from_secs(60),
        "the Python script",
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `mdhub run` on `addr` with its data in `dir`.
fn run_on(dir: &Path, addr: &str) -> Hub {
    let args = [
        "run",
        "--listen",
        addr,
        "--data-dir",
        dir.to_str().unwrap(),
        "--sim-rate",
        "2000",
        "--seed",
        "5",
    ];
    let hub = Hub::start_role(dir, &args, &[]);
    hub.wait_published(600);
    hub
}

#[test]
fn the_python_client_resumes_exactly_once_across_a_killed_gateway() {
    let _serial = serial();
    let python = std::env::var("MDHUB_TEST_PYTHON").expect(
        "MDHUB_TEST_PYTHON: a Python with scripts/requirements-test.txt (scripts/test.sh sets it)",
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut hub = run_on(dir.path(), &addr);
    let mut py = Command::new(python)
        .env("PYTHONPATH", repo().join("clients/python"))
        .arg(repo().join("clients/python/tests/stream_check.py"))
        .args([
            "--url",
            &format!("ws://{addr}/v1/ws"),
            "--symbols",
            "MSFT,ETH-USDT",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python client");
    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reader = {
        let (out, lines) = (py.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&l).unwrap());
            }
        })
    };
    let data = |lines: &Arc<Mutex<Vec<Value>>>| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "data")
            .count()
    };
    common::wait_until(20, "data before the kill", || {
        (data(&lines) > 40, data(&lines))
    });
    hub.child.kill().unwrap(); // SIGKILL: the socket just dies
    hub.child.wait().unwrap();
    let before = data(&lines);
    let hub = run_on(dir.path(), &addr);
    common::wait_until(20, "data after the restart", || {
        (data(&lines) > before + 40, data(&lines))
    });
    drop(py.stdin.take()); // the script closes its client and exits
    let status = common::wait_exit(&mut py, std::time::Duration::from_secs(20));
    assert!(status.success(), "the Python client exited with {status}");
    reader.join().unwrap();
    assert!(hub.stop().success());

    let lines = lines.lock().unwrap();
    let connects: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "connected").collect();
    assert!(connects.len() >= 2, "{connects:?}");
    let last = connects.last().unwrap();
    assert_eq!(
        last["resumed"], 4,
        "two symbols × quotes and trades resumed"
    );
    assert_eq!(last["epoch_changed"], false);
    assert!(
        lines.iter().all(|l| l["kind"] != "reset"),
        "no reset across a restart"
    );
    let snapshots = lines.iter().filter(|l| l["type"] == "snapshot").count();
    assert!(
        snapshots <= 6,
        "snapshots (one per venue: ETH-USDT is on two) only on the first subscribe: {snapshots}"
    );
    let mut streams: BTreeMap<(String, Topic), Vec<(u64, Event)>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["kind"] == "data") {
        let event: Event = serde_json::from_value(l["event"].clone()).unwrap();
        let topic = event.topic();
        streams
            .entry((event.symbol().to_string(), topic))
            .or_default()
            .push((l["offset"].as_u64().unwrap(), event));
    }
    assert_eq!(streams.len(), 4, "{:?}", streams.keys());
    for ((symbol, topic), got) in &streams {
        let log = log_records(dir.path(), *topic, symbol);
        let got: Vec<(u64, &Event)> = got.iter().map(|(o, e)| (*o, e)).collect();
        assert_exactly_per_venue(&log, &got, &format!("{symbol} {topic}"));
    }
}

/// The example in docs/python.md runs as written against a live hub.
#[test]
fn the_docs_example_runs() {
    let _serial = serial();
    let doc = std::fs::read_to_string(repo().join("docs/python.md")).unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/python.md");
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "500"], &[]);
    // The example subscribes to AAPL and BTC-USDT: a hub refuses a symbol
    // it has never seen, and the example would then wait for ever.
    common::wait_until(30, "AAPL and BTC-USDT published", || {
        let (_, body) = common::http_get(&hub.addr, "/v1/snapshot?symbols=AAPL,BTC-USDT");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let known = v["symbols"]["AAPL"].is_object() && v["symbols"]["BTC-USDT"].is_object();
        (known, body)
    });
    let code = code.replace("127.0.0.1:8080", &hub.addr);
    let text = run_script(&code, &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("AAPL ") || l.starts_with("BTC-USDT ")),
        "{text}"
    );
    assert!(hub.stop().success());
}

/// `pip install ./clients/python` works, and the installed package imports.
#[test]
fn the_package_installs_with_pip() {
    let _serial = serial();
    let python = python();
    let target = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(target.path())
        .arg(repo().join("clients/python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&python)
        .env("PYTHONPATH", target.path())
        .args([
            "-c",
            "import mdhub; print(mdhub.__version__, mdhub.__file__)",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("0.1.0 "), "{text}");
    assert!(
        text.contains(target.path().to_str().unwrap()),
        "imported the installed copy: {text}"
    );
}

/// `mdhub.history.sql` reads the hub's SQL answer as Arrow (no JSON on the
/// way): the same rows as the JSON answer, exact decimals, the truncation
/// flag, and the hub's stable error codes.
#[test]
fn history_sql_comes_back_as_an_arrow_table() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "1000"], &[]);
    common::wait_until(30, "trades in history", || {
        let (_, body) = common::http_get(
            &hub.addr,
            "/v1/history/sql?q=SELECT%20count(*)%20AS%20n%20FROM%20trades",
        );
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        (v["rows"][0]["n"].as_u64().unwrap_or(0) > 0, body)
    });
    let script = r#"
import json, sys, urllib.parse, urllib.request
from decimal import Decimal
import mdhub
base = sys.argv[1]
q = "SELECT value, value * 3 AS tripled, CAST(value AS VARCHAR) AS s FROM generate_series(1, 1000) ORDER BY value"
table = mdhub.history.sql(base, q)
doc = json.load(urllib.request.urlopen(base + "/v1/history/sql?" + urllib.parse.urlencode({"q": q})))
assert table.num_rows == 1000 and len(doc["rows"]) == 1000, (table.num_rows, len(doc["rows"]))
assert table.to_pylist() == doc["rows"], "the Arrow rows are the JSON rows"
assert table.schema.metadata[b"mdhub.truncated"] == b"false"
cut = mdhub.history.sql(base, q, limit=10)
assert cut.num_rows == 10 and cut.schema.metadata[b"mdhub.truncated"] == b"true"
trades = mdhub.history.sql(base, "SELECT price, size FROM trades LIMIT 5")
assert str(trades.schema.field("price").type).startswith("decimal128"), trades.schema
assert all(isinstance(p, Decimal) for p in trades.column("price").to_pylist())
try:
    mdhub.history.sql(base, "DROP TABLE trades")
    raise SystemExit("a write was accepted")
except mdhub.history.HistoryError as e:
    assert e.status == 400, e
# trades(): every page through the cursor equals one uncut JSON answer.
# A closed range up to now, read once history holds every BTC-USDT trade
# of it: a trade received a second after `now` is archived (one symbol is
# one partition, archived in log order), and the simulator's exchange times
# trail receipt by milliseconds. The hub keeps streaming meanwhile.
import time
now = time.time_ns()
deadline = time.monotonic() + 30
while True:
    newest = json.load(urllib.request.urlopen(base + "/v1/history/sql?" + urllib.parse.urlencode(
        {"q": "SELECT CAST(max(ts_received) AS BIGINT) AS t FROM trades WHERE symbol = 'BTC-USDT'"})))["rows"][0]["t"]
    if newest is not None and int(newest) > now + 1_000_000_000:
        break
    assert time.monotonic() < deadline, "history reaches a second past now"
    time.sleep(0.1)
whole = json.load(urllib.request.urlopen(base + "/v1/history/trades?" + urllib.parse.urlencode(
    {"symbol": "BTC-USDT", "from": "0", "to": str(now), "limit": "100000"})))
assert not whole["truncated"] and len(whole["trades"]) > 5, len(whole["trades"])
paged = mdhub.history.trades(base, "BTC-USDT", 0, now, page_rows=3)
assert paged.num_rows == len(whole["trades"]), (paged.num_rows, len(whole["trades"]))
got = [(r["venue"], str(r["price"].normalize()), r["log_offset"]) for r in paged.select(["venue", "price", "log_offset"]).to_pylist()]
want = [(t["venue"], str(Decimal(t["price"]).normalize()), int(t["position"].rsplit(":", 1)[1])) for t in whole["trades"]]
assert got == want, "paged Arrow rows are the uncut JSON rows, in order"
dex = mdhub.history.quotes(base, ["BTC-USDT", "ETH-USDT"], 0, now, venue="sim-dex", page_rows=50)
assert dex.num_rows > 0 and set(dex.column("venue").to_pylist()) == {"sim-dex"}
# bars(): exact decimals, per venue, equal to the JSON answer.
b = mdhub.history.bars(base, "BTC-USDT", 0, now, interval="1s")
jb = json.load(urllib.request.urlopen(base + "/v1/history/bars?" + urllib.parse.urlencode(
    {"symbol": "BTC-USDT", "interval": "1s", "from": "0", "to": str(now)})))["bars"]
assert b.num_rows == len(jb) > 0, (b.num_rows, len(jb))
assert str(b.schema.field("vwap").type) == "decimal128(38, 18)", b.schema
assert [(r["venue"], r["close"], r["trades"]) for r in b.select(["venue", "close", "trades"]).to_pylist()] == [
    (x["venue"], Decimal(x["close"]), x["trades"]) for x in jb]
assert b.column("ts").cast("int64").to_pylist() == [x["ts"] for x in jb]
print("ok", table.num_rows, cut.num_rows, trades.num_rows)
"#;
    let text = run_script(script, &[&format!("http://{}", hub.addr)]);
    assert!(text.starts_with("ok 1000 10 5"), "{text}");
    assert!(hub.stop().success());
}

/// `SyncClient`, the blocking wrapper for scripts and notebooks: events one
/// by one with a timeout, then a clean close.
#[test]
fn the_sync_client_streams_without_asyncio() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "500"], &[]);
    common::wait_until(30, "MSFT published", || {
        let (_, body) = common::http_get(&hub.addr, "/v1/snapshot?symbols=MSFT");
        (body.contains("\"trade\":{"), body)
    });
    let script = r#"
import sys, threading
from mdhub import SyncClient, Data, Connected, Stopped
with SyncClient(sys.argv[1]) as c:
    c.subscribe(["MSFT"], ["trades"])
    first = c.next(timeout=10)
    assert isinstance(first, Connected), first
    got = [c.next(timeout=10) for _ in range(5)]
    assert all(isinstance(e, Data) and e.symbol == "MSFT" and e.channel == "trades" for e in got), got
    offsets = [e.offset for e in got]
    assert offsets == sorted(set(offsets)), offsets
    print("ok", len(got), c.positions()["MSFT"]["trades"] == got[-1].pos)
assert threading.active_count() == 1, threading.enumerate()
"#;
    let text = run_script(script, &[&hub.ws_url()]);
    assert_eq!(text.trim(), "ok 5 True");
    assert!(hub.stop().success());
}
