//! Background upkeep of the database while serving: the integrity check after start,
//! passive WAL checkpoints, pruning the change logs, and periodic backups.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CreateBackup, Engine, Result};

/// The integrity check waits this long after start, so that it never competes with the
/// client's first calls.
const INTEGRITY_DELAY: Duration = Duration::from_secs(1);
/// A WAL larger than this is truncated once a checkpoint has copied all of it, so that one
/// burst of writes (or a long reader that held checkpoints back) does not keep its size.
const WAL_SHRINK_BYTES: u64 = 4 << 20;
/// How often the change logs are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// Positions each change log keeps: a process that fell further behind (one that saw none
/// of the last 100,000 messages saved or vectors stored) loads everything again.
const PRUNE_KEEP: i64 = 100_000;

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

    /// True when writes are refused: the database file is damaged, or the path no longer
    /// names the file this process opened.
    pub fn database_damaged(&self) -> bool {
        self.store().damage().is_some() || self.store().detached().is_some()
    }

    /// Sleeps `interval`, then on until the database takes writes (a damaged one refuses
    /// them); false once `cancel` fires. The tick of the background tasks that write.
    pub(super) async fn next_writable_tick(
        &self,
        interval: Duration,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(interval) => {}
            }
            if !self.database_damaged() {
                return true;
            }
        }
    }

    /// Checkpoints the WAL every `interval` without waiting for anyone, and truncates it
    /// when it has grown past [`WAL_SHRINK_BYTES`] and the checkpoint copied all of it.
    pub async fn checkpoint_periodically(self, interval: Duration, cancel: CancellationToken) {
        while self.next_writable_tick(interval, &cancel).await {
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

    /// Prunes the change logs that processes follow (`message_changes` and the vector
    /// removal logs) every ten minutes, so that they do not grow with every message ever
    /// saved.
    pub async fn prune_change_logs_periodically(self, cancel: CancellationToken) {
        while self.next_writable_tick(PRUNE_INTERVAL, &cancel).await {
            match self.store().prune_change_logs(PRUNE_KEEP).await {
                Ok(pruned) => tracing::debug!(?pruned, "change logs pruned"),
                Err(error) => tracing::debug!(%error, "pruning the change logs failed"),
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
