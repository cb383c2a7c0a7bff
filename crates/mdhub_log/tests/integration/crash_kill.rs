//! Crash test A: a writer process is killed with SIGKILL mid-stream. Every
//! offset it had acknowledged (flush returned) must be readable after reopen
//! with the exact bytes, offsets contiguous from 0, and appends continue.
//!
//! The test re-executes its own binary, filtered to `crash_child_writer`,
//! with `MDHUB_LOG_CRASH_CHILD=<dir>`; without the variable that "test" does
//! nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mdhub_log::{Log, RecordIn};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::common::{check_derived, config, key_for, value_for};

const CHILD_ENV: &str = "MDHUB_LOG_CRASH_CHILD";
const SEGMENT: u64 = 256 << 10;

/// The child: append batches as fast as possible, flush, print "ACK <hw>".
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let log = Log::open(config(std::path::Path::new(&dir), SEGMENT)).expect("child: open");
    log.create_topic("t", 1).expect("child: create topic");
    let mut next = log.high_watermark("t", 0).expect("child: hw");
    let mut stdout = std::io::stdout().lock();
    let mut batch = 1u64;
    loop {
        let n = 1 + (batch * 7919) % 300;
        let owned: Vec<(Vec<u8>, Vec<u8>)> = (next..next + n)
            .map(|o| (key_for(o), value_for(o)))
            .collect();
        let recs = owned.iter().enumerate().map(|(i, (k, v))| RecordIn {
            timestamp: (next + i as u64) as i64 * 10,
            key: k,
            value: v,
            headers: &[],
        });
        let range = log.append_batch("t", 0, recs).expect("child: append");
        assert_eq!(range.start, next);
        log.flush().expect("child: flush");
        next = range.end;
        writeln!(
            stdout,
            "ACK {}",
            log.high_watermark("t", 0).expect("child: hw")
        )
        .expect("child: stdout");
        stdout.flush().expect("child: stdout");
        batch += 1;
    }
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_record() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = SmallRng::seed_from_u64(0xdead_beef);
    let mut last_acked = 0u64;
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args([
                "crash_kill::crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child test process");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let ack = line
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(n) = ack
                    && tx.send(n).is_err()
                {
                    break;
                }
            }
        });
        // Wait for the first acknowledgement, then let it run a random while.
        let first = rx.recv_timeout(Duration::from_secs(20));
        if first.is_err() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "child never acknowledged a flush; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let run_for = Duration::from_millis(rng.random_range(50..700));
        let started = Instant::now();
        let mut acked = first.unwrap();
        while started.elapsed() < run_for {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(5)) {
                acked = acked.max(n);
            }
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        assert!(!status.success(), "child must have been killed");
        reader.join().unwrap();
        // Lines printed before the kill were acknowledged too.
        acked = rx.try_iter().fold(acked, u64::max);
        assert!(acked >= last_acked);

        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        let hw = log.high_watermark("t", 0).unwrap();
        assert!(
            hw >= acked,
            "round {round}: acknowledged {acked} but recovered only {hw}"
        );
        assert_eq!(check_derived(&log, "t", 0), hw);
        let k = key_for(hw);
        let v = value_for(hw);
        let off = log
            .append(
                "t",
                0,
                &RecordIn {
                    timestamp: hw as i64 * 10,
                    key: &k,
                    value: &v,
                    headers: &[],
                },
            )
            .unwrap();
        assert_eq!(off, hw, "appends continue at the high watermark");
        log.close().unwrap();
        last_acked = acked;
        eprintln!("round {round}: acknowledged {acked}, recovered {hw}");
    }
    assert!(
        last_acked > 1000,
        "the child wrote too little to test anything: {last_acked}"
    );
}
