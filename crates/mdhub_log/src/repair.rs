//! `repair`: what an operator runs on a stopped log after `verify` found
//! damage (model: `redis-check-aof --fix`, Kafka's recovery on an unclean
//! start, done on purpose and reported).
//!
//! 1. Copies every damaged byte range to `quarantine/` in the log directory
//!    (`<topic>-<partition>-<first offset>.bin`), for the post-mortem.
//! 2. Removes every `.index` file, so that opening rebuilds each from its
//!    segment.
//! 3. Opens the log, which applies the recovery policy (README: *Damage*):
//!    the newest segment of a partition is cut at its first bad record under
//!    a new epoch; damage in closed segments stays in place, skipped by
//!    readers with an explicit `data_lost`.
//! 4. Verifies again and reports before and after.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::verify::{Damage, verify};
use crate::{Log, LogConfig};

/// What `repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Damage found before.
    pub before: Vec<Damage>,
    /// Copies of the damaged bytes, one file per range.
    pub quarantined: Vec<PathBuf>,
    /// Index files removed (and rebuilt by the open).
    pub indexes_rebuilt: usize,
    /// The epoch after repair, and the one it replaced when recovery cut
    /// records readers may have seen.
    pub epoch: String,
    /// The epoch before, when it changed.
    pub previous_epoch: Option<String>,
    /// Damage left (in closed segments: kept, skipped by readers).
    pub after: Vec<Damage>,
}

/// Repairs the stopped log in `config.dir` (see the module docs). Fails with
/// `Error::Locked` while a process has it open.
pub fn repair(config: LogConfig) -> Result<RepairReport> {
    let dir = config.dir.clone();
    // Take the lock first: never touch files a running process writes.
    let lock = crate::meta::lock_dir(&dir)?;
    let before = verify(&dir, |_| {})?.damage;
    let quarantine = dir.join("quarantine");
    let mut quarantined = Vec::new();
    for d in &before {
        if d.end <= d.position {
            continue; // a missing segment: no bytes to keep
        }
        fs::create_dir_all(&quarantine).map_err(Error::io("create", &quarantine))?;
        let to = quarantine.join(format!("{}-{}-{}.bin", d.topic, d.partition, d.offset));
        copy_range(&d.segment, d.position, d.end, &to)?;
        quarantined.push(to);
    }
    let mut indexes_rebuilt = 0;
    for d in walk(&dir.join("topics"))? {
        if d.extension().is_some_and(|e| e == "index") {
            fs::remove_file(&d).map_err(Error::io("remove", &d))?;
            indexes_rebuilt += 1;
        }
    }
    drop(lock);
    let log = Log::open(LogConfig {
        scrub_mb_per_sec: 0,
        ..config
    })?;
    let (epoch, previous_epoch) = (
        log.epoch().to_owned(),
        log.previous_epoch().map(str::to_owned),
    );
    log.close()?;
    let after = verify(&dir, |_| {})?.damage;
    Ok(RepairReport {
        before,
        quarantined,
        indexes_rebuilt,
        epoch,
        previous_epoch,
        after,
    })
}

fn copy_range(from: &Path, start: u64, end: u64, to: &Path) -> Result<()> {
    let f = fs::File::open(from).map_err(Error::io("open segment", from))?;
    let mut bytes = vec![0u8; (end - start) as usize];
    f.read_exact_at(&mut bytes, start)
        .map_err(Error::io("read segment", from))?;
    fs::write(to, bytes).map_err(Error::io("write", to))
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries {
        let path = e.map_err(Error::io("list", dir))?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
