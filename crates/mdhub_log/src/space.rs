//! The free-space watermark: the background thread reads the log
//! filesystem's free space (`statvfs`) on every pass; below the watermark
//! appends are refused with [`Error::LowDiskSpace`] (retryable) before the
//! disk is full, so a writer stops cleanly with room left for what must
//! still be written (offsets, index files, the flush of records already
//! buffered), and resumes by itself once space returns.
//!
//! [`Error::LowDiskSpace`]: crate::Error::LowDiskSpace
//!
//! One `unsafe` call, `statvfs(3)`: std has no free-space query.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The automatic watermark: 2% of the filesystem, at most this.
const AUTO_CAP: u64 = 1 << 30;

/// Free space as last read.
#[derive(Debug, Default)]
pub(crate) struct Space {
    low: AtomicBool,
    free: AtomicU64,
    min: AtomicU64,
}

/// The log filesystem's free space, as [`Log::disk_space`] reports it.
///
/// [`Log::disk_space`]: crate::Log::disk_space
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    /// The watermark.
    pub min_free_bytes: u64,
    /// Appends are refused (free below the watermark).
    pub low: bool,
}

/// `(available, total)` bytes of the filesystem holding `dir`.
fn statvfs(dir: &Path) -> std::io::Result<(u64, u64)> {
    let path = CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated string and `st` a plain struct that
    // statvfs fills; nothing is kept past the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

impl Space {
    /// Reads the free space of `dir`'s filesystem against `min_free_mb`
    /// (0: 2% of the filesystem, at most 1 GiB).
    pub(crate) fn check(&self, dir: &Path, min_free_mb: u64) {
        let (free, total) = match statvfs(dir) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot read free space");
                return;
            }
        };
        let min = match min_free_mb {
            0 => (total / 50).min(AUTO_CAP),
            mb => mb << 20,
        };
        self.free.store(free, Ordering::Relaxed);
        self.min.store(min, Ordering::Relaxed);
        let low = free < min;
        match (self.low.swap(low, Ordering::AcqRel), low) {
            (false, true) => {
                tracing::error!(dir = %dir.display(), free_bytes = free, min_free_bytes = min,
                "free space below log.min_free_mb: appends are refused until space returns")
            }
            (true, false) => {
                tracing::info!(dir = %dir.display(), free_bytes = free, "free space above the watermark again: appends resume")
            }
            _ => {}
        }
    }

    pub(crate) fn low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    pub(crate) fn report(&self) -> DiskSpace {
        DiskSpace {
            free_bytes: self.free.load(Ordering::Relaxed),
            min_free_bytes: self.min.load(Ordering::Relaxed),
            low: self.low(),
        }
    }
}
