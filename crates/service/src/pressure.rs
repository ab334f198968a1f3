//! How many appends are in flight, so that background work (a subscription catching up from
//! far behind) can step aside while the write path is busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Writes {
    in_flight: AtomicUsize,
    quiet: Mutex<()>,
    became_quiet: Condvar,
}

/// Held while an append is in flight.
pub struct Busy<'a>(&'a Writes);

impl Writes {
    pub fn enter(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Blocks this thread until no append is in flight, or for `at_most`; returns whether it
    /// was quiet. For background threads only: never call it from an async task.
    pub fn wait_quiet(&self, at_most: Duration) -> bool {
        if self.in_flight() == 0 {
            return true;
        }
        let until = Instant::now() + at_most;
        let mut guard = self.quiet.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.in_flight() == 0 {
                return true;
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = self
                .became_quiet
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taken so that a waiter between its check and its wait is not missed.
            let _guard = self.0.quiet.lock().unwrap_or_else(|p| p.into_inner());
            self.0.became_quiet.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn quiet_at_once_without_appends_and_when_the_last_one_ends() {
        let writes = Arc::new(Writes::default());
        // Given no append in flight, when a background thread waits, then it goes on at once.
        assert!(writes.wait_quiet(Duration::ZERO));
        // Given one in flight, when nothing ends it, then the wait gives up after its limit.
        let busy = writes.enter();
        assert!(!writes.wait_quiet(Duration::from_millis(5)));
        // When it ends while a thread waits, then that thread is woken and told it is quiet.
        let waiter = {
            let writes = writes.clone();
            std::thread::spawn(move || writes.wait_quiet(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(busy);
        assert!(waiter.join().unwrap());
        assert_eq!(writes.in_flight(), 0);
    }
}
