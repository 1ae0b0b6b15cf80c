//! SQL for finding messages again: the changes the word index follows, vectors, and the
//! latest of a session. Messages are keyed here by their rowid, which the word index and
//! vectors share.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{
    error::{Result, StoreError},
    passages::decode,
};
use crate::model::Role;

/// A message with the conversation it belongs to.
#[derive(Debug, Clone)]
pub struct FoundMessage {
    pub rowid: i64,
    pub conversation_id: String,
    pub message_id: String,
    pub seq: i64,
    pub role: Role,
    pub content: String,
    /// Epoch milliseconds.
    pub created_at: i64,
}

type FoundRow = (i64, String, String, i64, String, String, i64);

macro_rules! found_columns {
    () => {
        "SELECT m.rowid, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at "
    };
}

/// What changed in the messages since a position in `message_changes`.
#[derive(Debug, Default)]
pub struct WordChanges {
    /// The log's last position these changes reach.
    pub seq: i64,
    /// Every message, not only changed ones: the follower had no position, or the log was
    /// pruned past it. The follower starts again from these.
    pub full: bool,
    /// Each changed message: (rowid, its owner's user id and its content now), None when
    /// it is gone.
    pub messages: Vec<(i64, Option<(String, String)>)>,
}

/// The messages changed after log position `since`, or every message when `since` is None
/// or below the log's floor, read in one snapshot with the log's last position.
pub async fn word_changes(pool: &SqlitePool, since: Option<i64>) -> Result<WordChanges> {
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_changes")
        .fetch_one(&mut *tx)
        .await?;
    let floor = super::maintenance::log_floor(&mut tx, "messages").await?;
    let since = since.filter(|&since| since >= floor);
    let rows: Vec<(i64, Option<String>, Option<String>)> = match since {
        Some(since) if since == seq => Vec::new(),
        Some(since) => {
            sqlx::query_as(
                "SELECT l.message_rowid, c.user_id, m.content \
                 FROM (SELECT DISTINCT message_rowid FROM message_changes WHERE seq > ?) l \
                 LEFT JOIN messages m ON m.rowid = l.message_rowid \
                 LEFT JOIN conversations c ON c.id = m.conversation_id",
            )
            .bind(since)
            .fetch_all(&mut *tx)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT m.rowid, c.user_id, m.content FROM messages m \
                 JOIN conversations c ON c.id = m.conversation_id",
            )
            .fetch_all(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    let messages = rows
        .into_iter()
        .map(|(rowid, user, content)| (rowid, user.zip(content)))
        .collect();
    Ok(WordChanges {
        seq,
        full: since.is_none(),
        messages,
    })
}

/// Row ids of the user's conversations: the "documents" message vectors are filtered by.
pub async fn conversation_keys(pool: &SqlitePool, user_id: &str) -> Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT rowid FROM conversations WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(pool)
            .await?,
    )
}

/// Time of the user's last save, epoch milliseconds: where recency is measured from.
pub async fn last_update(pool: &SqlitePool, user_id: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MAX(updated_at) FROM conversations WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await?,
    )
}

/// Messages by rowid, in no particular order.
pub async fn by_rowids(pool: &SqlitePool, rowids: &[i64]) -> Result<Vec<FoundMessage>> {
    if rowids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Sqlite>::new(concat!(
        found_columns!(),
        "FROM messages m WHERE m.rowid IN"
    ));
    super::push_list(&mut query, rowids);
    let rows: Vec<FoundRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(found_from_row).collect()
}

/// The last `limit` messages saved in a user's session, oldest first: from its most
/// recently updated conversations, each read backwards from its last message (index walks,
/// no sort of the whole session).
pub async fn session_latest(
    pool: &SqlitePool,
    user_id: &str,
    session_id: &str,
    limit: u32,
) -> Result<Vec<FoundMessage>> {
    let rows: Vec<FoundRow> = sqlx::query_as(concat!(
        found_columns!(),
        "FROM (SELECT id, updated_at FROM conversations \
               WHERE user_id = ?1 AND session_id = ?2 \
               ORDER BY updated_at DESC, id DESC LIMIT ?3) c \
         CROSS JOIN messages m ON m.conversation_id = c.id \
         ORDER BY c.updated_at DESC, c.id DESC, m.seq DESC LIMIT ?3"
    ))
    .bind(user_id)
    .bind(session_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut found = rows
        .into_iter()
        .map(found_from_row)
        .collect::<Result<Vec<_>>>()?;
    found.reverse();
    Ok(found)
}

/// Claims up to `limit` messages without a vector for `lease_ms`: (rowid, content).
pub async fn claim_unembedded(
    pool: &SqlitePool,
    limit: u32,
    now: i64,
    lease_ms: i64,
) -> Result<Vec<(i64, String)>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT rowid, content FROM messages WHERE vector IS NULL AND claimed_until < ? LIMIT ?",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for (rowid, _) in &rows {
        sqlx::query("UPDATE messages SET claimed_until = ? WHERE rowid = ?")
            .bind(now + lease_ms)
            .bind(rowid)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// Stores message vectors made by `embedder`; messages deleted meanwhile are skipped.
/// Returns the users whose messages changed.
pub async fn store_vectors(
    pool: &SqlitePool,
    embedder: &str,
    vectors: &[(i64, Vec<f32>)],
) -> Result<Vec<String>> {
    super::passages::store_vectors_with(
        pool,
        "UPDATE messages SET vector = ?, embedder = ?, claimed_until = 0 WHERE rowid = ? \
         RETURNING (SELECT user_id FROM conversations c WHERE c.id = messages.conversation_id)",
        embedder,
        vectors,
    )
    .await
}

/// Message vectors written after `since` by `embedder` and removals after it, inside the
/// caller's snapshot: (rowid, conversation rowid, vector) and removed rowids.
pub(super) async fn vector_changes(
    conn: &mut sqlx::SqliteConnection,
    embedder: &str,
    since: i64,
) -> Result<(Vec<(i64, i64, Vec<f32>)>, Vec<i64>)> {
    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT m.rowid, c.rowid, m.vector FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.version > ? AND m.vector IS NOT NULL AND m.embedder = ?",
    )
    .bind(since)
    .bind(embedder)
    .fetch_all(&mut *conn)
    .await?;
    let removed = if since == 0 {
        Vec::new()
    } else {
        sqlx::query_scalar("SELECT message_rowid FROM message_vector_removals WHERE version > ?")
            .bind(since)
            .fetch_all(&mut *conn)
            .await?
    };
    let added = rows
        .into_iter()
        .map(|(rowid, conversation, bytes)| (rowid, conversation, decode(&bytes)))
        .collect();
    Ok((added, removed))
}

/// Clears message vectors of any model but `embedder`; how many.
pub(super) async fn clear_other_models(pool: &SqlitePool, embedder: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE messages SET vector = NULL, embedder = NULL, claimed_until = 0 \
         WHERE embedder IS NOT NULL AND embedder != ?",
    )
    .bind(embedder)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Messages still waiting for a vector.
pub async fn waiting(pool: &SqlitePool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE vector IS NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// Conversation ids starting with `prefix`, in order, at most `limit`.
pub async fn conversation_ids(pool: &SqlitePool, prefix: &str, limit: u32) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM conversations WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT ?2",
    )
    .bind(prefix)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// One page of every conversation, by id after `after`: (id, user, message count).
pub async fn conversation_listing(
    pool: &SqlitePool,
    after: &str,
    limit: u32,
) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.user_id, \
         (SELECT COALESCE(MAX(seq) + 1, 0) FROM messages m WHERE m.conversation_id = c.id) \
         FROM conversations c WHERE c.id > ? ORDER BY c.id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

fn found_from_row(row: FoundRow) -> Result<FoundMessage> {
    let (rowid, conversation_id, message_id, seq, role, content, created_at) = row;
    Ok(FoundMessage {
        rowid,
        conversation_id,
        message_id,
        seq,
        role: role.parse().map_err(StoreError::Decode)?,
        content,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(pool: &SqlitePool, sql: &'static str) {
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
    }

    fn sorted(changes: WordChanges) -> Vec<(i64, Option<(String, String)>)> {
        let mut messages = changes.messages;
        messages.sort();
        messages
    }

    fn message(rowid: i64, user: &str, text: &str) -> (i64, Option<(String, String)>) {
        (rowid, Some((user.into(), text.into())))
    }

    /// The word index's feed: everything at first, then exactly the messages inserted,
    /// edited or deleted (cascades from a conversation included), in their state now.
    #[tokio::test]
    async fn word_changes_follow_inserts_edits_and_deletions() {
        let (_dir, store) = crate::store::testing::store_with(
            "INSERT INTO conversations (id, user_id, created_at, updated_at) \
               VALUES ('c1', 'ann', 0, 0), ('c2', 'bob', 0, 0); \
             INSERT INTO messages (rowid, conversation_id, id, seq, role, content, created_at) \
               VALUES (1, 'c1', 'm1', 1, 'user', 'one', 0), \
                      (2, 'c1', 'm2', 2, 'user', 'two', 0), \
                      (3, 'c2', 'm1', 1, 'user', 'three', 0);",
        )
        .await;
        let pool = &store.pool;
        let all = word_changes(pool, None).await.unwrap();
        let seq = all.seq;
        assert_eq!(
            sorted(all),
            [
                message(1, "ann", "one"),
                message(2, "ann", "two"),
                message(3, "bob", "three")
            ]
        );
        let none = word_changes(pool, Some(seq)).await.unwrap();
        assert_eq!((none.seq, none.messages.len()), (seq, 0));

        run(
            pool,
            "UPDATE messages SET content = 'two, edited' WHERE rowid = 2; \
             DELETE FROM conversations WHERE id = 'c2'; \
             INSERT INTO messages (rowid, conversation_id, id, seq, role, content, created_at) \
               VALUES (4, 'c1', 'm3', 3, 'user', 'four', 0);",
        )
        .await;
        let changed = word_changes(pool, Some(seq)).await.unwrap();
        assert!(changed.seq > seq);
        assert_eq!(
            sorted(changed),
            [
                message(2, "ann", "two, edited"),
                (3, None),
                message(4, "ann", "four")
            ]
        );
    }
}
