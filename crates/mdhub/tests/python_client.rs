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
use common::log::{assert_exactly, log_records};
use mdhub_types::{Event, Topic};
use serde_json::Value;

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
    assert!(py.wait().unwrap().success());
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
        snapshots <= 4,
        "snapshots only on the first subscribe: {snapshots}"
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
        assert_exactly(&log, &got, &format!("{symbol} {topic}"));
    }
}

/// The example in docs/python.md runs as written against a live hub.
#[test]
fn the_docs_example_runs() {
    let python = std::env::var("MDHUB_TEST_PYTHON").expect("MDHUB_TEST_PYTHON");
    let doc = std::fs::read_to_string(repo().join("docs/python.md")).unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/python.md");
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "500"], &[]);
    hub.wait_published(200);
    let code = code.replace("127.0.0.1:8080", &hub.addr);
    let out = Command::new(python)
        .env("PYTHONPATH", repo().join("clients/python"))
        .args(["-c", &code])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let python = std::env::var("MDHUB_TEST_PYTHON").expect("MDHUB_TEST_PYTHON");
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
