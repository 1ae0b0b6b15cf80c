//! Background upkeep of the database while serving: the integrity check after start,
//! passive WAL checkpoints, and periodic backups.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CreateBackup, Engine, Result};

/// The integrity check waits this long after start, so that it never competes with the
/// client's first calls.
const INTEGRITY_DELAY: Duration = Duration::from_secs(1);
/// A WAL larger than this is truncated once a checkpoint has copied all of it, so that one
/// burst of writes (or a long reader that held checkpoints back) does not keep its size.
const WAL_SHRINK_BYTES: u64 = 4 << 20;

impl Engine {
    /// Runs `integrity_check` over the whole file once, off the `initialize` path; damage it
    /// finds makes the store refuse writes and shows in `health`.
    pub async fn check_integrity_in_background(self, cancel: CancellationToken) {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(INTEGRITY_DELAY) => {}
        }
        // Raced against `cancel`: the check runs on a connection of its own, so shutdown need
        // not wait for a check of a large file.
        let checked = tokio::select! {
            () = cancel.cancelled() => return,
            checked = self.store().check_integrity() => checked,
        };
        match checked {
            Ok(check) if check.result == "ok" => {
                tracing::debug!(duration_ms = check.duration_ms, "integrity check passed");
            }
            Ok(check) => tracing::error!(result = %check.result, "integrity check failed"),
            Err(error) => tracing::warn!(%error, "integrity check could not run"),
        }
    }

    /// Runs `integrity_check` now (for `context-store health`); damage it finds is recorded.
    pub async fn check_integrity_now(&self) -> Result<()> {
        self.store().check_integrity().await?;
        Ok(())
    }

    /// True when the database file is damaged and writes are refused.
    pub fn database_damaged(&self) -> bool {
        self.store().damage().is_some()
    }

    /// Checkpoints the WAL every `interval` without waiting for anyone, and truncates it
    /// when it has grown past [`WAL_SHRINK_BYTES`] and the checkpoint copied all of it.
    pub async fn checkpoint_periodically(self, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if self.database_damaged() {
                continue;
            }
            let checkpoint = match self.store().checkpoint().await {
                Ok(checkpoint) => checkpoint,
                Err(error) => {
                    tracing::debug!(%error, "WAL checkpoint failed");
                    continue;
                }
            };
            tracing::debug!(?checkpoint, "WAL checkpointed");
            let complete =
                !checkpoint.busy && checkpoint.checkpointed_frames == checkpoint.wal_frames;
            let (_, wal_bytes) = self.store().file_sizes();
            if complete && wal_bytes > WAL_SHRINK_BYTES {
                match self.store().truncate_wal().await {
                    Ok(done) => tracing::info!(wal_bytes, busy = done.busy, "WAL truncated"),
                    Err(error) => tracing::debug!(%error, "WAL truncation failed"),
                }
            }
        }
    }

    /// Writes a backup every `interval` until `cancel` fires.
    pub async fn back_up_periodically(self, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match Box::pin(self.create_backup(CreateBackup::default())).await {
                Ok(created) => tracing::info!(path = %created.path, "periodic backup written"),
                Err(error) => tracing::error!(
                    error = %crate::error_chain(&error),
                    "periodic backup failed; the previous backups are unchanged"
                ),
            }
        }
    }
}
