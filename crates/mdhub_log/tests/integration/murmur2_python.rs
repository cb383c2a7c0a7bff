//! `murmur2` / `partition_for_key` against an independent implementation:
//! kafka-python's `kafka.partitioner.default.murmur2`, run through
//! `$MDHUB_TEST_PYTHON` (default `python3`). Missing Python or kafka-python
//! fails the test: run scripts/test.sh, which creates .venv.

use std::io::Write;
use std::process::{Command, Stdio};

use mdhub_log::{murmur2, partition_for_key};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PARTITIONS: [u32; 6] = [1, 3, 6, 8, 12, 64];

const SCRIPT: &str = r#"
import sys
from kafka.partitioner.default import murmur2
ns = [int(n) for n in sys.argv[1:]]
for line in sys.stdin:
    key = bytes.fromhex(line.strip())
    h = murmur2(key) & 0xffffffff
    print(h, *[(h & 0x7fffffff) % n for n in ns])
"#;

fn keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "kafka",
        "AAPL",
        "MSFT",
        "TSLA",
        "BTC-USDT",
        "ETH-USDT",
        "EUR-USD",
        "SOL-USDC",
        "XBT/USD",
        "BTCUSDT",
        "price-quotes",
        "日本",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..300 {
        let len = rng.random_range(0..40);
        keys.push((0..len).map(|_| rng.random::<u8>()).collect());
    }
    keys
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn murmur2_matches_kafka_python() {
    let python = std::env::var("MDHUB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let keys = keys();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(PARTITIONS.iter().map(u32::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run Python interpreter {python:?} ({e}); install kafka-python: run scripts/test.sh, which creates .venv (or set MDHUB_TEST_PYTHON)")
        });
    let input: String = keys.iter().map(|k| hex(k) + "\n").collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{python} failed (is kafka-python installed? install kafka-python: run scripts/test.sh, which creates .venv):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), keys.len(), "one output line per key");
    for (key, line) in keys.iter().zip(lines) {
        let nums: Vec<u64> = line.split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(murmur2(key) as u32 as u64, nums[0], "murmur2({})", hex(key));
        for (i, n) in PARTITIONS.iter().enumerate() {
            assert_eq!(
                partition_for_key(key, *n) as u64,
                nums[i + 1],
                "partition of {} among {n}",
                hex(key)
            );
        }
    }
    assert_eq!(partition_for_key(b"kafka", 6), 4);
}
