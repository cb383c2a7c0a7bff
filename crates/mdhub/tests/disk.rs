//! A full disk, on the real binary: `mdhub run` on a small tmpfs (the tests
//! run as root, as scripts/test.sh and CI do), the disk filled mid-stream.
//! Publishing stops without writing an event twice or losing one, the
//! ingest stage reports itself retrying, `/readyz` answers 503, and it all
//! resumes by itself once there is space again.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{Hub, http_get, metric, wait_until};
use mdhub_log::{Log, LogConfig};

/// A tmpfs of `mb` MiB mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (scripts/test.sh runs as root in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write zeros into `path` until the disk is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut n = 0u64;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len() as u64;
    }
    // The last partial chunk: fill to the last byte.
    for size in [4096usize, 512, 1] {
        while f.write_all(&chunk[..size]).is_ok() {
            n += size as u64;
        }
    }
    let _ = f.flush();
    n
}

/// Every record value of every partition of `topic`, checking offsets run
/// without a hole; the count of records and of distinct values.
fn records(log_dir: &Path, topic: &str) -> (usize, usize) {
    let log = Log::open(LogConfig {
        dir: log_dir.to_path_buf(),
        ..LogConfig::default()
    })
    .expect("the log opens after the disk was full");
    let (mut all, mut distinct) = (0, 0);
    for p in 0..log.partitions(topic).unwrap() {
        let mut seen = HashSet::new();
        let mut next = log.start_offset(topic, p).unwrap();
        let end = log.high_watermark(topic, p).unwrap();
        while next < end {
            let out = log
                .read(topic, p, next, 10_000, 8 << 20, |r| {
                    assert_eq!(r.offset, next, "{topic}/{p}: offsets without a hole");
                    next += 1;
                    all += 1;
                    seen.insert(r.value.to_vec());
                })
                .unwrap();
            assert!(out.records > 0, "{topic}/{p}: read stalled at {next}");
        }
        distinct += seen.len();
    }
    (all, distinct)
}

/// `mdhub run` (archiver off) on a 64 MiB tmpfs, with `env`, once it has
/// published 2,000 events: the mount, the data directory and the hub.
fn hub_on_tmpfs(seed: &str, env: &[(&str, &str)]) -> (Tmpfs, std::path::PathBuf, Hub) {
    let fs = Tmpfs::mount(64);
    let data = fs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut all = vec![
        ("MDHUB_HISTORY__ARCHIVE", "false"),
        ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
    ];
    all.extend_from_slice(env);
    let hub = Hub::start(&data, &["--sim-rate", "4000", "--seed", seed], &all);
    hub.wait_published(2_000);
    (fs, data, hub)
}

/// No record of either price topic is in the log twice.
fn assert_nothing_written_twice(data: &Path) {
    for topic in ["price-quotes", "price-trades"] {
        let (all, distinct) = records(&data.join("log"), topic);
        assert!(all > 0);
        assert_eq!(
            all,
            distinct,
            "{topic}: {} records written twice",
            all - distinct
        );
    }
}

#[test]
fn a_full_disk_neither_duplicates_nor_loses_events_and_readyz_says_so() {
    let (fs, data, hub) = hub_on_tmpfs("21", &[]);

    // The disk fills up: publishing fails, and says so.
    let filler = fs.path().join("filler");
    assert!(fill(&filler) > 0);
    let body = wait_until(60, "ingest retrying, /readyz 503", || {
        let (code, body) = http_get(&hub.addr, "/readyz");
        (code == 503 && body.contains("\"ingest\""), body)
    });
    assert!(body.contains("\"retrying\""), "{body}");
    assert_eq!(metric(&hub.addr, "mdhub_stage_up{stage=\"ingest\"}"), 0);
    assert!(metric(&hub.addr, "mdhub_ingest_retries_total") > 0);
    let stuck = hub.status()["ingest"]["published"].as_u64().unwrap();

    // Space again: it resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    wait_until(60, "ready again", || {
        let (code, body) = http_get(&hub.addr, "/readyz");
        (code == 200, body)
    });
    hub.wait_published(stuck + 2_000);
    assert!(
        hub.stop().success(),
        "clean shutdown after the disk was full"
    );

    // Nothing written twice, no hole in any partition.
    assert_nothing_written_twice(&data);
}

#[test]
fn below_the_free_space_watermark_publishing_stops_before_the_disk_is_full() {
    let (fs, data, hub) = hub_on_tmpfs("22", &[("MDHUB_LOG__MIN_FREE_MB", "32")]);

    // Take the free space below 32 MiB, leaving about 20 MiB.
    let filler = fs.path().join("filler");
    let free = hub.status()["log_files"]["disk"]["free_bytes"]
        .as_u64()
        .unwrap();
    let take = free.saturating_sub(20 << 20);
    std::fs::write(&filler, vec![0u8; take as usize]).unwrap();
    let body = wait_until(30, "ingest retrying, /readyz 503", || {
        let (code, body) = http_get(&hub.addr, "/readyz");
        (code == 503 && body.contains("\"ingest\""), body)
    });
    assert!(
        body.contains("min_free_mb"),
        "the reason is the watermark: {body}"
    );
    let disk = hub.status()["log_files"]["disk"].clone();
    assert_eq!(disk["low"], true, "{disk}");
    assert!(
        disk["free_bytes"].as_u64().unwrap() > 10 << 20,
        "stopped with room left: {disk}"
    );
    assert_eq!(metric(&hub.addr, "mdhub_log_min_free_bytes"), 32 << 20);

    // Space again: it resumes by itself.
    let stuck = hub.status()["ingest"]["published"].as_u64().unwrap();
    std::fs::remove_file(&filler).unwrap();
    wait_until(30, "ready again", || {
        let (code, body) = http_get(&hub.addr, "/readyz");
        (code == 200, body)
    });
    hub.wait_published(stuck + 2_000);
    assert!(hub.stop().success());
    assert_nothing_written_twice(&data);
}
