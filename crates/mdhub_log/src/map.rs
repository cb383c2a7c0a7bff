//! The active segment's write map: a shared, writable memory map of the
//! segment file, so the group commit copies bytes into the page cache instead
//! of calling `pwrite`.
//!
//! Why: on a virtual machine that sits idle between events, a `pwrite` of one
//! 200-byte record costs 1–3 µs at the median and over 10 µs at p99 (system
//! call, inode lock, timestamp update, a new page now and then), while a copy
//! into a mapped page that is ready costs tens of nanoseconds. The bytes land
//! in the same page cache either way, so what survives a crash of the
//! process (everything written) and what survives power loss (everything
//! fsynced) does not change. Readers keep using `pread`: the page cache is
//! one, so they see the copied bytes.
//!
//! A page is ready when the file has blocks for it, the kernel has a page
//! for it, and the page has been written once: on a virtual machine the
//! first write to a page of guest memory can cost the host 100–200 µs, which
//! no kernel-level prefault avoids. So the log's background thread prepares
//! the region just past the writer ([`WriteMap::prepare`]): it grows the
//! file with `fallocate`, writes a zero into each new page (they are zero
//! already) and only then lets the writer use them.
//!
//! Contract of a [`WriteMap`]:
//! - The writer copies only below [`WriteMap::allocated`]; the file is never
//!   shorter than that while mapped (only the owner shortens it, after
//!   dropping the map). So no access faults with `SIGBUS`.
//! - Bytes at or past `allocated` belong to whoever holds the growth lock:
//!   the writer, which writes them with `pwrite` when it outruns the
//!   prepared region (a burst bigger than the window; the file grows as it
//!   did before the map) and raises `allocated` to their end, or `prepare`,
//!   which writes its zeros there before raising `allocated`. The writer and
//!   `prepare` never touch the same byte.
//! - Blocks come from `fallocate` before the map uses a page: a full disk is
//!   an error from `pwrite` or `fallocate`, never a `SIGBUS` on a page fault.
//! - A file that ends in preallocated zeros is normal after a crash:
//!   recovery cuts the zero tail as it cuts a torn record.
//! - Cost: a prepared page is written back once as zeros before it is
//!   written back with records, so the disk sees up to twice the log's bytes.
//! - Pages the writer has passed are unmapped again
//!   ([`WriteMap::release_below`]), so a segment's pages do not stay in the
//!   process's resident set; the page cache keeps them.
// The one module of the crate with `unsafe`: mmap/munmap/madvise/fallocate
// through libc, and writes into the mapping. Each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Smallest region kept prepared past the writer.
pub(crate) const MIN_PREPARED: u64 = 64 << 10;
/// Largest region prepared in one pass.
pub(crate) const MAX_PREPARED: u64 = 4 << 20;

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

fn fallocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    // SAFETY: plain system call on a borrowed, open fd.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, from as i64, (to - from) as i64) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A writable `MAP_SHARED` mapping of the first `len` bytes of a segment file.
#[derive(Debug)]
pub(crate) struct WriteMap {
    ptr: NonNull<u8>,
    len: usize,
    /// The writer may copy below this; the file is at least this long.
    allocated: AtomicU64,
    /// Held while the file grows past `allocated` (and its new pages are
    /// prepared), by the writer or by `prepare`.
    grow: Mutex<()>,
    /// Pages below this were unmapped from the process by `release_below`.
    released: AtomicU64,
    page: u64,
}

// SAFETY: the map is a region of shared memory with no thread affinity. The
// partition's writer mutex serializes `write`; `prepare` (from another
// thread) writes only at or past `allocated`, under the growth lock, before
// raising `allocated` (see the module's contract).
unsafe impl Send for WriteMap {}
// SAFETY: as above.
unsafe impl Sync for WriteMap {}

impl WriteMap {
    /// Maps `len` bytes (rounded up to whole pages) of `file`, whose current
    /// length is `file_len`. The mapping may run past the end of the file;
    /// the file grows before those pages are used.
    pub(crate) fn new(file: &File, len: u64, file_len: u64) -> io::Result<WriteMap> {
        let page = page_size();
        let len = len.max(1).div_ceil(page) * page;
        let len = usize::try_from(len).map_err(|_| io::Error::other("map too large"))?;
        // SAFETY: a fresh mapping at an address the kernel picks; no existing
        // memory is affected. The fd stays open for the call (borrowed).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(WriteMap {
            ptr,
            len,
            allocated: AtomicU64::new(file_len),
            grow: Mutex::new(()),
            released: AtomicU64::new(0),
            page,
        })
    }

    /// The file's length as far as this map knows (written bytes plus the
    /// preallocated zero tail).
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Acquire)
    }

    /// Writes `bytes` at file position `pos`: a copy into the map where the
    /// region is allocated (prepared), else a `pwrite` under the growth lock,
    /// which extends the file and then `allocated` to the bytes' end. The
    /// writer never takes page faults on fresh pages in the map: past the
    /// prepared region it writes as before the map existed. On error the file
    /// may hold part of the bytes (the caller cuts it back).
    ///
    /// The caller serializes calls (the partition's writer mutex) and never
    /// writes below what readers may already read.
    pub(crate) fn write(&self, file: &File, pos: u64, bytes: &[u8]) -> io::Result<()> {
        let end = pos + bytes.len() as u64;
        if end <= self.allocated().min(self.len as u64) {
            // SAFETY: `[pos, end)` lies inside the mapping and below
            // `allocated`, so inside the file: no access faults with SIGBUS,
            // and `prepare` never writes there. The source is a Rust slice,
            // which cannot overlap the mapping: the map's memory is only
            // reached through this pointer.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.ptr.as_ptr().add(pos as usize),
                    bytes.len(),
                );
            }
            return Ok(());
        }
        let _g = self.grow.lock();
        file.write_all_at(bytes, pos)?;
        // The file now reaches `end`; `prepare` starts past it.
        self.allocated
            .fetch_max(end.min(self.len as u64), Ordering::AcqRel);
        Ok(())
    }

    /// Makes `[pos, pos + window)` ready for the writer (see the module
    /// docs): grows the file over the part past `allocated`, writes a zero
    /// into each of its new pages, then raises `allocated`; finally asks the
    /// kernel to make the whole range writable again (`MADV_POPULATE_WRITE`:
    /// an fsync leaves written-back pages read-only). Changes no byte's value.
    pub(crate) fn prepare(&self, file: &File, pos: u64, window: u64) -> io::Result<()> {
        let want = pos.saturating_add(window).min(self.len as u64);
        {
            let _g = self.grow.lock();
            let have = self.allocated();
            if want > have {
                let want = want
                    .div_ceil(self.page)
                    .saturating_mul(self.page)
                    .min(self.len as u64);
                fallocate(file, have, want)?;
                let mut at = have.div_ceil(self.page) * self.page;
                while at < want {
                    // SAFETY: `at` lies in `[have, want)`: inside the mapping
                    // and, after the fallocate, inside the file. The writer
                    // copies only below `allocated` (= `have` until the store
                    // below) and grows only under the lock held here, so
                    // nothing else accesses these bytes now. They read as
                    // zero (fresh blocks), so writing zero changes nothing.
                    unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(at as usize), 0) };
                    at += self.page;
                }
                self.allocated.store(want, Ordering::Release);
            }
        }
        let start = pos / self.page * self.page;
        let end = want.min(self.allocated());
        if end <= start {
            return Ok(());
        }
        let end = (end.div_ceil(self.page) * self.page).min(self.len as u64);
        // MADV_POPULATE_WRITE faults pages in writable without modifying them
        // (Linux 5.14+; older kernels answer EINVAL, which the caller treats
        // as "not prepared"). Pages past the end of the file give EFAULT, no
        // signal.
        self.advise(start, end, libc::MADV_POPULATE_WRITE)
    }

    /// `madvise(advice)` over bytes `[start, end)` of the mapping, which the
    /// caller keeps inside it; the advice must not change the file's bytes.
    fn advise(&self, start: u64, end: u64, advice: libc::c_int) -> io::Result<()> {
        debug_assert!(start <= end && end <= self.len as u64);
        // SAFETY: the range lies inside the mapping (checked by the callers,
        // asserted above), and the two advices used (MADV_POPULATE_WRITE,
        // MADV_DONTNEED on a shared file mapping) touch page tables only.
        let r = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(start as usize).cast(),
                (end - start) as usize,
                advice,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drops the process's mappings of the whole pages below `pos`, which
    /// the writer has passed. The page cache keeps them (a shared file
    /// mapping's dirty pages stay dirty there, and fsync still writes them),
    /// readers use `pread`, and the process's resident set no longer grows
    /// with the segment. Changes no byte. Called by the thread that prepares.
    pub(crate) fn release_below(&self, pos: u64) -> io::Result<()> {
        let end = (pos / self.page * self.page).min(self.len as u64);
        let start = self.released.load(Ordering::Acquire);
        if end <= start {
            return Ok(());
        }
        // `[start, end)` lies below the writer's position, which only moves
        // up; MADV_DONTNEED on a shared file mapping drops page-table entries
        // only, and a later access maps the page cache's current contents.
        self.advise(start, end, libc::MADV_DONTNEED)?;
        self.released.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for WriteMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `new` mapped; nothing else holds
        // a pointer into it (the map is only reached through `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn file(dir: &tempfile::TempDir) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("seg.log"))
            .unwrap()
    }

    #[test]
    fn writes_past_the_prepared_region_use_pwrite_then_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let m = WriteMap::new(&f, 1 << 20, 0).unwrap();
        m.write(&f, 0, b"hello").unwrap();
        assert_eq!(m.allocated(), 5, "pwrite extended the file to its end");
        assert_eq!(f.metadata().unwrap().len(), 5);
        m.prepare(&f, 5, MIN_PREPARED).unwrap();
        assert_eq!(f.metadata().unwrap().len(), m.allocated());
        m.write(&f, 5, b" world").unwrap();
        let mut got = [0u8; 11];
        f.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(&got, b"hello world");
        // A burst past the prepared region: pwrite again, nothing lost.
        let far = m.allocated() - 3;
        m.write(&f, far, b"abcdef").unwrap();
        assert_eq!(m.allocated(), far + 6);
        let mut got = [0u8; 6];
        f.read_exact_at(&mut got, far).unwrap();
        assert_eq!(&got, b"abcdef");
    }

    #[test]
    fn prepare_grows_the_file_and_changes_no_byte() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let m = WriteMap::new(&f, 1 << 20, 0).unwrap();
        m.write(&f, 0, &[9u8; 5000]).unwrap();
        m.prepare(&f, 5000, 128 << 10).unwrap();
        assert_eq!(m.allocated(), (128 << 10) + 8192, "page-rounded end");
        assert_eq!(f.metadata().unwrap().len(), m.allocated());
        let mut all = vec![1u8; m.allocated() as usize];
        f.read_exact_at(&mut all, 0).unwrap();
        assert!(all[..5000].iter().all(|&b| b == 9), "records intact");
        assert!(all[5000..].iter().all(|&b| b == 0), "prepared pages zero");
        // Writes into the prepared region do not grow the file.
        m.write(&f, 5000, b"next").unwrap();
        assert_eq!(m.allocated(), (128 << 10) + 8192);
        // Preparing what is prepared grows nothing.
        m.prepare(&f, 0, MIN_PREPARED).unwrap();
        assert_eq!(m.allocated(), (128 << 10) + 8192);
    }

    #[test]
    fn released_pages_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let m = WriteMap::new(&f, 1 << 20, 0).unwrap();
        m.prepare(&f, 0, MIN_PREPARED).unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
        m.write(&f, 0, &data).unwrap();
        m.release_below(20_000).unwrap();
        m.release_below(10_000).unwrap(); // already released: nothing to do
        m.write(&f, 20_000, b"after").unwrap();
        let mut got = vec![0u8; 20_005];
        f.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(&got[..20_000], &data[..]);
        assert_eq!(&got[20_000..], b"after");
        f.sync_data().unwrap();
    }

    #[test]
    fn bytes_past_the_mapping_are_written_with_pwrite() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let m = WriteMap::new(&f, 4096, 0).unwrap();
        m.prepare(&f, 0, 1 << 30).unwrap();
        assert_eq!(
            f.metadata().unwrap().len(),
            4096,
            "prepare clipped to the map"
        );
        m.write(&f, 4090, b"0123456789").unwrap();
        assert_eq!(m.allocated(), 4096);
        let mut got = [0u8; 10];
        f.read_exact_at(&mut got, 4090).unwrap();
        assert_eq!(&got, b"0123456789");
    }
}
