//! The log directory's identity: the `meta` file (format version and epoch),
//! the exclusive `lock` file, and small atomic text-file writes.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;
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
            write_atomic(
                &path,
                &format!("{META_HEADER}\nformat={FORMAT_VERSION}\nepoch={epoch}\n"),
            )?;
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
