//! Errors of the store, classified by what a caller can do about them.

use std::path::PathBuf;

/// SQLite primary result codes that the store tells apart (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_READONLY: i64 = 8;
const SQLITE_FULL: i64 = 13;
const SQLITE_NOTADB: i64 = 26;

/// What a person does about a damaged database; the damaged file is never touched.
const RECOVERY: &str = "stop the context-store servers and run `context-store restore BACKUP` \
with the newest good backup (`context-store backups` lists them); the damaged file is kept aside";

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process held the write lock past the busy timeout and every retry.
    #[error("the database is busy with another process's writes; retry the call")]
    Busy(#[source] sqlx::Error),
    /// The file is damaged; nothing is repaired or recreated automatically.
    #[error("the database file is damaged ({0}); {RECOVERY}")]
    Corrupt(#[source] sqlx::Error),
    /// Damage was found earlier: writes are refused so that they cannot spread it.
    #[error("the database file is damaged ({detail}), so writes are refused; {RECOVERY}")]
    Damaged { detail: String },
    /// The path no longer names the file the pool has open: a write there would be lost.
    #[error(
        "the database file {path} was deleted, moved or replaced while this server ran \
         ({found}), so writes are refused: they would go to a file nobody opens again; \
         restart the server to open the file at the path"
    )]
    Detached { path: PathBuf, found: String },
    #[error("the disk is full; free space and retry (stored data is intact)")]
    DiskFull(#[source] sqlx::Error),
    /// The connection was opened while the data directory was not writable; it is dropped,
    /// and a retry opens a new one.
    #[error("the data directory is not writable; make it writable and retry")]
    ReadOnly(#[source] sqlx::Error),
    #[error(
        "the database schema is at version {found}, newer than this binary knows (up to {known}); \
         run a newer context-store"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "the SQLite library is version {found}; context-store needs {required} or newer \
         (older versions can corrupt databases written by several processes)"
    )]
    SqliteTooOld { found: String, required: String },
    #[error("cannot prepare the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored value is not valid: {0}")]
    Decode(String),
    #[error("migrating the database failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// True when the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Busy(_) | StoreError::DiskFull(_) | StoreError::ReadOnly(_)
        )
    }

    /// True when writes are refused because the open file is no longer the one at its path.
    pub fn is_detached(&self) -> bool {
        matches!(self, StoreError::Detached { .. })
    }

    /// True when the database file is damaged (now or earlier).
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Corrupt(_) | StoreError::Damaged { .. })
    }

    /// This error, or the SQLite error inside a failed migration, as a damage report.
    pub(super) fn into_damage(self) -> std::result::Result<Self, Self> {
        match self {
            StoreError::Migrate(
                sqlx::migrate::MigrateError::Execute(error)
                | sqlx::migrate::MigrateError::ExecuteMigration(error, _),
            ) if matches!(primary_code(&error), Some(SQLITE_CORRUPT | SQLITE_NOTADB)) => {
                Ok(StoreError::Corrupt(error))
            }
            StoreError::Corrupt(_) => Ok(self),
            other => Err(other),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match primary_code(&error) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Busy(error),
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Corrupt(error),
            Some(SQLITE_FULL) => StoreError::DiskFull(error),
            Some(SQLITE_READONLY) => StoreError::ReadOnly(error),
            _ => StoreError::Database(error),
        }
    }
}

/// The primary SQLite result code behind a sqlx error, if it came from SQLite.
fn primary_code(error: &sqlx::Error) -> Option<i64> {
    let database_error = error.as_database_error()?;
    let extended: i64 = database_error.code()?.parse().ok()?;
    Some(extended & 0xff)
}
