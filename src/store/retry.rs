//! Bounded retries of work that lost a race for SQLite's write lock.
//!
//! SQLite's busy timeout already waits inside one statement; this covers the cases it
//! cannot (a lock held across the whole timeout, a busy snapshot) with a few backed-off
//! attempts, then gives up with a retryable error rather than hang the caller.

use std::{future::Future, time::Duration};

use super::error::{Result, StoreError};

/// With the 2 s busy timeout of each attempt, a write waits about 8 s for a lock that another
/// process holds throughout, then fails with a retryable error.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Runs `work` until it succeeds, fails with something other than [`StoreError::Busy`],
/// or has been tried [`ATTEMPTS`] times.
pub async fn retry_busy<T, F, Fut>(mut work: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1.. {
        match work().await {
            Err(StoreError::Busy(error)) if attempt < ATTEMPTS => {
                tracing::debug!(attempt, ?backoff, %error, "database busy, retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            outcome => return outcome,
        }
    }
    unreachable!("the loop returns on its last attempt")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn busy() -> StoreError {
        StoreError::Busy(sqlx::Error::PoolTimedOut)
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let outcome: Result<()> = retry_busy(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(busy())
        })
        .await;
        assert!(matches!(outcome, Err(StoreError::Busy(_))));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_success() {
        let calls = AtomicU32::new(0);
        let outcome = retry_busy(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(busy()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
