//! RedisCache against a real Redis: `$MDHUB_TEST_REDIS` (scripts/test.sh sets
//! it to the server it starts), plus a private `redis-server` this file starts
//! and kills for the outage test. A missing server is a failure, never a skip.
//!
//! Every test uses its own key prefix, so they run in parallel on one server.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mdhub_cache::conformance::{self, quote, trade};
use mdhub_cache::{Cache, Error, RedisCache, RedisConfig};
use mdhub_types::{Positioned, Symbol, Timestamp};

fn test_url() -> String {
    std::env::var("MDHUB_TEST_REDIS").unwrap_or_else(|_| {
        panic!(
            "MDHUB_TEST_REDIS is not set: run scripts/test.sh, which starts Redis and sets it \
             (or set MDHUB_TEST_REDIS=redis://127.0.0.1:6379 for a server you run yourself)"
        )
    })
}

fn unique_prefix(test: &str) -> String {
    format!(
        "mdhub-test:{test}:{}:{}:",
        std::process::id(),
        Timestamp::now().as_nanos() as u64 % 1_000_000_000_000
    )
}

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        prefix: prefix.to_string(),
        ..RedisConfig::new(url)
    }
}

async fn cache(test: &str) -> RedisCache {
    let url = test_url();
    RedisCache::connect(&config(&url, &unique_prefix(test)))
        .await
        .unwrap_or_else(|e| panic!("connect to MDHUB_TEST_REDIS={url}: {e}"))
}

/// A plain connection for writing raw keys.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw redis connection")
}

/// The only venue's entry.
fn only(mut got: Vec<mdhub_cache::Latest>) -> mdhub_cache::Latest {
    assert_eq!(got.len(), 1, "one venue expected: {got:?}");
    got.pop().expect("one")
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).expect("symbol")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let c = cache("conformance").await;
    conformance::run_all(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_caches_apart() {
    let url = test_url();
    let base = unique_prefix("prefixes");
    let a = RedisCache::connect(&config(&url, &base)).await.expect("a");
    // A prefix that starts with a's own key names must still be separate.
    let b = RedisCache::connect(&config(&url, &format!("{base}latest:b:")))
        .await
        .expect("b");
    a.put(&[quote("AAPL", "sim-nasdaq", 1, 1)])
        .await
        .expect("put a");
    b.put(&[trade("MSFT", "sim-nasdaq", 1, 1)])
        .await
        .expect("put b");

    assert!(b.get(&sym("AAPL")).await.expect("get").is_empty());
    assert!(a.get(&sym("MSFT")).await.expect("get").is_empty());
    let names = |d: Vec<mdhub_cache::SymbolInfo>| -> Vec<String> {
        d.into_iter()
            .map(|i| i.symbol.as_str().to_string())
            .collect()
    };
    assert_eq!(names(a.symbols().await.expect("symbols")), ["AAPL"]);
    assert_eq!(names(b.symbols().await.expect("symbols")), ["MSFT"]);

    a.clear().await.expect("clear a");
    assert!(
        !b.get(&sym("MSFT")).await.expect("get").is_empty(),
        "clearing one prefix must leave another's keys"
    );
    b.clear().await.expect("clear b");
    let mut r = raw(&url).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}*"))
        .query_async(&mut r)
        .await
        .expect("KEYS");
    assert!(left.is_empty(), "clear left keys behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_timestamps_compare_exactly_beyond_2_pow_53() {
    let c = cache("exact").await;
    // 2^53 + 1 and 2^53 are the same Lua double.
    let big = (1u64 << 53) + 1;
    let newer = quote("AAPL", "v", big, 1);
    c.put(std::slice::from_ref(&newer)).await.expect("put");
    c.put(&[quote("AAPL", "v", big - 1, 2)]).await.expect("put");
    let got = only(c.get(&sym("AAPL")).await.expect("get"));
    assert_eq!(got.quote, Some(newer));

    let top = quote("AAPL", "v", u64::MAX, 3);
    c.put(&[quote("AAPL", "v", u64::MAX - 1, 4), top.clone()])
        .await
        .expect("put");
    let got = only(c.get(&sym("AAPL")).await.expect("get"));
    assert_eq!(got.quote, Some(top));

    // Directory: timestamps one nanosecond apart, ~2^60.
    let mut t = trade("NVDA", "v", 1, 0);
    let mut q = quote("NVDA", "v", 1, 0);
    if let (mdhub_types::Event::Trade(tr), mdhub_types::Event::Quote(qu)) =
        (&mut t.event, &mut q.event)
    {
        tr.ts_received = Timestamp::from_nanos(1_700_000_000_000_000_001);
        qu.ts_received = Timestamp::from_nanos(1_700_000_000_000_000_000);
    }
    c.put(&[t, q]).await.expect("put");
    let dir = c.symbols().await.expect("symbols");
    let nvda = dir
        .iter()
        .find(|i| i.symbol.as_str() == "NVDA")
        .expect("NVDA");
    assert_eq!(
        nvda.last_update,
        Timestamp::from_nanos(1_700_000_000_000_000_001)
    );
    c.clear().await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_and_replays_converge_on_the_newest() {
    let c = std::sync::Arc::new(cache("race").await);
    let events: Vec<Positioned> = (0..2000u64)
        .map(|i| {
            let s = format!("S{}", i % 50);
            // Two venues interleaved in one partition, as the log keeps them.
            let v = if i % 7 < 3 { "v" } else { "w" };
            if i % 3 == 0 {
                trade(&s, v, i, i as i64)
            } else {
                quote(&s, v, i, i as i64)
            }
        })
        .collect();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        let mut mine = events.clone();
        if w % 2 == 1 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for chunk in mine.chunks(137) {
                c.put(chunk).await.expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let memory = mdhub_cache::MemoryCache::new();
    memory.put(&events).await.expect("memory put");
    let symbols: Vec<Symbol> = (0..50).map(|i| sym(&format!("S{i}"))).collect();
    assert_eq!(
        c.get_many(&symbols).await.expect("get_many"),
        memory.get_many(&symbols).await.expect("memory get_many")
    );
    assert_eq!(
        c.symbols().await.expect("symbols"),
        memory.symbols().await.expect("memory symbols")
    );
    c.clear().await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_script_call_is_applied_whole() {
    let c = cache("large").await;
    let batch: Vec<Positioned> = (0..5000u64)
        .map(|i| quote(&format!("L{i:05}"), "v", i, i as i64))
        .collect();
    c.put(&batch).await.expect("put");
    assert_eq!(c.symbols().await.expect("symbols").len(), 5000);
    let last = only(c.get(&sym("L04999")).await.expect("get"));
    assert_eq!(last.quote.as_ref(), batch.last());
    c.clear().await.expect("clear");
    assert!(c.symbols().await.expect("symbols").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entries_are_reported_not_panicked_on() {
    let url = test_url();
    let prefix = unique_prefix("corrupt");
    let c = RedisCache::connect(&config(&url, &prefix))
        .await
        .expect("connect");
    let mut r = raw(&url).await;
    let hset = |key: String, field: &'static str, value: &'static str| {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key).arg(field).arg(value);
        cmd
    };
    let corrupt_symbol = |e: Error| match e {
        Error::Corrupt { symbol, reason } => {
            assert!(!reason.is_empty());
            symbol
        }
        other => panic!("expected Corrupt, got {other:?}"),
    };

    // Not JSON.
    let _: () = hset(format!("{prefix}latest:AAPL"), "quote", "{not json")
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    let err = c
        .get(&sym("AAPL"))
        .await
        .expect_err("garbage must not decode");
    assert_eq!(corrupt_symbol(err), "AAPL");

    // A valid event in the wrong slot.
    let t = trade("MSFT", "v", 1, 1);
    let json = serde_json::to_string(&t).expect("json");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}latest:MSFT"))
        .arg("quote")
        .arg(json)
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    let err = c
        .get_many(&[sym("ZZZ"), sym("MSFT")])
        .await
        .expect_err("a trade in the quote slot");
    assert_eq!(corrupt_symbol(err), "MSFT");

    // A key of the wrong type: reads and writes both say which symbol.
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}latest:NVDA"))
        .arg("x")
        .query_async(&mut r)
        .await
        .expect("raw SET");
    let err = c.get(&sym("NVDA")).await.expect_err("string key");
    assert_eq!(corrupt_symbol(err), "NVDA");
    let err = c
        .put(&[quote("NVDA", "v", 1, 1)])
        .await
        .expect_err("put over a string key");
    assert_eq!(corrupt_symbol(err), "NVDA");

    // A damaged offset is overwritten by the next put (the cache heals).
    let _: () = hset(format!("{prefix}latest:AMD"), "quote_off:v", "zz")
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    let q = quote("AMD", "v", 3, 3);
    c.put(std::slice::from_ref(&q)).await.expect("put heals");
    assert_eq!(only(c.get(&sym("AMD")).await.expect("get")).quote, Some(q));

    // A bad directory entry.
    let _: () = hset(format!("{prefix}symbols"), "EUR-USD", "[1,2]")
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    let err = c.symbols().await.expect_err("bad directory entry");
    assert_eq!(corrupt_symbol(err), "EUR-USD");

    // The connection is still fine afterwards.
    c.health().await.expect("health");
    c.clear().await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_bad_settings_and_unreachable_servers() {
    let err = RedisCache::connect(&RedisConfig::new("http://localhost:6379"))
        .await
        .expect_err("bad scheme");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("redis.url:"), "{err}");

    let port = free_port();
    let mut cfg = RedisConfig::new(format!("redis://:hunter2@127.0.0.1:{port}"));
    cfg.connect_timeout_ms = 2000;
    let start = Instant::now();
    let err = RedisCache::connect(&cfg)
        .await
        .expect_err("nothing listens there");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("hunter2"), "password leaked: {text}");
}

// ---- outage ----------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A private redis-server, killed when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        Server::start_with(port, &["--port", &port.to_string()])
    }

    /// A server listening on `port` as `args` say (plain or TLS).
    fn start_with(port: u16, args: &[&str]) -> Server {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (apt-get install redis-server) or run scripts/test.sh")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server(child)
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_outage_and_recovers_by_itself() {
    let port = free_port();
    let server = Server::start(port);
    let op_timeout = Duration::from_millis(500);
    let cfg = RedisConfig {
        op_timeout_ms: op_timeout.as_millis() as u64,
        connect_timeout_ms: 1000,
        ..config(&format!("redis://127.0.0.1:{port}"), "outage:")
    };
    let c = RedisCache::connect(&cfg).await.expect("connect");
    c.put(&[quote("AAPL", "v", 1, 1)]).await.expect("put");
    assert!(!c.get(&sym("AAPL")).await.expect("get").is_empty());

    server.kill();

    // Every operation fails fast and retryably; nothing hangs or panics.
    let slack = Duration::from_millis(400);
    for round in 0..3 {
        let checks: Vec<(&str, Result<(), Error>, Duration)> = vec![
            timed("put", c.put(&[quote("AAPL", "v", 2 + round, 2)])).await,
            timed("get", async { c.get(&sym("AAPL")).await.map(drop) }).await,
            timed("get_many", async {
                c.get_many(&[sym("AAPL"), sym("MSFT")]).await.map(drop)
            })
            .await,
            timed("symbols", async { c.symbols().await.map(drop) }).await,
            timed("clear", c.clear()).await,
            timed("health", c.health()).await,
        ];
        for (what, result, took) in checks {
            eprintln!("down, round {round}: {what} after {took:?}: {result:?}");
            match result {
                Err(e @ Error::Unavailable(_)) => assert!(e.is_retryable()),
                other => panic!("{what} while Redis is down: expected Unavailable, got {other:?}"),
            }
            assert!(
                took <= op_timeout + slack,
                "{what} took {took:?} while Redis is down (op timeout {op_timeout:?})"
            );
        }
    }

    let _server = Server::start(port);
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(15);
    let q = quote("MSFT", "v", 7, 7);
    loop {
        let attempt = async {
            c.put(std::slice::from_ref(&q)).await?;
            c.get(&sym("MSFT")).await
        }
        .await;
        match attempt {
            Ok(l) if l.first().and_then(|l| l.quote.as_ref()) == Some(&q) => {
                eprintln!("recovered {:?} after the restart", restarted.elapsed());
                break;
            }
            Ok(other) => panic!("after recovery, MSFT read back as {other:?}"),
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "the cache did not recover within 15 s after Redis restarted: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The restarted server kept nothing (no persistence); the cache works on.
    assert!(c.get(&sym("AAPL")).await.expect("get").is_empty());
    c.clear().await.expect("clear");
    conformance::run_all(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_replica_is_unavailable_until_writes_are_accepted_again() {
    let port = free_port();
    let _server = Server::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let c = RedisCache::connect(&config(&url, "replica:"))
        .await
        .expect("connect");
    c.put(&[quote("AAPL", "v", 1, 1)]).await.expect("put");

    // As after a failover that left this host a replica (of nothing here).
    let mut r = raw(&url).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(free_port())
        .query_async(&mut r)
        .await
        .expect("REPLICAOF");
    match c.put(&[quote("AAPL", "v", 2, 2)]).await {
        Err(e @ Error::Unavailable(_)) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("read only replica"), "{e}");
        }
        other => panic!("put on a replica: expected Unavailable, got {other:?}"),
    }
    // Reads still work on a replica.
    assert!(!c.get(&sym("AAPL")).await.expect("get").is_empty());

    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut r)
        .await
        .expect("REPLICAOF NO ONE");
    let q = quote("AAPL", "v", 3, 3);
    c.put(std::slice::from_ref(&q))
        .await
        .expect("put after promotion");
    assert_eq!(only(c.get(&sym("AAPL")).await.expect("get")).quote, Some(q));
}

async fn timed<F>(what: &'static str, f: F) -> (&'static str, Result<(), Error>, Duration)
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    let start = Instant::now();
    let r = f.await;
    (what, r, start.elapsed())
}

// ---- TLS -------------------------------------------------------------------

/// A self-signed certificate for `localhost`, as Heroku Redis has one.
fn self_signed(dir: &std::path::Path) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.pem"])
        .output()
        .expect("openssl (Debian package openssl; scripts/test.sh installs it) makes the test certificate");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_certificates_unless_insecure_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed(dir.path());
    let port = free_port();
    let file = |f: &str| dir.path().join(f).display().to_string();
    let _server = Server::start_with(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("cert.pem"),
            "--tls-key-file",
            &file("key.pem"),
            "--tls-ca-cert-file",
            &file("cert.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://localhost:{port}");

    let mut verified = config(&url, "tls:");
    verified.connect_timeout_ms = 2000;
    let err = RedisCache::connect(&verified)
        .await
        .expect_err("a self-signed certificate must be refused by default");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    let insecure = RedisConfig {
        insecure_tls: true,
        ..verified.clone()
    };
    let c = RedisCache::connect(&insecure)
        .await
        .expect("insecure_tls accepts the self-signed certificate");
    conformance::run_all(&c).await;

    let fragment = RedisCache::connect(&config(&format!("{url}/#insecure"), "tls:"))
        .await
        .expect("#insecure accepts the self-signed certificate");
    fragment.health().await.expect("health over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_written_before_venues_were_keys_is_still_read() {
    // The layout of an older mdhub: one `quote`/`trade` slot per symbol and a
    // directory field per symbol.
    let url = test_url();
    let prefix = unique_prefix("legacy");
    let c = RedisCache::connect(&config(&url, &prefix))
        .await
        .expect("connect");
    let mut r = raw(&url).await;
    let old = quote("BTC-USD", "kraken", 10, 1);
    let json = serde_json::to_string(&old).expect("json");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}latest:BTC-USD"))
        .arg("quote")
        .arg(&json)
        .arg("quote_off")
        .arg("10")
        .arg("quote_ts")
        .arg("1700000000000000101")
        .arg("quote_venue")
        .arg("kraken")
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}symbols"))
        .arg("BTC-USD")
        .arg(r#"{"venue":"kraken","last_update":1700000000000000101}"#)
        .query_async(&mut r)
        .await
        .expect("raw HSET");
    assert_eq!(
        only(c.get(&sym("BTC-USD")).await.expect("get")).quote,
        Some(old)
    );

    // New events of another venue and of the same venue: each instrument
    // keeps its own newest, the legacy slot loses to a newer offset.
    let coinbase = quote("BTC-USD", "coinbase", 11, 2);
    let kraken = quote("BTC-USD", "kraken", 12, 3);
    c.put(&[coinbase.clone(), kraken.clone()])
        .await
        .expect("put");
    let got = c.get(&sym("BTC-USD")).await.expect("get");
    let quotes: Vec<_> = got.iter().map(|l| l.quote.clone()).collect();
    assert_eq!(quotes, [Some(coinbase), Some(kraken)]);
    let dir: Vec<(String, String)> = c
        .symbols()
        .await
        .expect("symbols")
        .into_iter()
        .map(|i| (i.symbol.to_string(), i.venue.to_string()))
        .collect();
    assert_eq!(
        dir,
        [
            ("BTC-USD".to_string(), "coinbase".to_string()),
            ("BTC-USD".to_string(), "kraken".to_string())
        ],
        "a legacy directory line and a new one of the same instrument are one"
    );
    c.clear().await.expect("clear");
}
