//! What this process knows about the state of the database file: damage found (at open, by a
//! query or by the background integrity check), the last checkpoint, the last check.
//!
//! Invariant: once damage is recorded it stays until the process exits. Writes are refused
//! from then on (a write into a damaged b-tree can spread the damage), reads go on.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// Damage found in the database file.
#[derive(Debug, Clone)]
pub struct Damage {
    /// What SQLite said, or the first problems `integrity_check` listed.
    pub detail: String,
    pub found_at: DateTime<Utc>,
}

/// The outcome of one `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    pub at: DateTime<Utc>,
    /// `PASSIVE` or `TRUNCATE`.
    pub mode: String,
    /// Frames in the WAL, and how many of them are now in the main file.
    pub wal_frames: i64,
    pub checkpointed_frames: i64,
    /// A reader or writer of another connection kept it from finishing.
    pub busy: bool,
}

/// The last `integrity_check` of the live file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IntegrityCheck {
    pub at: DateTime<Utc>,
    /// `ok`, or the first problems found.
    pub result: String,
    pub duration_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct Condition {
    damage: Mutex<Option<Damage>>,
    checkpoint: Mutex<Option<Checkpoint>>,
    integrity: Mutex<Option<IntegrityCheck>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Condition {
    pub fn damaged(detail: String) -> Self {
        let condition = Self::default();
        condition.record_damage(detail);
        condition
    }

    pub fn damage(&self) -> Option<Damage> {
        lock(&self.damage).clone()
    }

    /// Records the first damage found; later findings keep the first, which names the cause.
    pub fn record_damage(&self, detail: String) {
        let mut damage = lock(&self.damage);
        if damage.is_none() {
            tracing::error!(
                %detail,
                "the database file is damaged: writes are refused from now on; restore the \
                 newest good backup with `context-store restore`"
            );
            *damage = Some(Damage {
                detail,
                found_at: Utc::now(),
            });
        }
    }

    /// Records damage when `error` says the file is damaged.
    pub fn observe(&self, error: &StoreError) {
        if let StoreError::Corrupt(cause) = error {
            self.record_damage(cause.to_string());
        }
    }

    /// Fails when damage is recorded: the refusal a write gets.
    pub fn refuse_if_damaged(&self) -> Result<(), StoreError> {
        match self.damage() {
            Some(damage) => Err(StoreError::Damaged {
                detail: damage.detail,
            }),
            None => Ok(()),
        }
    }

    pub fn checkpoint(&self) -> Option<Checkpoint> {
        lock(&self.checkpoint).clone()
    }

    pub fn record_checkpoint(&self, checkpoint: Checkpoint) {
        *lock(&self.checkpoint) = Some(checkpoint);
    }

    pub fn integrity(&self) -> Option<IntegrityCheck> {
        lock(&self.integrity).clone()
    }

    pub fn record_integrity(&self, check: IntegrityCheck) {
        if check.result != "ok" {
            self.record_damage(format!("integrity_check: {}", check.result));
        }
        *lock(&self.integrity) = Some(check);
    }
}
