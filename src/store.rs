//! Persistence in SQLite: the only module that holds SQL.
//!
//! Keeping every statement here lets a PostgreSQL backend replace this module without the
//! engine noticing. Writes that race other processes are retried with backoff (see `retry`).

mod backup;
mod condition;
mod conversations;
mod documents;
mod error;
mod generations;
mod identity;
mod maintenance;
mod open;
mod opened;
mod passages;
mod preferences;
mod read_only;
mod recall;
mod retry;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use serde_json::Value;
use sqlx::SqlitePool;

pub use self::{
    backup::{FileReport, inspect_file},
    condition::{Checkpoint, Damage, IntegrityCheck},
    conversations::{HistoryQuery, NewConversation, NewMessage, SaveOutcome},
    documents::{
        DocumentMeta, DocumentRecord, IndexedDocument, NewPassage, StagedDocument, StagedIds,
    },
    error::{Result, StoreError},
    maintenance::PrunedLogs,
    open::{DATABASE_FILE, latest_known_version},
    passages::{DocumentFilter, PassageRecord, Unembedded, VectorChanges},
    recall::{FoundMessage, WordChanges},
};
use self::{condition::Condition, opened::OpenedFile, retry::retry_busy};
use crate::model::{ConversationHeader, Message, Preference, ScopeGeneration, StoreIdentity};

/// Appends the `(?, ?, …)` list of an `IN`, binding `values`.
fn push_list<'t, T>(query: &mut sqlx::QueryBuilder<sqlx::Sqlite>, values: &'t [T])
where
    &'t T: sqlx::Encode<'t, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    query.push(" (");
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    query.push(")");
}

/// Handle to the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    condition: Arc<Condition>,
    opened: Arc<OpenedFile>,
}

impl Store {
    /// Opens the database in `data_dir`, creating and migrating it on first use. A damaged
    /// file is opened read-only and reported by [`Store::damage`]; it is never replaced.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let opened = open::open_pool(data_dir).await?;
        let condition = match opened.damage {
            Some(detail) => Condition::damaged(detail),
            None => Condition::default(),
        };
        let path = data_dir.join(DATABASE_FILE);
        Ok(Self {
            pool: opened.pool,
            opened: Arc::new(OpenedFile::record(&path)),
            path,
            condition: Arc::new(condition),
        })
    }

    /// Runs a read with retries when busy, noting damage that it runs into.
    async fn read<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let outcome = retry_busy(work).await;
        if let Err(error) = &outcome {
            self.condition.observe(error);
        }
        outcome
    }

    /// Runs a write as [`Store::read`] does, unless damage has been found. The file at the
    /// path is checked before the write and again before it is acknowledged, since a write
    /// into a file that was deleted or replaced meanwhile is lost at the next start.
    async fn write<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.condition.refuse_if_damaged()?;
        self.opened.refuse_if_detached()?;
        let written = self.read(work).await?;
        self.opened.refuse_if_detached()?;
        Ok(written)
    }

    /// Why writes are refused although the file is not damaged: the path no longer names
    /// the file that was opened.
    pub fn detached(&self) -> Option<StoreError> {
        self.opened.refuse_if_detached().err()
    }

    /// The random id and cache secret made with this database.
    pub async fn identity(&self) -> Result<StoreIdentity> {
        self.read(|| identity::read(&self.pool)).await
    }

    /// The damage found in the database file, if any.
    pub fn damage(&self) -> Option<Damage> {
        self.condition.damage()
    }

    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.condition.checkpoint()
    }

    pub fn last_integrity_check(&self) -> Option<IntegrityCheck> {
        self.condition.integrity()
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sizes of the main file and of its WAL, in bytes (0 when absent).
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        (size(&self.path), size(Path::new(&wal)))
    }

    /// Deletes all but the last `keep` positions of each change log; see
    /// [`maintenance::prune_change_logs`].
    pub async fn prune_change_logs(&self, keep: i64) -> Result<PrunedLogs> {
        self.write(|| maintenance::prune_change_logs(&self.pool, keep))
            .await
    }

    /// Copies committed WAL frames into the main file without waiting for anyone (`PASSIVE`),
    /// so the WAL stays bounded when readers of several processes keep SQLite's own
    /// checkpoints from finishing.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        self.checkpoint_in("PASSIVE").await
    }

    /// Checkpoints the WAL and truncates it to nothing, waiting at most 300 ms for other
    /// connections (it gives up, busy, rather than stall).
    pub async fn truncate_wal(&self) -> Result<Checkpoint> {
        self.checkpoint_in("TRUNCATE").await
    }

    /// A checkpoint writes the main file: refused, like any write, once damage is found.
    async fn checkpoint_in(&self, mode: &'static str) -> Result<Checkpoint> {
        let checkpoint = self
            .write(|| maintenance::checkpoint(&self.pool, mode))
            .await?;
        self.condition.record_checkpoint(checkpoint.clone());
        Ok(checkpoint)
    }

    /// Runs `PRAGMA integrity_check` over the whole file (seconds on a large one: called in the
    /// background), recording damage it finds.
    pub async fn check_integrity(&self) -> Result<IntegrityCheck> {
        let started = Instant::now();
        let result = self.read(|| maintenance::integrity(&self.path)).await?;
        let check = IntegrityCheck {
            at: chrono::Utc::now(),
            result,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.condition.record_integrity(check.clone());
        Ok(check)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }

    pub async fn save_conversation(&self, batch: &NewConversation<'_>) -> Result<SaveOutcome> {
        self.write(|| conversations::save(&self.pool, batch)).await
    }

    pub async fn conversation_page(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<Vec<ConversationHeader>> {
        self.read(|| conversations::page(&self.pool, query)).await
    }

    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationHeader>> {
        self.read(|| conversations::header(&self.pool, id)).await
    }

    pub async fn messages(
        &self,
        conversation_id: &str,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.read(|| conversations::messages(&self.pool, conversation_id, offset, limit))
            .await
    }

    /// The first `per_conversation` messages of each conversation, in the order given.
    pub async fn first_messages(
        &self,
        conversation_ids: &[&str],
        per_conversation: u32,
    ) -> Result<Vec<Vec<Message>>> {
        self.read(|| conversations::first_messages(&self.pool, conversation_ids, per_conversation))
            .await
    }

    /// Deletes a conversation with its messages, bumping `invalidates` in the same
    /// transaction; how many messages went, or None if it was absent.
    pub async fn delete_conversation(
        &self,
        id: &str,
        invalidates: &[String],
    ) -> Result<Option<(i64, Vec<ScopeGeneration>)>> {
        self.write(|| conversations::delete(&self.pool, id, invalidates))
            .await
    }

    /// Sets a preference, bumping `invalidates` in the same transaction; true when the key was new.
    pub async fn set_preference(
        &self,
        user_id: &str,
        key: &str,
        value: &Value,
        now: i64,
        invalidates: &[String],
    ) -> Result<(bool, Vec<ScopeGeneration>)> {
        self.write(|| preferences::set(&self.pool, user_id, key, value, now, invalidates))
            .await
    }

    /// A user's preferences: all of them, or those of `keys` that exist.
    pub async fn preferences(
        &self,
        user_id: &str,
        keys: Option<&[String]>,
    ) -> Result<Vec<Preference>> {
        match keys {
            Some(keys) => {
                self.read(|| preferences::some(&self.pool, user_id, keys))
                    .await
            }
            None => self.read(|| preferences::all(&self.pool, user_id)).await,
        }
    }

    /// Deletes a preference, bumping `invalidates` if it existed; true when it existed.
    pub async fn delete_preference(
        &self,
        user_id: &str,
        key: &str,
        invalidates: &[String],
    ) -> Result<(bool, Vec<ScopeGeneration>)> {
        self.write(|| preferences::delete(&self.pool, user_id, key, invalidates))
            .await
    }

    /// Bumps the generation of each scope (an invalidation on request).
    pub async fn bump_generations(&self, scopes: &[String]) -> Result<Vec<ScopeGeneration>> {
        self.write(|| generations::bump(&self.pool, scopes)).await
    }

    /// Scope generations stamped after `seq`, oldest first.
    pub async fn generations_since(&self, seq: i64) -> Result<Vec<ScopeGeneration>> {
        self.read(|| generations::since(&self.pool, seq)).await
    }

    /// The indexed documents of one workspace root, by path.
    pub async fn documents_in(&self, workspace: &str) -> Result<Vec<DocumentRecord>> {
        self.read(|| documents::in_workspace(&self.pool, workspace))
            .await
    }

    /// Records documents with their passages and queues them for the full-text index.
    pub async fn stage_documents(
        &self,
        documents: &[StagedDocument<'_>],
        now: i64,
    ) -> Result<Vec<StagedIds>> {
        self.write(|| documents::stage(&self.pool, documents, now))
            .await
    }

    pub async fn requeue_documents(&self, ids: &[i64]) -> Result<()> {
        self.write(|| documents::requeue(&self.pool, ids)).await
    }

    /// The oldest documents queued for the full-text index: (id, seq).
    pub async fn index_outbox(&self, limit: u32) -> Result<Vec<(i64, i64)>> {
        self.read(|| documents::outbox(&self.pool, limit)).await
    }

    pub async fn index_outbox_done(&self, drained: &[(i64, i64)]) -> Result<()> {
        self.write(|| documents::outbox_done(&self.pool, drained))
            .await
    }

    /// How many of `ids` wait for the full-text index.
    pub async fn still_queued(&self, ids: &[i64]) -> Result<i64> {
        self.read(|| documents::still_queued(&self.pool, ids)).await
    }

    pub async fn documents_for_index(&self, ids: &[i64]) -> Result<Vec<IndexedDocument>> {
        self.read(|| documents::for_index(&self.pool, ids)).await
    }

    /// Documents the full-text index should hold (with passages, not queued), with their
    /// stamps: (document id, highest passage id, passage count).
    pub async fn settled_stamps(&self) -> Result<Vec<(i64, i64, i64)>> {
        self.read(|| documents::settled_stamps(&self.pool)).await
    }

    pub async fn touch_document(&self, id: i64, size: i64, modified_ms: i64) -> Result<()> {
        self.write(|| documents::touch(&self.pool, id, size, modified_ms))
            .await
    }

    pub async fn delete_documents(&self, ids: &[i64]) -> Result<()> {
        self.write(|| documents::delete(&self.pool, ids)).await
    }

    /// (documents, passages, documents queued for the full-text index), in one workspace or all.
    pub async fn document_counts(&self, workspace: Option<&str>) -> Result<(i64, i64, i64)> {
        self.read(|| documents::counts(&self.pool, workspace)).await
    }

    pub async fn document_metadata(&self, ids: &[i64]) -> Result<Vec<DocumentMeta>> {
        self.read(|| documents::metadata(&self.pool, ids)).await
    }

    /// Claims passages waiting for a vector (see `passages::claim_unembedded`).
    pub async fn claim_unembedded(
        &self,
        limit: u32,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<Unembedded>> {
        self.write(|| passages::claim_unembedded(&self.pool, limit, now, lease_ms))
            .await
    }

    /// Stores vectors; the workspaces whose passages changed.
    pub async fn store_vectors(
        &self,
        embedder: &str,
        vectors: &[(i64, Vec<f32>)],
    ) -> Result<Vec<String>> {
        self.write(|| passages::store_vectors(&self.pool, embedder, vectors))
            .await
    }

    /// Drops vectors of other models so that they are made again; how many.
    pub async fn clear_other_models(&self, embedder: &str) -> Result<u64> {
        self.write(|| passages::clear_other_models(&self.pool, embedder))
            .await
    }

    pub async fn vector_changes(&self, embedder: &str, since: i64) -> Result<VectorChanges> {
        self.read(|| passages::vector_changes(&self.pool, embedder, since))
            .await
    }

    pub async fn passages(&self, ids: &[i64]) -> Result<Vec<PassageRecord>> {
        self.read(|| passages::by_ids(&self.pool, ids)).await
    }

    pub async fn filtered_documents(&self, filter: &DocumentFilter<'_>) -> Result<Vec<i64>> {
        self.read(|| passages::filtered_documents(&self.pool, filter))
            .await
    }

    /// Passages waiting for a vector, in one workspace or in all.
    pub async fn passages_waiting(&self, workspace: Option<&str>) -> Result<i64> {
        self.read(|| passages::waiting(&self.pool, workspace)).await
    }

    /// Every indexed document by id after `after`: (id, workspace, path, size).
    pub async fn document_listing(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, i64)>> {
        self.read(|| documents::listing(&self.pool, after, limit))
            .await
    }

    pub async fn document_by_path(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<Option<DocumentMeta>> {
        self.read(|| documents::by_path(&self.pool, workspace, path))
            .await
    }

    /// Writes a consistent snapshot of the database to `target`, which must not exist.
    pub async fn backup_into(&self, target: &Path) -> Result<()> {
        self.write(|| backup::vacuum_into(&self.pool, target)).await
    }

    /// Checks the live database: integrity, schema version, row counts.
    pub async fn inspect(&self) -> Result<FileReport> {
        self.read(|| backup::inspect_live(&self.pool)).await
    }

    /// Messages changed after position `since` of `message_changes` (all when None), for
    /// the word index every process keeps.
    pub async fn message_word_changes(&self, since: Option<i64>) -> Result<WordChanges> {
        self.read(|| recall::word_changes(&self.pool, since)).await
    }

    /// Row ids of the user's conversations (what message vectors are filtered by).
    pub async fn conversation_keys(&self, user_id: &str) -> Result<Vec<i64>> {
        self.read(|| recall::conversation_keys(&self.pool, user_id))
            .await
    }

    /// Time of the user's last save, epoch milliseconds.
    pub async fn last_update(&self, user_id: &str) -> Result<Option<i64>> {
        self.read(|| recall::last_update(&self.pool, user_id)).await
    }

    pub async fn messages_by_rowids(&self, rowids: &[i64]) -> Result<Vec<FoundMessage>> {
        self.read(|| recall::by_rowids(&self.pool, rowids)).await
    }

    /// The last `limit` messages of a user's session, oldest first.
    pub async fn session_latest(
        &self,
        user_id: &str,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<FoundMessage>> {
        self.read(|| recall::session_latest(&self.pool, user_id, session_id, limit))
            .await
    }

    /// Claims messages waiting for a vector: (rowid, content).
    pub async fn claim_unembedded_messages(
        &self,
        limit: u32,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<(i64, String)>> {
        self.write(|| recall::claim_unembedded(&self.pool, limit, now, lease_ms))
            .await
    }

    /// Stores message vectors; the users whose messages changed.
    pub async fn store_message_vectors(
        &self,
        embedder: &str,
        vectors: &[(i64, Vec<f32>)],
    ) -> Result<Vec<String>> {
        self.write(|| recall::store_vectors(&self.pool, embedder, vectors))
            .await
    }

    /// Messages waiting for a vector.
    pub async fn messages_waiting(&self) -> Result<i64> {
        self.read(|| recall::waiting(&self.pool)).await
    }

    /// Conversation ids starting with `prefix` (for completions).
    pub async fn conversation_ids(&self, prefix: &str, limit: u32) -> Result<Vec<String>> {
        self.read(|| recall::conversation_ids(&self.pool, prefix, limit))
            .await
    }

    /// Every conversation by id after `after`: (id, user, message count).
    pub async fn conversation_listing(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        self.read(|| recall::conversation_listing(&self.pool, after, limit))
            .await
    }

    /// Checkpoints the WAL (truncating it), waits for in-flight statements, then closes every
    /// connection (SQLite checkpoints again when the last connection of all closes).
    pub async fn close(&self) {
        // Leave the WAL empty where no other process is reading: a restart (or a copy of the
        // main file) then needs nothing from it. Best effort: another process may hold it.
        if let Err(error) = self.truncate_wal().await {
            tracing::debug!(%error, "no truncating checkpoint at close");
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A store in a new temporary folder (kept alive by the returned guard), with `sql` run.
    pub async fn store_with(sql: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&store.pool)
            .await
            .unwrap();
        (dir, store)
    }
}
