//! Tool calls come first: background embedding starts a batch only after a quiet moment
//! with no call running, or once it has waited long enough.
//!
//! On two cores a batch (up to a second of CPU at nice 19) still slows a call beside it:
//! the query's embedding reads the model's weights from memory the batch is also streaming.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

pub(super) struct Foreground {
    in_flight: AtomicUsize,
    /// When the last call ended, in microseconds since `epoch`.
    last_end_us: AtomicU64,
    epoch: Instant,
    /// Woken when the last call in flight ends.
    idle: Notify,
}

/// Marks a call in flight until dropped.
pub struct ForegroundCall<'a> {
    foreground: &'a Foreground,
}

impl Default for Foreground {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_end_us: AtomicU64::new(0),
            epoch: Instant::now(),
            idle: Notify::new(),
        }
    }
}

impl Foreground {
    pub(super) fn enter(&self) -> ForegroundCall<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ForegroundCall { foreground: self }
    }

    /// Returns once no call has run for `quiet`, or after `patience` at most, so that a
    /// steady stream of calls slows background work down without stopping it.
    pub(super) async fn quiet(&self, quiet: Duration, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            // Registered before the check: a call that ends in between still wakes us.
            let ended = self.idle.notified();
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wake_at = if self.in_flight.load(Ordering::Acquire) > 0 {
                deadline
            } else {
                let quiet_from = self.last_end() + quiet;
                if now >= quiet_from {
                    return;
                }
                quiet_from.min(deadline)
            };
            tokio::select! {
                () = ended => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    fn last_end(&self) -> Instant {
        self.epoch + Duration::from_micros(self.last_end_us.load(Ordering::Acquire))
    }
}

impl Drop for ForegroundCall<'_> {
    fn drop(&mut self) {
        let foreground = self.foreground;
        let ended = foreground.epoch.elapsed().as_micros() as u64;
        foreground.last_end_us.fetch_max(ended, Ordering::AcqRel);
        if foreground.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            foreground.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(30);
    const PATIENCE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn an_idle_server_does_not_wait() {
        let foreground = Foreground::default();
        tokio::time::sleep(QUIET).await;
        let started = Instant::now();
        foreground.quiet(QUIET, PATIENCE).await;
        assert!(started.elapsed() < PATIENCE / 2);
    }

    #[tokio::test]
    async fn background_work_waits_for_calls_to_end_and_a_quiet_moment() {
        let foreground = Foreground::default();
        let call = foreground.enter();
        let started = Instant::now();
        let waiting = async {
            foreground.quiet(QUIET, PATIENCE).await;
            Instant::now()
        };
        let ending = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ending = Instant::now();
            drop(call);
            ending
        };
        let (returned, ending) = tokio::join!(waiting, ending);
        // A millisecond's slack: the end is kept in whole microseconds.
        let after_end = returned.saturating_duration_since(ending);
        assert!(
            after_end + Duration::from_millis(1) >= QUIET,
            "returned {after_end:?} after the end"
        );
        assert!(
            started.elapsed() < PATIENCE / 2,
            "waited {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_steady_stream_of_calls_delays_background_work_by_the_patience_at_most() {
        let foreground = Foreground::default();
        let patience = Duration::from_millis(300);
        let started = Instant::now();
        let calls = async {
            // Calls back to back for longer than the patience.
            while started.elapsed() < patience * 4 {
                let _call = foreground.enter();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let waited = async {
            foreground.quiet(QUIET, patience).await;
            started.elapsed()
        };
        let ((), waited) = tokio::join!(calls, waited);
        assert!(waited >= patience, "waited only {waited:?}");
        assert!(waited < patience * 4, "waited {waited:?}");
    }
}
