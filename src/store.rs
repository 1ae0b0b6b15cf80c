//! Persistence in SQLite: the only module that holds SQL.
//!
//! Keeping every statement here lets a PostgreSQL backend replace this module without the
//! engine noticing. Writes that race other processes are retried with backoff (see `retry`).

mod conversations;
mod documents;
mod error;
mod generations;
mod open;
mod preferences;
mod retry;

use std::path::Path;

use serde_json::Value;
use sqlx::SqlitePool;

use self::retry::retry_busy;
pub use self::{
    conversations::{HistoryQuery, NewConversation, NewMessage, SaveOutcome},
    documents::{DocumentRecord, PendingDocument},
    error::{Result, StoreError},
    open::{DATABASE_FILE, latest_known_version},
};
use crate::model::{ConversationHeader, Message, Preference, ScopeGeneration};

/// Handle to the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens the database in `data_dir`, creating and migrating it on first use.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let pool = open::open_pool(data_dir).await?;
        Ok(Self { pool })
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }

    pub async fn save_conversation(&self, batch: &NewConversation<'_>) -> Result<SaveOutcome> {
        retry_busy(|| conversations::save(&self.pool, batch)).await
    }

    pub async fn conversation_page(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<Vec<ConversationHeader>> {
        retry_busy(|| conversations::page(&self.pool, query)).await
    }

    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationHeader>> {
        retry_busy(|| conversations::header(&self.pool, id)).await
    }

    pub async fn messages(
        &self,
        conversation_id: &str,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Message>> {
        retry_busy(|| conversations::messages(&self.pool, conversation_id, offset, limit)).await
    }

    /// Deletes a conversation with its messages, bumping `invalidates` in the same
    /// transaction; how many messages went, or None if it was absent.
    pub async fn delete_conversation(
        &self,
        id: &str,
        invalidates: &[String],
    ) -> Result<Option<(i64, Vec<ScopeGeneration>)>> {
        retry_busy(|| conversations::delete(&self.pool, id, invalidates)).await
    }

    /// Sets a preference; true when the key was new.
    /// Sets a preference, bumping `invalidates` in the same transaction; true when the key was new.
    pub async fn set_preference(
        &self,
        user_id: &str,
        key: &str,
        value: &Value,
        now: i64,
        invalidates: &[String],
    ) -> Result<(bool, Vec<ScopeGeneration>)> {
        retry_busy(|| preferences::set(&self.pool, user_id, key, value, now, invalidates)).await
    }

    /// A user's preferences: all of them, or those of `keys` that exist.
    pub async fn preferences(
        &self,
        user_id: &str,
        keys: Option<&[String]>,
    ) -> Result<Vec<Preference>> {
        match keys {
            Some(keys) => retry_busy(|| preferences::some(&self.pool, user_id, keys)).await,
            None => retry_busy(|| preferences::all(&self.pool, user_id)).await,
        }
    }

    /// Deletes a preference, bumping `invalidates` if it existed; true when it existed.
    pub async fn delete_preference(
        &self,
        user_id: &str,
        key: &str,
        invalidates: &[String],
    ) -> Result<(bool, Vec<ScopeGeneration>)> {
        retry_busy(|| preferences::delete(&self.pool, user_id, key, invalidates)).await
    }

    /// Bumps the generation of each scope (an invalidation on request).
    pub async fn bump_generations(&self, scopes: &[String]) -> Result<Vec<ScopeGeneration>> {
        retry_busy(|| generations::bump(&self.pool, scopes)).await
    }

    /// Scope generations stamped after `seq`, oldest first.
    pub async fn generations_since(&self, seq: i64) -> Result<Vec<ScopeGeneration>> {
        retry_busy(|| generations::since(&self.pool, seq)).await
    }

    /// The indexed documents of one workspace root, by path.
    pub async fn documents_in(&self, workspace: &str) -> Result<Vec<DocumentRecord>> {
        retry_busy(|| documents::in_workspace(&self.pool, workspace)).await
    }

    /// Records a document as being (re)indexed; its id.
    pub async fn mark_document_pending(&self, document: &PendingDocument<'_>) -> Result<i64> {
        retry_busy(|| documents::mark_pending(&self.pool, document)).await
    }

    /// Records documents whose passages the index has committed: (id, checksum, chunks).
    pub async fn mark_documents_indexed(
        &self,
        indexed: &[(i64, String, i64)],
        now: i64,
    ) -> Result<()> {
        retry_busy(|| documents::mark_indexed(&self.pool, indexed, now)).await
    }

    pub async fn touch_document(&self, id: i64, size: i64, modified_ms: i64) -> Result<()> {
        retry_busy(|| documents::touch(&self.pool, id, size, modified_ms)).await
    }

    pub async fn delete_documents(&self, ids: &[i64]) -> Result<()> {
        retry_busy(|| documents::delete(&self.pool, ids)).await
    }

    /// (documents, passages) in one workspace or in all.
    pub async fn document_counts(&self, workspace: Option<&str>) -> Result<(i64, i64)> {
        retry_busy(|| documents::counts(&self.pool, workspace)).await
    }

    /// Waits for in-flight statements, then closes every connection (SQLite checkpoints the WAL
    /// when the last connection closes).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
