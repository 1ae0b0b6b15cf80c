//! SQL that keeps the file in shape: WAL checkpoints and the integrity check.

use std::path::Path;

use sqlx::{AssertSqlSafe, Connection, SqlitePool};

use super::{condition::Checkpoint, error::Result};

/// How long a truncating checkpoint waits for other processes' readers and writers: it runs
/// at shutdown, which must not hang on a busy neighbour.
const TRUNCATE_WAIT_MS: u32 = 300;

/// `PRAGMA wal_checkpoint(mode)` for mode `PASSIVE` or `TRUNCATE` (only these constants).
pub async fn checkpoint(pool: &SqlitePool, mode: &'static str) -> Result<Checkpoint> {
    debug_assert!(matches!(mode, "PASSIVE" | "TRUNCATE"));
    let mut connection = pool.acquire().await?;
    if mode == "TRUNCATE" {
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}"
        )))
        .execute(&mut *connection)
        .await?;
    }
    let (busy, wal_frames, checkpointed_frames): (i64, i64, i64) =
        sqlx::query_as(AssertSqlSafe(format!("PRAGMA wal_checkpoint({mode})")))
            .fetch_one(&mut *connection)
            .await?;
    if mode == "TRUNCATE" {
        // The connection goes back to the pool; give it back its usual patience.
        let usual = super::open::BUSY_TIMEOUT_MS;
        sqlx::query(AssertSqlSafe(format!("PRAGMA busy_timeout = {usual}")))
            .execute(&mut *connection)
            .await?;
    }
    Ok(Checkpoint {
        at: chrono::Utc::now(),
        mode: mode.to_owned(),
        wal_frames,
        checkpointed_frames,
        busy: busy != 0,
    })
}

/// `PRAGMA integrity_check` on a connection of its own, outside the pool: the check of a
/// large file takes long, and a caller that stops waiting (shutdown) leaves the pool whole.
pub async fn integrity(path: &Path) -> Result<String> {
    let mut connection = super::backup::open_read_only(path).await?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
        .fetch_all(&mut connection)
        .await?;
    connection.close().await?;
    Ok(problems.join("; "))
}
