//! Crash test B: the active segment is cut at random byte positions (and
//! random bytes of its tail flipped), as a crash mid-write or a bad disk
//! would leave it. After reopen everything before the damage is intact, the
//! torn tail is gone, offsets are contiguous and appends continue.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use mdhub_log::Log;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::common::{append_derived, check_derived, config, key_for, segment_files, value_for};

const SEGMENT: u64 = 64 << 10;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

fn active_segment(dir: &Path) -> (PathBuf, u64) {
    let path = segment_files(dir).pop().unwrap();
    let base = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    (path, base)
}

/// Byte end of each record of the active segment (records carry no headers).
fn record_ends(base: u64, hw: u64) -> Vec<u64> {
    let mut pos = 0;
    (base..hw)
        .map(|o| {
            pos += 32 + key_for(o).len() as u64 + value_for(o).len() as u64;
            pos
        })
        .collect()
}

#[test]
fn torn_and_corrupted_tails_are_cut_on_reopen() {
    let pristine = tempfile::tempdir().unwrap();
    {
        let log = Log::open(config(pristine.path(), SEGMENT)).unwrap();
        log.create_topic("t", 1).unwrap();
        append_derived(&log, "t", 0, 1500);
        log.close().unwrap();
    }
    let (seg, base) = active_segment(pristine.path());
    let seg_len = fs::metadata(&seg).unwrap().len();
    let ends = record_ends(base, 1500);
    assert!(base > 0, "the test needs closed segments too");
    assert_eq!(*ends.last().unwrap(), seg_len, "record sizes as documented");

    let mut rng = SmallRng::seed_from_u64(0x5eed_cafe);
    for round in 0..12 {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        let (seg, _) = active_segment(tmp.path());
        let cut = rng.random_range(0..=seg_len);
        let mut damage = cut;
        {
            let f = OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len(cut).unwrap();
        }
        if round % 2 == 1 && cut > 0 {
            // Flip a few bytes in the last 2 KiB before the cut.
            let mut bytes = fs::read(&seg).unwrap();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(cut.saturating_sub(2048)..cut) as usize;
                bytes[at] ^= rng.random_range(1..=255u8);
                damage = damage.min(at as u64);
            }
            fs::write(&seg, bytes).unwrap();
        }
        // Records ending at or before the first damaged byte survive.
        let intact = ends.iter().take_while(|&&e| e <= damage).count() as u64;
        let expect_hw = base + intact;

        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        assert_eq!(
            log.high_watermark("t", 0).unwrap(),
            expect_hw,
            "round {round}: cut {cut}, damage at {damage}"
        );
        assert_eq!(check_derived(&log, "t", 0), expect_hw);
        let cut_len = fs::metadata(&seg).unwrap().len();
        assert_eq!(
            cut_len,
            if intact == 0 {
                0
            } else {
                ends[intact as usize - 1]
            },
            "torn tail truncated"
        );
        append_derived(&log, "t", 0, 20);
        log.flush().unwrap();
        drop(log);
        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        assert_eq!(check_derived(&log, "t", 0), expect_hw + 20, "round {round}");
    }
}

/// A process killed while writing leaves the active segment's preallocated,
/// zero-filled tail behind (the writer copies into a mapped, `fallocate`d
/// file). Reopening cuts it: every record stays, appends continue after the
/// last one.
#[test]
fn preallocated_zero_tail_is_cut_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        log.create_topic("t", 1).unwrap();
        append_derived(&log, "t", 0, 700);
        log.close().unwrap();
    }
    let (seg, base) = active_segment(tmp.path());
    let seg_len = fs::metadata(&seg).unwrap().len();
    assert_eq!(*record_ends(base, 700).last().unwrap(), seg_len);
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(seg_len + 40_000)
        .unwrap();

    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(log.high_watermark("t", 0).unwrap(), 700);
    assert_eq!(fs::metadata(&seg).unwrap().len(), seg_len, "zero tail cut");
    append_derived(&log, "t", 0, 5);
    log.close().unwrap();
    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(check_derived(&log, "t", 0), 705);
}
