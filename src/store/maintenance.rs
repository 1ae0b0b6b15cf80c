//! SQL that keeps the file in shape: WAL checkpoints, the integrity check, and pruning the
//! change logs that processes follow.

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

/// Rows deleted from the change logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrunedLogs {
    pub message_changes: u64,
    pub vector_removals: u64,
}

/// Deletes all but the last `keep` positions (at least one) of each change log and raises
/// its floor, in one transaction: a follower reads a log and its floor in one snapshot, so
/// it either sees the rows it needs or a floor above its position (and then loads
/// everything).
pub async fn prune_change_logs(pool: &SqlitePool, keep: i64) -> Result<PrunedLogs> {
    // The last row of `message_changes` stays: its seq is the log's position.
    let keep = keep.max(1);
    let mut tx = pool.begin().await?;
    let last_change: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_changes")
        .fetch_one(&mut *tx)
        .await?;
    let last_version: i64 = sqlx::query_scalar("SELECT version FROM vector_state WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let (change_floor, version_floor) = (last_change - keep, last_version - keep);
    let message_changes = sqlx::query("DELETE FROM message_changes WHERE seq <= ?")
        .bind(change_floor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut vector_removals = 0;
    for sql in [
        "DELETE FROM vector_removals WHERE version <= ?",
        "DELETE FROM message_vector_removals WHERE version <= ?",
    ] {
        vector_removals += sqlx::query(sql)
            .bind(version_floor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    for (log, floor) in [("messages", change_floor), ("vectors", version_floor)] {
        sqlx::query("UPDATE change_log_floors SET floor = MAX(floor, ?) WHERE log = ?")
            .bind(floor)
            .bind(log)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(PrunedLogs {
        message_changes,
        vector_removals,
    })
}

/// The last position pruned from `log` (`messages` or `vectors`), read in the caller's
/// snapshot.
pub(super) async fn log_floor(
    connection: &mut sqlx::SqliteConnection,
    log: &'static str,
) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT floor FROM change_log_floors WHERE log = ?")
            .bind(log)
            .fetch_one(connection)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{passages, recall};

    fn rowids(changes: &recall::WordChanges) -> Vec<i64> {
        let mut ids: Vec<i64> = changes.messages.iter().map(|(rowid, _)| *rowid).collect();
        ids.sort();
        ids
    }

    /// A follower the pruning left behind loads everything again, without what was deleted
    /// meanwhile; one within the kept positions still gets only the changes.
    #[tokio::test]
    async fn pruning_sends_a_follower_left_behind_back_to_a_full_load() {
        let (_dir, store) = crate::store::testing::store_with(
            "INSERT INTO conversations (id, user_id, created_at, updated_at) \
               VALUES ('c1', 'ann', 0, 0); \
             INSERT INTO messages (rowid, conversation_id, id, seq, role, content, created_at) \
               VALUES (1, 'c1', 'm1', 1, 'user', 'one', 0), (2, 'c1', 'm2', 2, 'user', 'two', 0); \
             INSERT INTO documents (id, workspace, path, size, modified_ms, file_type, indexed_at) \
               VALUES (1, '/ws', 'a.py', 1, 0, 'py', 0); \
             INSERT INTO passages (id, document_id, ordinal, start_line, end_line, text) \
               VALUES (1, 1, 0, 1, 1, 'a'), (2, 1, 1, 2, 2, 'b');",
        )
        .await;
        let pool = &store.pool;
        let behind = recall::word_changes(pool, None).await.unwrap();
        let vectors: Vec<(i64, Vec<f32>)> = vec![(1, vec![1.0, 0.0]), (2, vec![0.0, 1.0])];
        passages::store_vectors(pool, "m", &vectors).await.unwrap();
        recall::store_vectors(pool, "m", &vectors).await.unwrap();
        let vectors_behind = passages::vector_changes(pool, "m", 2).await.unwrap();
        // Then: a message and a passage (with their vectors) deleted, one message added.
        sqlx::raw_sql(
            "DELETE FROM messages WHERE rowid = 1; DELETE FROM passages WHERE id = 1; \
             INSERT INTO messages (rowid, conversation_id, id, seq, role, content, created_at) \
               VALUES (3, 'c1', 'm3', 3, 'user', 'three', 0);",
        )
        .execute(pool)
        .await
        .unwrap();
        let recent = recall::word_changes(pool, Some(behind.seq + 1))
            .await
            .unwrap();

        let pruned = prune_change_logs(pool, 1).await.unwrap();
        assert_eq!(pruned.message_changes as i64, behind.seq + 1);
        // The message's removal (version 5) goes; the passage's (6) is the position kept.
        assert_eq!(pruned.vector_removals, 1);

        let words = recall::word_changes(pool, Some(behind.seq)).await.unwrap();
        assert!(words.full);
        assert_eq!(rowids(&words), [2, 3]);
        let words = recall::word_changes(pool, Some(recent.seq - 1))
            .await
            .unwrap();
        assert!(!words.full, "a follower within the kept positions");
        assert_eq!(rowids(&words), [3]);

        let vectors = passages::vector_changes(pool, "m", vectors_behind.version)
            .await
            .unwrap();
        assert!(vectors.full);
        assert!(vectors.removed.is_empty() && vectors.messages_removed.is_empty());
        let ids = |added: &[(i64, i64, Vec<f32>)]| -> Vec<i64> {
            added.iter().map(|(id, _, _)| *id).collect()
        };
        assert_eq!(ids(&vectors.added), [2]);
        assert_eq!(ids(&vectors.messages_added), [2]);
        // Pruning again with nothing new deletes nothing and lowers no floor.
        assert_eq!(
            prune_change_logs(pool, 1).await.unwrap(),
            PrunedLogs::default()
        );
        assert_eq!(
            prune_change_logs(pool, 100).await.unwrap(),
            PrunedLogs::default()
        );
        let words = recall::word_changes(pool, Some(behind.seq)).await.unwrap();
        assert!(words.full, "the floor never goes down");
    }
}
