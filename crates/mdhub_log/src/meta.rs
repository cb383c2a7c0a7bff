//! The log directory's identity: the `meta` file (format version and epoch),
//! the exclusive `lock` file, the `running` marker that tells a process crash
//! from a machine crash, the epoch change when recovery loses records, and
//! small atomic text-file writes.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::partition::sync_dir;

/// On-disk format version written to and expected in `meta`.
pub(crate) const FORMAT_VERSION: u32 = 1;
const META_HEADER: &str = "mdhub_log meta";

/// Takes the directory's exclusive lock (released by the kernel when the
/// process exits, even on kill -9).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open lock file", &path))?;
    // A lock can be held for a moment by a process that is exiting, or by a
    // child forked by a process of ours between fork and exec (the descriptor
    // is inherited until exec closes it). Wait up to a second before giving up.
    for attempt in 0..20 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if attempt < 19 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path)(e)),
        }
    }
    Err(Error::Locked {
        dir: dir.to_owned(),
    })
}

/// Writes `text` to `path` atomically and durably: temp file, fsync, rename,
/// fsync of the parent directory.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    write().map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("rename into", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A 16-hex-digit id, unique per call: time, pid and a counter hashed with
/// std's randomly keyed SipHash.
fn new_epoch() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// Reads `<dir>/meta`, creating it with a fresh epoch if missing. Returns the epoch.
pub(crate) fn load_or_create(dir: &Path) -> Result<String> {
    let path = dir.join("meta");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let epoch = new_epoch();
            write_meta(dir, &epoch, None)?;
            tracing::info!(dir = %dir.display(), epoch, "created new log directory");
            return Ok(epoch);
        }
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let unsupported = |found: &str| Error::UnsupportedFormat {
        path: path.clone(),
        found: found.to_owned(),
        expected: FORMAT_VERSION,
    };
    let mut lines = text.lines();
    if lines.next() != Some(META_HEADER) {
        return Err(unsupported(text.lines().next().unwrap_or("")));
    }
    let (mut format, mut epoch) = (None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("format", v)) => format = Some(v),
            Some(("epoch", v)) => epoch = Some(v),
            _ => {}
        }
    }
    if format != Some(&FORMAT_VERSION.to_string()) {
        return Err(unsupported(format.unwrap_or("<missing>")));
    }
    match epoch {
        Some(e) if !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(e.to_owned())
        }
        _ => Err(Error::Corrupt {
            path,
            position: 0,
            reason: "missing or malformed epoch".into(),
        }),
    }
}

/// Writes `meta` with `epoch`; `previous` (the epoch it replaces and why)
/// is kept for the operator, readers ignore it.
fn write_meta(dir: &Path, epoch: &str, previous: Option<(&str, &str)>) -> Result<()> {
    let mut text = format!("{META_HEADER}\nformat={FORMAT_VERSION}\nepoch={epoch}\n");
    if let Some((old, why)) = previous {
        let why: String = why
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        text.push_str(&format!(
            "previous_epoch={old}\nepoch_changed_because={why}\n"
        ));
    }
    write_atomic(&dir.join("meta"), &text)
}

/// The epoch of a log being opened, and the one rule that changes it: before
/// recovery removes records that readers may already have been given (a
/// damaged tail, a lost segment, a machine crash with unsynced data), the
/// log takes a new epoch, durably, so that every position a client holds
/// turns into an `epoch_changed` reset instead of silently naming a
/// different record. Changed at most once per open.
#[derive(Debug)]
pub(crate) struct EpochGuard {
    dir: PathBuf,
    epoch: String,
    previous: Option<String>,
}

impl EpochGuard {
    pub(crate) fn new(dir: &Path, epoch: String) -> EpochGuard {
        EpochGuard {
            dir: dir.to_owned(),
            epoch,
            previous: None,
        }
    }

    /// Called before records are cut or dropped; `why` names what and where.
    pub(crate) fn before_loss(&mut self, why: &str) -> Result<()> {
        if self.previous.is_some() {
            tracing::error!(why, epoch = %self.epoch, "log recovery is removing more records (the epoch has already changed)");
            return Ok(());
        }
        let new = new_epoch();
        write_meta(&self.dir, &new, Some((&self.epoch, why)))?;
        tracing::error!(
            dir = %self.dir.display(), old_epoch = %self.epoch, new_epoch = %new, why,
            "the log is losing records that readers may have seen; it takes a new epoch, \
             so clients resuming from an old position get an `epoch_changed` reset"
        );
        self.previous = Some(std::mem::replace(&mut self.epoch, new));
        Ok(())
    }

    /// The epoch after recovery, and the one it replaced if it changed.
    pub(crate) fn finish(self) -> (String, Option<String>) {
        (self.epoch, self.previous)
    }
}

/// This boot of the machine (Linux's `boot_id`), if the system tells.
fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Checks the `running` marker a previous open left and writes this one's.
/// A marker from the same boot means the process died (kill -9, panic): the
/// page cache kept every flushed record and nothing was lost. A marker from
/// another boot means the machine went down with the log open, and records
/// flushed but not yet fsynced may be gone without a trace (a preallocated
/// tail reads back as zeros), so the epoch changes.
pub(crate) fn check_running(dir: &Path, guard: &mut EpochGuard) -> Result<()> {
    let path = dir.join("running");
    let now = boot_id();
    match fs::read_to_string(&path) {
        Ok(text) => {
            let then = text.lines().find_map(|l| l.strip_prefix("boot="));
            if let (Some(then), Some(now)) = (then, now.as_deref())
                && then != now
            {
                guard.before_loss(
                    "the machine restarted while the log was open (power loss or OS crash): \
                     records not yet fsynced may be lost",
                )?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", &path)(e)),
    }
    let text = format!(
        "boot={}\npid={}\n",
        now.as_deref().unwrap_or("unknown"),
        std::process::id()
    );
    write_atomic(&path, &text)
}

/// Removes the `running` marker once everything is fsynced.
pub(crate) fn mark_clean(dir: &Path) -> Result<()> {
    crate::partition::remove_if_exists(&dir.join("running"))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_differ_and_look_right() {
        let (a, b) = (new_epoch(), new_epoch());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
