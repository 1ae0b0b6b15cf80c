//! Connections SQLite opened read-only because the data directory was not writable then.
//!
//! SQLite falls back to a read-only open when the file cannot be opened for writing, and the
//! pool would keep such a connection for good: every write that later lands on it fails, long
//! after the directory is writable again. Each new connection is checked once; while any
//! read-only one may be in the pool, idle connections are checked before reuse and the
//! read-only ones are dropped, so a new, writable one takes their place.

use std::{
    ffi::{c_char, c_int, c_void},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use sqlx::sqlite::SqliteConnection;

unsafe extern "C" {
    /// SQLite's own: 1 when the named database of the connection is read-only, 0 when it is
    /// writable, -1 when there is no such database. Linked in with sqlx's bundled SQLite.
    fn sqlite3_db_readonly(db: *mut c_void, name: *const c_char) -> c_int;
}

/// How many read-only connections may still be in the pool; shared by its callbacks.
#[derive(Debug, Clone, Default)]
pub(super) struct ReadOnlyConnections {
    count: Arc<AtomicUsize>,
}

impl ReadOnlyConnections {
    /// Counts a new connection that SQLite opened read-only; it stays usable for reads.
    pub async fn note_new(&self, connection: &mut SqliteConnection) -> sqlx::Result<()> {
        if opened_read_only(connection).await? {
            tracing::warn!("the database was opened read-only: the data directory is not writable");
            self.count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// False for an idle connection to drop because it is read-only. Costs a round trip to
    /// the connection's thread only while read-only connections may be pooled.
    pub async fn keeps(&self, connection: &mut SqliteConnection) -> sqlx::Result<bool> {
        if self.count.load(Ordering::SeqCst) == 0 || !opened_read_only(connection).await? {
            return Ok(true);
        }
        // Saturating: a read-only connection closed by the pool for its age is never seen.
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        tracing::debug!("dropping a connection opened while the data directory was read-only");
        Ok(false)
    }
}

async fn opened_read_only(connection: &mut SqliteConnection) -> sqlx::Result<bool> {
    let mut handle = connection.lock_handle().await?;
    let database = handle.as_raw_handle().as_ptr().cast::<c_void>();
    // SAFETY: the handle is locked for this thread while `handle` lives, and the name is a
    // NUL-terminated constant.
    let read_only = unsafe { sqlite3_db_readonly(database, c"main".as_ptr()) };
    Ok(read_only == 1)
}
