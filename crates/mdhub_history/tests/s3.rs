//! The lake on a real S3 API: `moto_server` (moto, PyPI) on loopback, written
//! through `store_from_url("s3://…")` with the `AWS_*` variables as a
//! deployment sets them, listed and read back through object_store, and read
//! by pyarrow's own S3 client with Hive partitioning — exact prices.

// The AWS_* variables are set once, before anything else in this one-test
// binary reads the environment.
#![allow(unsafe_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mdhub_history::{TableKind, store_from_url, write_batch};
use mdhub_types::{
    Decimal, Event, Position, Positioned, Side, Symbol, Timestamp, Topic, Trade, Venue,
};
use object_store::ObjectStoreExt;

/// 2024-05-01T12:00:00Z.
const DAY1: i64 = 1_714_564_800_000_000_000;
const PRICES: [&str; 4] = [
    "12345678901.12345678",
    "0.00000845",
    "0.123456789012345678",
    "-37.63",
];

struct Moto(Child);
impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> PathBuf {
    std::env::var_os("MDHUB_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed (moto[server], boto3 and pyarrow come from scripts/requirements-test.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start_moto() -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = python().with_file_name("moto_server");
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {server:?} ({e}): scripts/test.sh installs moto[server] into .venv"
            )
        });
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

fn trade(symbol: &str, n: usize, price: &str) -> Positioned {
    Positioned {
        position: Position {
            topic: Topic::Trades,
            partition: 3,
            offset: 100 + n as u64,
        },
        event: Event::Trade(Trade {
            venue: Venue::new("coinbase").unwrap(),
            symbol: Symbol::new(symbol).unwrap(),
            ts_exchange: Timestamp::from_nanos(DAY1 + n as i64),
            ts_received: Timestamp::from_nanos(DAY1 + 1_000 + n as i64),
            price: Decimal::parse(price).unwrap(),
            size: Decimal::parse("0.5").unwrap(),
            side: Side::Buy,
            trade_id: Some(n.to_string()),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_on_a_real_s3_api() {
    let (_moto, endpoint) = start_moto();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        // SAFETY: set before this binary's only test reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    run_python(
        "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='lake')",
        &[&endpoint],
    );
    let rows: Vec<Positioned> = PRICES
        .iter()
        .enumerate()
        .map(|(n, p)| trade("BTC-USD", n, p))
        .collect();
    let store = store_from_url("s3://lake/mdhub").unwrap();
    let written = write_batch(&*store, TableKind::Trades, &rows)
        .await
        .unwrap();
    assert_eq!(written.len(), 1);
    let path = written[0].key.path();
    assert_eq!(
        path.as_ref(),
        "trades/date=2024-05-01/symbol=BTC-USD/part-3-00000000000000000100-00000000000000000103.parquet"
    );
    // Listed and read back through the S3 API.
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, path);
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len(), written[0].bytes);
    // An independent S3 client and Parquet reader: pyarrow, Hive partitions.
    let out = run_python(
        "import sys, pyarrow.fs as fs, pyarrow.dataset as ds\n\
         s3 = fs.S3FileSystem(access_key='test', secret_key='test', endpoint_override=sys.argv[1], scheme='http', region='us-east-1')\n\
         t = ds.dataset('lake/mdhub/trades', filesystem=s3, format='parquet', partitioning='hive').to_table()\n\
         for r in t.sort_by('log_offset').select(['symbol', 'date', 'log_offset', 'price']).to_pylist():\n    print(r['symbol'], r['date'], r['log_offset'], format(r['price'].normalize(), 'f'))",
        &[&endpoint],
    );
    let want: Vec<String> = PRICES
        .iter()
        .enumerate()
        .map(|(n, p)| format!("BTC-USD 2024-05-01 {} {p}", 100 + n))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    archiver_and_queries_on_s3().await;
}

/// The archiver writes a log into the S3 lake exactly once (a second run
/// writes nothing), and DataFusion reads it back through the same S3 API.
async fn archiver_and_queries_on_s3() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig};
    use mdhub_history::Lake;
    use mdhub_history::archive::{self, ArchiveConfig, ArchiveStats, Archiver, HotTier};
    use mdhub_history::query::History;

    let dir = tempfile::tempdir().unwrap();
    let log = mdhub_log::Log::open(mdhub_log::LogConfig {
        dir: dir.path().to_path_buf(),
        partitions: 2,
        ..Default::default()
    })
    .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(
        EmbeddedBus::new(
            Arc::new(log),
            EmbeddedBusConfig {
                encoding: mdhub_types::Encoding::Avro,
            },
        )
        .unwrap(),
    );
    let events: Vec<Event> = (0..400)
        .map(|n| {
            trade(
                if n % 2 == 0 { "BTC-USD" } else { "ETH-USD" },
                n,
                PRICES[n % 4],
            )
            .event
        })
        .collect();
    bus.publish(&events).await.unwrap();
    let lake = Lake::open("s3://lake/archive").unwrap();
    let mut written = Vec::new();
    for _ in 0..2 {
        let stats = Arc::new(ArchiveStats::default());
        let a = Archiver::new(
            lake.clone(),
            ArchiveConfig::default(),
            HotTier::new(),
            stats.clone(),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(archive::run(bus.clone(), a, stop.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        task.await.unwrap().unwrap();
        written.push(stats.rows_written.load(Ordering::Relaxed));
    }
    assert_eq!(
        written,
        vec![400, 0],
        "the second run resumes after the committed offsets"
    );
    let (_, batches) = History::new(lake, None)
        .sql(
            "SELECT count(*), count(DISTINCT symbol), \
             sum(CASE WHEN price = CAST('12345678901.12345678' AS DECIMAL(38, 18)) THEN 1 ELSE 0 END) \
             FROM trades",
        )
        .await
        .unwrap();
    let b = &batches[0];
    let v = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0);
    assert_eq!((v(0), v(1), v(2)), (400, 2, 100));
}
