//! SQL for conversations and their messages.

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::{
    error::{Result, StoreError},
    generations,
};
use crate::model::{ConversationHeader, Message, Metadata, Role, ScopeGeneration, from_millis};

/// A save: the conversation's identity and the messages to append.
#[derive(Debug)]
pub struct NewConversation<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub session_id: Option<&'a str>,
    /// Replaces the stored metadata when present.
    pub metadata: Option<&'a Metadata>,
    pub messages: &'a [NewMessage],
    /// Epoch milliseconds of the save.
    pub now: i64,
    /// Cache scopes whose generation the save bumps, in the same transaction.
    pub invalidates: &'a [String],
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub role: Role,
    pub content: String,
    pub created_at: i64,
    pub metadata: Metadata,
}

/// What a save did.
#[derive(Debug)]
pub enum SaveOutcome {
    Saved {
        stored: u64,
        total: i64,
        generations: Vec<ScopeGeneration>,
    },
    /// The id exists and belongs to someone else; nothing was written.
    OwnedByAnotherUser,
    /// The conversation was saved under another session id; nothing was written.
    OtherSession { stored: String },
}

/// Which conversations a history page reads, newest first.
#[derive(Debug)]
pub struct HistoryQuery<'a> {
    pub user_id: &'a str,
    pub session_id: Option<&'a str>,
    /// Keyset position: only conversations strictly older than (updated_at, id).
    pub before: Option<(i64, &'a str)>,
    pub limit: u32,
}

// Sequence numbers are dense from 0 (messages are never deleted one by one), so the
// message count is MAX(seq) + 1: one index probe instead of a count.
type HeaderRow = (String, String, Option<String>, i64, i64, String, i64);
type MessageRow = (String, i64, String, String, i64, String);

/// The columns of a [`HeaderRow`]; a macro so that queries stay literals (sqlx refuses
/// SQL built at run time).
macro_rules! header_select {
    () => {
        "SELECT c.id, c.user_id, c.session_id, c.created_at, c.updated_at, c.metadata, \
         (SELECT COALESCE(MAX(seq) + 1, 0) FROM messages m WHERE m.conversation_id = c.id) \
         FROM conversations c "
    };
}

/// Appends messages in one `BEGIN IMMEDIATE` transaction: it reads before it writes, and a
/// deferred transaction would fail with SQLITE_BUSY_SNAPSHOT when another process wrote between.
pub async fn save(pool: &SqlitePool, batch: &NewConversation<'_>) -> Result<SaveOutcome> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let outcome = save_in(&mut tx, batch).await?;
    match outcome {
        SaveOutcome::Saved { .. } => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    Ok(outcome)
}

async fn save_in(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &NewConversation<'_>,
) -> Result<SaveOutcome> {
    // The owner, the session and the next message position in one statement: on this
    // machine each statement costs a round trip to sqlx's connection thread.
    let existing: Option<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT user_id, session_id, \
           (SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conversation_id = ?1) \
         FROM conversations WHERE id = ?1",
    )
    .bind(batch.id)
    .fetch_optional(&mut **tx)
    .await?;
    match &existing {
        None => insert_conversation(tx, batch).await?,
        Some((owner, _, _)) if owner != batch.user_id => {
            return Ok(SaveOutcome::OwnedByAnotherUser);
        }
        Some((_, Some(stored), _)) if batch.session_id.is_some_and(|given| given != stored) => {
            return Ok(SaveOutcome::OtherSession {
                stored: stored.clone(),
            });
        }
        Some(_) => {}
    }
    let first_seq = existing.as_ref().map_or(0, |(_, _, next)| *next);
    let fresh = new_messages(tx, batch, existing.is_some()).await?;
    insert_messages(tx, batch.id, first_seq, &fresh).await?;
    let stored = fresh.len() as u64;
    // A retry that adds nothing leaves the conversation, its place in the history and the
    // cache as they were.
    let changed =
        existing.is_none() || stored > 0 || batch.metadata.is_some() || batch.session_id.is_some();
    let generations = if changed {
        if existing.is_some() {
            touch_conversation(tx, batch).await?;
        }
        generations::bump_in(tx, batch.invalidates).await?
    } else {
        Vec::new()
    };
    Ok(SaveOutcome::Saved {
        stored,
        total: first_seq + stored as i64,
        generations,
    })
}

/// Rows bound per multi-row statement (7 parameters each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

/// The batch's messages whose ids the conversation does not hold yet (a retry stores
/// nothing twice), in order. Ids are unique within a batch (the engine validates that).
async fn new_messages<'m>(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &NewConversation<'m>,
    conversation_exists: bool,
) -> Result<Vec<&'m NewMessage>> {
    let mut fresh: Vec<&NewMessage> = batch.messages.iter().collect();
    if !conversation_exists {
        return Ok(fresh);
    }
    let mut stored = std::collections::HashSet::new();
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let mut query =
            sqlx::QueryBuilder::<Sqlite>::new("SELECT id FROM messages WHERE conversation_id = ");
        query.push_bind(batch.id).push(" AND id IN");
        let ids: Vec<&str> = chunk.iter().map(|message| message.id.as_str()).collect();
        super::push_list(&mut query, &ids);
        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        stored.extend(found);
    }
    fresh.retain(|message| !stored.contains(&message.id));
    Ok(fresh)
}

/// Appends `messages` at positions from `first_seq`, several rows per statement.
async fn insert_messages(
    tx: &mut Transaction<'_, Sqlite>,
    conversation_id: &str,
    first_seq: i64,
    messages: &[&NewMessage],
) -> Result<()> {
    for (chunk_index, chunk) in messages.chunks(ROWS_PER_STATEMENT).enumerate() {
        let seq = first_seq + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut query = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (conversation_id, id, seq, role, content, created_at, metadata) ",
        );
        query.push_values(chunk.iter().enumerate(), |mut row, (offset, message)| {
            row.push_bind(conversation_id)
                .push_bind(message.id.as_str())
                .push_bind(seq + offset as i64)
                .push_bind(message.role.as_str())
                .push_bind(message.content.as_str())
                .push_bind(message.created_at)
                .push_bind(metadata_text(&message.metadata));
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_conversation(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &NewConversation<'_>,
) -> Result<()> {
    let metadata = metadata_text(batch.metadata.unwrap_or(&Metadata::new()));
    sqlx::query(
        "INSERT INTO conversations (id, user_id, session_id, created_at, updated_at, metadata) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(batch.id)
    .bind(batch.user_id)
    .bind(batch.session_id)
    .bind(batch.now)
    .bind(batch.now)
    .bind(metadata)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn touch_conversation(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &NewConversation<'_>,
) -> Result<()> {
    // updated_at never goes backwards, so the history order stays stable under clock skew.
    sqlx::query(
        "UPDATE conversations SET updated_at = MAX(updated_at, ?), \
         session_id = COALESCE(session_id, ?), metadata = COALESCE(?, metadata) WHERE id = ?",
    )
    .bind(batch.now)
    .bind(batch.session_id)
    .bind(batch.metadata.map(metadata_text))
    .bind(batch.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One page of conversation headers, newest first.
pub async fn page(pool: &SqlitePool, query: &HistoryQuery<'_>) -> Result<Vec<ConversationHeader>> {
    let (before_time, before_id) = query.before.unwrap_or((i64::MAX, ""));
    let has_cursor = query.before.is_some();
    let sql = concat!(
        header_select!(),
        "WHERE c.user_id = ?1 AND (?2 IS NULL OR c.session_id = ?2) \
           AND (NOT ?3 OR (c.updated_at, c.id) < (?4, ?5)) \
         ORDER BY c.updated_at DESC, c.id DESC LIMIT ?6"
    );
    let rows: Vec<HeaderRow> = sqlx::query_as(sql)
        .bind(query.user_id)
        .bind(query.session_id)
        .bind(has_cursor)
        .bind(before_time)
        .bind(before_id)
        .bind(query.limit)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(header_from_row).collect()
}

pub async fn header(pool: &SqlitePool, id: &str) -> Result<Option<ConversationHeader>> {
    let sql = concat!(header_select!(), "WHERE c.id = ?");
    let row: Option<HeaderRow> = sqlx::query_as(sql).bind(id).fetch_optional(pool).await?;
    row.map(header_from_row).transpose()
}

/// Messages of one conversation in order, from position `offset`.
pub async fn messages(
    pool: &SqlitePool,
    conversation_id: &str,
    offset: i64,
    limit: u32,
) -> Result<Vec<Message>> {
    let rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, seq, role, content, created_at, metadata FROM messages \
         WHERE conversation_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
    )
    .bind(conversation_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(message_from_row).collect()
}

/// Deletes a conversation and, by cascade, its messages; the number of messages and the
/// bumped generations, or None if it was absent.
pub async fn delete(
    pool: &SqlitePool,
    id: &str,
    invalidates: &[String],
) -> Result<Option<(i64, Vec<ScopeGeneration>)>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM conversations WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let generations = generations::bump_in(&mut tx, invalidates).await?;
    tx.commit().await?;
    Ok(Some((count, generations)))
}

fn header_from_row(row: HeaderRow) -> Result<ConversationHeader> {
    let (id, user_id, session_id, created_at, updated_at, metadata, total) = row;
    Ok(ConversationHeader {
        conversation_id: id,
        user_id,
        session_id,
        created_at: from_millis(created_at),
        updated_at: from_millis(updated_at),
        metadata: parse_metadata(&metadata)?,
        total_messages: total,
    })
}

/// The first `per_conversation` messages of each conversation, in one read, grouped by
/// conversation in the order of `conversation_ids` (positions are dense from 0).
pub async fn first_messages(
    pool: &SqlitePool,
    conversation_ids: &[&str],
    per_conversation: u32,
) -> Result<Vec<Vec<Message>>> {
    let mut grouped: std::collections::HashMap<String, Vec<Message>> =
        std::collections::HashMap::new();
    for chunk in conversation_ids.chunks(500) {
        let mut query = sqlx::QueryBuilder::<Sqlite>::new(
            "SELECT conversation_id, id, seq, role, content, created_at, metadata FROM messages \
             WHERE seq < ",
        );
        query
            .push_bind(per_conversation)
            .push(" AND conversation_id IN");
        super::push_list(&mut query, chunk);
        query.push(" ORDER BY conversation_id, seq");
        let rows: Vec<(String, String, i64, String, String, i64, String)> =
            query.build_query_as().fetch_all(pool).await?;
        for (conversation, id, seq, role, content, created_at, metadata) in rows {
            let message = message_from_row((id, seq, role, content, created_at, metadata))?;
            grouped.entry(conversation).or_default().push(message);
        }
    }
    Ok(conversation_ids
        .iter()
        .map(|id| grouped.remove(*id).unwrap_or_default())
        .collect())
}

fn message_from_row(row: MessageRow) -> Result<Message> {
    let (id, seq, role, content, created_at, metadata) = row;
    Ok(Message {
        message_id: id,
        seq,
        role: role.parse().map_err(StoreError::Decode)?,
        content,
        created_at: from_millis(created_at),
        metadata: parse_metadata(&metadata)?,
    })
}

pub(super) fn metadata_text(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).expect("a map with string keys always serialises")
}

fn parse_metadata(text: &str) -> Result<Metadata> {
    serde_json::from_str(text).map_err(|error| StoreError::Decode(format!("metadata: {error}")))
}
