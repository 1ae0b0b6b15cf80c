//! A circuit breaker in front of Redis.
//!
//! After a few consecutive failures, requests stop trying Redis at all (no added latency);
//! a background probe tries it after a cool-down that doubles up to a cap, and closes the
//! circuit when Redis answers again.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

/// Consecutive failures that open the circuit.
const FAILURE_THRESHOLD: u32 = 3;
const FIRST_COOL_DOWN: Duration = Duration::from_millis(250);
/// Short enough that L2 comes back "soon" after Redis does.
const MAX_COOL_DOWN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cool_down: Duration },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    /// Whether a request may use Redis now.
    pub fn allows_requests(&self) -> bool {
        matches!(*self.lock(), State::Closed { .. })
    }

    /// When open and the cool-down has passed: the probe should try Redis now.
    pub fn probe_due(&self) -> bool {
        matches!(*self.lock(), State::Open { until, .. } if Instant::now() >= until)
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Counts a failure; returns true if this failure opened (or kept open) the circuit.
    pub fn record_failure(&self) -> bool {
        let mut state = self.lock();
        let next = match *state {
            State::Closed { failures } if failures + 1 < FAILURE_THRESHOLD => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } => open_for(FIRST_COOL_DOWN),
            State::Open { cool_down, .. } => open_for((cool_down * 2).min(MAX_COOL_DOWN)),
        };
        *state = next;
        matches!(next, State::Open { .. })
    }

    /// `closed`, `open` or `half_open` (open with a probe due).
    pub fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { until, .. } if Instant::now() >= until => "half_open",
            State::Open { .. } => "open",
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding this lock; recover the state if one ever did.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn open_for(cool_down: Duration) -> State {
    State::Open {
        until: Instant::now() + cool_down,
        cool_down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_repeated_failures_and_probes_after_the_cool_down() {
        let breaker = Breaker::default();
        assert!(!breaker.record_failure());
        assert!(!breaker.record_failure());
        assert!(breaker.allows_requests());
        assert!(breaker.record_failure());
        assert!(!breaker.allows_requests());
        assert!(!breaker.probe_due());
        tokio::time::advance(FIRST_COOL_DOWN).await;
        assert!(breaker.probe_due());
        assert_eq!(breaker.state_name(), "half_open");
        breaker.record_success();
        assert!(breaker.allows_requests());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_back_off_up_to_the_cap() {
        let breaker = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD {
            breaker.record_failure();
        }
        for _ in 0..10 {
            breaker.record_failure();
        }
        tokio::time::advance(MAX_COOL_DOWN - Duration::from_millis(1)).await;
        assert!(!breaker.probe_due());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.probe_due());
    }
}
