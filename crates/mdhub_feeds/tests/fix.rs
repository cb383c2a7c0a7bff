//! The FIX 4.4 feed against a real FIX engine acting as the venue: QuickFIX
//! (the `quickfix` Python package) running `tests/fix/acceptor.py`.
//!
//! One scenario, in order: Logon and one MarketDataRequest per symbol;
//! snapshot and incremental quotes and trades with exact 18-decimal prices;
//! a reject (Y) for an unknown symbol while the others keep flowing; the
//! venue drops the connection → reconnect, re-Logon with the next sequence
//! number (not 1) and resubscribe; the venue skips sequence numbers → our
//! ResendRequest and a recorded gap; Logout on shutdown; a new feed on the
//! same store directory continues the numbering.
//!
//! The Python is `MDHUB_TEST_PYTHON`, else `.venv/bin/python` in the repo
//! root; without an importable `quickfix` the test fails (never skips).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdhub_feeds::Feed;
use mdhub_feeds::venues::fix::{FixBackoff, FixFeed, FixSettings};
use mdhub_types::{Event, FeedStatusKind, Side, Symbol, Timestamp};
use serde_json::Value;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("MDHUB_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// The QuickFIX acceptor, driven through its stdin.
struct Venue {
    child: Child,
    stdin: ChildStdin,
    workdir: PathBuf,
    port: u16,
}

impl Venue {
    fn start(workdir: &Path) -> Venue {
        let py = python();
        let check = Command::new(&py).args(["-c", "import quickfix"]).output();
        match check {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "the FIX tests need QuickFIX's Python package as the venue, but `{} -c 'import quickfix'` failed ({other:?}). \
                 Install it: `python3 -m venv .venv && .venv/bin/pip install quickfix==1.16.0` in the repo root, \
                 or point MDHUB_TEST_PYTHON at a python that has it.",
                py.display()
            ),
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fix/acceptor.py");
        let mut child = Command::new(&py)
            .arg(&script)
            .args(["--port", &port.to_string(), "--workdir"])
            .arg(workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the acceptor did not start");
        Venue {
            child,
            stdin,
            workdir: workdir.to_path_buf(),
            port,
        }
    }

    fn command(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn seen(&self) -> Vec<Value> {
        std::fs::read_to_string(self.workdir.join("seen.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn seen_of(&self, event: &str) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Our newest MsgSeqNum the venue received.
    fn last_in_seq(&self) -> u64 {
        self.seen_of("in")
            .iter()
            .filter_map(|v| v["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settings(port: u16, store: &Path) -> FixSettings {
    FixSettings {
        port,
        sender_comp_id: "MDHUB".into(),
        target_comp_id: "VENUE".into(),
        heartbeat_secs: 5,
        store_dir: store.to_path_buf(),
        symbols: [
            ("BTC-USD", "BTC/USD"),
            ("ETH-USD", "ETH/USD"),
            ("XYZ-USD", "XYZ/USD"),
        ]
        .into_iter()
        .map(|(c, v)| (Symbol::new(c).unwrap(), v.to_string()))
        .collect(),
        backoff: FixBackoff {
            initial_ms: 100,
            max_ms: 500,
            reset_after_secs: 60,
        },
        ..FixSettings::default()
    }
}

struct Running {
    feed: Arc<FixFeed>,
    events: Arc<Mutex<Vec<Event>>>,
    status: Arc<mdhub_feeds::FeedStatus>,
    shutdown: tokio_util::sync::CancellationToken,
    run: tokio::task::JoinHandle<Result<(), mdhub_feeds::FeedError>>,
}

fn start(s: FixSettings) -> Running {
    let feed = Arc::new(FixFeed::new(s));
    let support::Harness {
        ctx,
        events: mut rx,
        status,
        shutdown,
    } = support::harness("fix");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            sink.lock().unwrap().push(e);
        }
    });
    let f = feed.clone();
    let run = tokio::spawn(async move { f.run(ctx).await });
    Running {
        feed,
        events,
        status,
        shutdown,
        run,
    }
}

impl Running {
    fn trades(&self, symbol: &str) -> Vec<mdhub_types::Trade> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Trade(t) if t.symbol.as_str() == symbol => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn quotes(&self, symbol: &str) -> Vec<mdhub_types::Quote> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Quote(q) if q.symbol.as_str() == symbol => Some(q.clone()),
                _ => None,
            })
            .collect()
    }

    fn statuses(&self, symbol: &str) -> Vec<mdhub_types::FeedEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Status(f) if f.symbol.as_str() == symbol => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.run)
            .await
            .expect("the feed stops within 10 s of shutdown")
            .expect("the feed task did not panic");
        assert!(r.is_ok(), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickfix_venue_session_subscriptions_reconnects_gaps_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // MDHUB_TEST_KEEP=1 keeps the venue's logs and the store for a look.
    let _tmp = if std::env::var_os("MDHUB_TEST_KEEP").is_some() {
        eprintln!("FIX test files in {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let store = root.join("store");
    let mut venue = Venue::start(&root.join("venue"));
    let started = Timestamp::now();
    let feed = start(settings(venue.port, &store));

    // Logon and one MarketDataRequest per symbol.
    wait_for("three MarketDataRequests", 30, || {
        venue.seen_of("md_request").len() >= 3
    })
    .await;
    let logons = venue.seen_of("logon");
    assert_eq!(logons.len(), 1);
    assert_eq!(logons[0]["seq"], 1, "a fresh store starts at 1");
    assert_eq!(logons[0]["heartbeat"], "5");
    for r in venue.seen_of("md_request") {
        assert_eq!(r["sub_type"], "1", "snapshot + updates: {r}");
        assert_eq!(r["depth"], "1", "top of book: {r}");
        assert_eq!(r["update_type"], "1", "incremental: {r}");
        assert_eq!(r["entry_types"], serde_json::json!(["0", "1", "2"]));
        assert_eq!(r["symbols"].as_array().unwrap().len(), 1);
    }

    // Snapshot → a quote with the venue's exact text.
    wait_for("the BTC snapshot quote", 15, || {
        !feed.quotes("BTC-USD").is_empty()
    })
    .await;
    let q = &feed.quotes("BTC-USD")[0];
    assert_eq!(q.bid_price.to_string(), "95000.000000000000000001");
    assert_eq!(q.ask_price.to_string(), "95000.000000000000000002");
    assert_eq!(q.bid_size.to_string(), "1.5");
    assert!(q.ts_received >= started);
    // Incrementals → trades for both known symbols, 18 decimals kept.
    wait_for("trades of both symbols", 15, || {
        feed.trades("BTC-USD").len() >= 2 && feed.trades("ETH-USD").len() >= 2
    })
    .await;
    for t in feed.trades("BTC-USD").iter().chain(&feed.trades("ETH-USD")) {
        let k: u64 = t.trade_id.as_deref().unwrap()[1..].parse().unwrap();
        let base = if t.symbol.as_str() == "BTC-USD" {
            95000
        } else {
            3500
        };
        assert_eq!(t.price.to_string(), format!("{base}.{:018}", k * 10 + 3));
        assert_eq!(t.size.to_string(), "0.000000000000000001");
        assert_eq!(t.side, Side::Unknown, "FIX 4.4's MDIncGrp has no side");
        assert!(
            t.ts_received >= started && t.ts_received >= t.ts_exchange.add_nanos(-60_000_000_000)
        );
        assert_eq!(t.ts_exchange.date_string(), t.ts_received.date_string());
    }
    // The unknown symbol was rejected; the others flow.
    let rejected = feed.feed.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].contains("mdhub-XYZ/USD") && rejected[0].contains("unknown symbol"),
        "{rejected:?}"
    );

    // The venue drops the connection: reconnect, re-Logon with the next
    // sequence number, resubscribe.
    let before_drop = venue.last_in_seq();
    venue.command("drop");
    wait_for("a second Logon", 20, || venue.seen_of("logon").len() >= 2).await;
    let logon2 = &venue.seen_of("logon")[1];
    assert!(
        logon2["seq"].as_u64().unwrap() > before_drop,
        "sequence numbers continue across a reconnect: {logon2} after {before_drop}"
    );
    wait_for("resubscription", 15, || {
        venue.seen_of("md_request").len() >= 6
    })
    .await;
    assert!(feed.status.snapshot().reconnects >= 1);
    let n = feed.trades("BTC-USD").len();
    wait_for("trades after the reconnect", 15, || {
        feed.trades("BTC-USD").len() > n + 1
    })
    .await;

    // The venue skips sequence numbers: we ask for them again and count a gap.
    venue.command("skip 3");
    wait_for("our ResendRequest", 15, || {
        !venue.seen_of("resend_request").is_empty()
    })
    .await;
    wait_for("the recorded gap", 5, || feed.status.snapshot().gaps >= 1).await;
    let n = feed.trades("ETH-USD").len();
    wait_for("trades after the gap", 15, || {
        feed.trades("ETH-USD").len() > n + 1
    })
    .await;

    // Shutdown: Logout.
    let s = feed.status.snapshot();
    assert_eq!(s.dropped, 0, "{s:?}");
    let events = feed.events.clone();
    let statuses = |symbol: &str| -> Vec<FeedStatusKind> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Status(f) if f.symbol.as_str() == symbol => Some(f.status),
                _ => None,
            })
            .collect()
    };
    let last_btc = feed.statuses("BTC-USD");
    feed.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Feed status as data, per symbol: connected, lost on the drop,
    // connected again with the book rebuilt from the new snapshot, the
    // sequence gap, and the shutdown.
    use FeedStatusKind::{Connected, Disconnected, Gap, Resync};
    for symbol in ["BTC-USD", "ETH-USD"] {
        let story = statuses(symbol);
        let want = [
            Connected,
            Disconnected,
            Connected,
            Resync,
            Gap,
            Disconnected,
        ];
        let mut it = story.iter();
        for k in want {
            assert!(
                it.any(|s| *s == k),
                "{symbol}: {k:?} missing in order from {story:?}"
            );
        }
        assert_eq!(story.last(), Some(&Disconnected), "{symbol}: {story:?}");
    }
    assert!(
        last_btc.iter().any(|f| f.status == Gap
            && f.detail
                .as_deref()
                .is_some_and(|d| d.contains("ResendRequest"))),
        "{last_btc:?}"
    );
    wait_for("our Logout", 5, || {
        venue.seen_of("in").iter().any(|v| v["msg_type"] == "5")
    })
    .await;
    let last = venue.last_in_seq();

    // A new feed (a restarted process) on the same store continues.
    let again = start(settings(venue.port, &store));
    wait_for("a third Logon", 20, || venue.seen_of("logon").len() >= 3).await;
    let logon3 = &venue.seen_of("logon")[2];
    assert_eq!(
        logon3["seq"].as_u64().unwrap(),
        last + 1,
        "a restart continues the sequence numbers: {logon3}"
    );
    wait_for("resubscription after the restart", 5, || {
        venue.seen_of("md_request").len() >= 9
    })
    .await;
    assert_eq!(
        venue.seen_of("logon").len(),
        3,
        "subscribed on the first Logon"
    );
    wait_for("trades after the restart", 15, || {
        again.trades("BTC-USD").len() >= 2
    })
    .await;
    assert_eq!(again.status.snapshot().dropped, 0);
    again.stop().await;
}
