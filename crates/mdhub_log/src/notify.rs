//! A global "something was flushed" counter with a condition variable, so
//! tailing readers can block until new data is readable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Bumped after every flush that made records readable.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    seq: AtomicU64,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Notifier {
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Publishes a new sequence number and wakes every waiter.
    pub(crate) fn bump(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        // Taking the lock orders the bump against a waiter's check-then-wait.
        drop(self.lock.lock());
        self.cond.notify_all();
    }

    /// Blocks until the sequence differs from `seen` or `timeout` passes;
    /// returns the current sequence.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock();
        loop {
            let now = self.seq();
            if now != seen {
                return now;
            }
            if self.cond.wait_until(&mut guard, deadline).timed_out() {
                return self.seq();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wakes_waiter_and_times_out() {
        let n = Arc::new(Notifier::default());
        assert_eq!(n.wait(0, Duration::from_millis(10)), 0);
        let n2 = Arc::clone(&n);
        let t = std::thread::spawn(move || n2.wait(0, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        n.bump();
        assert_eq!(t.join().expect("waiter thread"), 1);
    }
}
