//! Keeping the full-text index in step with SQLite across processes.
//!
//! tantivy lets one process at a time hold an index's writer. Every process stages its
//! documents in SQLite with a row in `index_outbox`; whichever process holds the writer
//! drains the queue: it reads the staged passages, writes them to tantivy, commits, then takes
//! the rows off the queue. Every process tries to take the writer when it is free (its
//! holder exited or crashed), so the queue always has a drainer while any process runs.
//!
//! On taking the writer a process reconciles: every document whose version differs between
//! SQLite and the index is queued again. A version is the document's highest passage id and
//! passage count; passage ids are never reused and every re-stage makes new ones. That
//! repairs a crash between a commit and its bookkeeping, and makes an index copied at
//! another moment than the database (a backup's) exact again.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Engine, activity::WalkProgress, documents::blocking, error::Result, semantic::EmbedderStatus,
};
use crate::{
    cache::Scope,
    index::{IndexedPassage, MERGE_AFTER_DOCUMENTS, Stamp, TextIndex},
    store::IndexedDocument,
};

/// Documents written to tantivy per commit: commits flush segments, so fewer is faster.
const DRAIN_BATCH: u32 = 2048;
/// The queue a background drain waits for while this process is staging a pass.
const BUSY_DRAIN_MIN: u32 = 512;
/// How often a process checks for queued work and a free writer.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// How long an indexing call waits for another process to index what it staged.
const HANDOFF_WAIT: Duration = Duration::from_secs(60);
const HANDOFF_POLL: Duration = Duration::from_millis(100);

/// Arguments of `index_status`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexStatusRequest {
    /// Only this configured workspace root, by its path or its name as in `document://` URIs.
    pub workspace: Option<String>,
}

/// Work not done yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Pending {
    /// Files staged but not yet in the full-text index.
    pub files: i64,
    /// Passages waiting to be embedded.
    pub chunks: i64,
    /// Saved messages waiting to be embedded (history is found by meaning once they are).
    pub messages: i64,
}

/// Which process holds the index writer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WriterStatus {
    /// True when this server process holds it.
    pub this_process: bool,
    /// The pid of the process that last took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Result of `index_status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IndexStatus {
    /// The configured workspace roots that exist.
    pub workspaces: Vec<String>,
    /// Configured workspace roots that do not exist yet; each is used once it appears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roots: Vec<String>,
    pub documents: i64,
    pub chunks: i64,
    pub pending: Pending,
    /// Vectors this process searches.
    pub vectors: usize,
    pub embedder: EmbedderStatus,
    pub writer: WriterStatus,
    /// Why full-text search is unavailable, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_unavailable: Option<String>,
    /// Why the index writer failed (a full disk, say), while no commit has succeeded since;
    /// searches answer from the last commit and the next drain opens a new writer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_failed: Option<String>,
    /// The index pass running in this process, with how far its walk is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexing: Option<WalkProgress>,
}

impl Engine {
    /// What waits, as `index_status` shows it: nothing waits for embeddings when no embedder
    /// will ever compute them.
    fn pending(&self, files: i64, chunks: i64, messages: i64) -> Pending {
        let embedding = !matches!(self.embedder_status().state.as_str(), "disabled" | "failed");
        Pending {
            files,
            chunks: if embedding { chunks } else { 0 },
            messages: if embedding { messages } else { 0 },
        }
    }

    pub async fn index_status(&self, request: IndexStatusRequest) -> Result<IndexStatus> {
        let workspace = request
            .workspace
            .as_deref()
            .map(|path| self.workspace_root(path))
            .transpose()?;
        let (documents, chunks, files) = self.store().document_counts(workspace.as_deref()).await?;
        let waiting = self.store().passages_waiting(workspace.as_deref()).await?;
        let messages = self.store().messages_waiting().await?;
        // The worker stores vectors before it loads them; loading here keeps `vectors`
        // from trailing a `pending` that already counts them as done.
        self.refresh_vectors().await?;
        let (writer, index_unavailable, writer_failed) = match self.text_index() {
            Ok(index) => (
                WriterStatus {
                    this_process: index.holds_writer(),
                    pid: index.writer_pid(),
                },
                None,
                index.writer_fault(),
            ),
            Err(error) => (
                WriterStatus {
                    this_process: false,
                    pid: None,
                },
                Some(error.to_string()),
                None,
            ),
        };
        Ok(IndexStatus {
            workspaces: self.all_roots(),
            missing_roots: self.missing_roots(),
            documents,
            chunks,
            pending: self.pending(files, waiting, messages),
            vectors: self.vector_count(),
            embedder: self.embedder_status(),
            writer,
            index_unavailable,
            writer_failed,
            indexing: self.documents().activity.walk(),
        })
    }

    /// Gets what this call staged into the full-text index: drains the queue when this
    /// process holds (or can take) the writer, else waits for the holder. Returns how many
    /// staged documents were still queued when the wait ran out.
    pub(super) async fn sync_text_index(&self, staged: &[i64]) -> Result<u64> {
        if staged.is_empty() {
            return Ok(0);
        }
        let index = self.text_index()?;
        let deadline = Instant::now() + HANDOFF_WAIT;
        loop {
            self.drain_index_queue(&index).await?;
            let left = self.store().still_queued(staged).await?;
            if left == 0 {
                blocking({
                    let index = index.clone();
                    move || index.reload()
                })
                .await?;
                return Ok(0);
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    queued = left,
                    "another process holds the index writer and has not indexed this pass yet"
                );
                return Ok(left as u64);
            }
            tokio::time::sleep(HANDOFF_POLL).await;
        }
    }

    /// Indexes every queued document now, when this process holds the writer or can take it
    /// (else the holder will): what a pass that changed nothing leaves behind, such as the
    /// documents queued again when this process took the writer of an index that had to be
    /// rebuilt. Returns how many it indexed. For commands that exit when done; a server's
    /// drain loop does the same on its own.
    pub async fn index_queued(&self) -> Result<usize> {
        let index = self.text_index()?;
        self.drain_index_queue(&index).await
    }

    /// Drains the queue if this process holds the writer or can take it; how many documents
    /// it wrote.
    async fn drain_index_queue(&self, index: &Arc<TextIndex>) -> Result<usize> {
        let _one_drain = self.documents().drain.lock().await;
        if !self.hold_writer(index).await? {
            return Ok(0);
        }
        let mut written = 0;
        loop {
            match self.drain_batch(index).await? {
                0 => break,
                documents => written += documents,
            }
        }
        if written >= MERGE_AFTER_DOCUMENTS {
            merge_in_background(index.clone());
        }
        Ok(written)
    }

    /// Takes the writer if no process holds it (reconciling the index with SQLite when this
    /// process newly does); true when this process holds it. Called in this process's drain
    /// turn.
    async fn hold_writer(&self, index: &Arc<TextIndex>) -> Result<bool> {
        let newly_held = !index.holds_writer();
        let holds = blocking({
            let index = index.clone();
            move || index.acquire_writer()
        })
        .await?;
        if holds && newly_held {
            tracing::info!("this process now holds the index writer");
            self.reconcile(index).await?;
        }
        Ok(holds)
    }

    /// A direct feed for an indexing pass, when this process holds the writer (or can take
    /// it) and no drain or other pass has the turn; else the pass only queues its documents.
    pub(super) async fn direct_feed(&self) -> Option<DirectFeed<'_>> {
        let index = self.text_index().ok()?;
        if self.database_damaged() {
            return None;
        }
        let turn = self.documents().drain.try_lock().ok()?;
        match self.hold_writer(&index).await {
            Ok(true) => Some(DirectFeed {
                _turn: turn,
                index,
                written: Vec::new(),
                committed: 0,
                failed: false,
            }),
            Ok(false) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot take the index writer; queueing this pass");
                None
            }
        }
    }

    /// Writes staged documents to the index through `feed`, committing every
    /// `DRAIN_BATCH` documents. A failure leaves them queued for a later drain.
    pub(super) async fn feed(
        &self,
        feed: &mut DirectFeed<'_>,
        root: &str,
        documents: Vec<(IndexedDocument, i64)>,
    ) {
        if feed.failed || documents.is_empty() {
            return;
        }
        let (documents, seqs): (Vec<IndexedDocument>, Vec<i64>) = documents.into_iter().unzip();
        let ids: Vec<i64> = documents.iter().map(|document| document.id).collect();
        let index = feed.index.clone();
        if let Err(error) = blocking(move || write_documents(&index, &documents, &[])).await {
            tracing::warn!(%error, "writing to the index failed; leaving the pass queued");
            feed.failed = true;
            return;
        }
        feed.written.extend(ids.into_iter().zip(seqs));
        if feed.written.len() >= DRAIN_BATCH as usize {
            self.commit_feed(feed, root).await;
        }
    }

    /// Commits what `feed` wrote and takes it off the queue; merges the index afterwards when
    /// the pass wrote many documents. Ends the pass's turn.
    pub(super) async fn finish_feed(&self, mut feed: DirectFeed<'_>, root: &str) {
        self.commit_feed(&mut feed, root).await;
        if feed.committed >= MERGE_AFTER_DOCUMENTS {
            merge_in_background(feed.index.clone());
        }
    }

    async fn commit_feed(&self, feed: &mut DirectFeed<'_>, root: &str) {
        if feed.failed || feed.written.is_empty() {
            return;
        }
        let index = feed.index.clone();
        let committed = async {
            blocking(move || index.commit()).await?;
            self.store().index_outbox_done(&feed.written).await?;
            let scope = Scope::Workspace(root.to_owned()).name();
            let bumped = self.store().bump_generations(&[scope]).await?;
            self.after_write(&bumped).await;
            Ok::<_, super::error::EngineError>(())
        };
        match committed.await {
            Ok(()) => {
                feed.committed += feed.written.len();
                feed.written.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "committing the index failed; leaving the pass queued");
                feed.failed = true;
            }
        }
    }

    /// Writes one batch of queued documents to the index: how many (0: the queue was empty).
    async fn drain_batch(&self, index: &Arc<TextIndex>) -> Result<usize> {
        let queued = self.store().index_outbox(DRAIN_BATCH).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = queued.iter().map(|(id, _)| *id).collect();
        let started = Instant::now();
        let documents = self.store().documents_for_index(&ids).await?;
        let read = started.elapsed();
        let present: HashSet<i64> = documents.iter().map(|document| document.id).collect();
        let gone: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !present.contains(id))
            .collect();
        let mut scopes: Vec<String> = documents
            .iter()
            .map(|document| Scope::Workspace(document.workspace.clone()).name())
            .collect();
        if !gone.is_empty() {
            // A removed document's root is no longer recorded: every root may have changed.
            scopes.extend(
                self.all_roots()
                    .into_iter()
                    .map(|root| Scope::Workspace(root).name()),
            );
        }
        scopes.sort();
        scopes.dedup();
        let writing = index.clone();
        blocking(move || {
            write_documents(&writing, &documents, &gone)?;
            writing.commit()
        })
        .await?;
        tracing::debug!(documents = ids.len(), ?read, written = ?started.elapsed(), "index batch committed");
        self.store().index_outbox_done(&queued).await?;
        let bumped = self.store().bump_generations(&scopes).await?;
        self.after_write(&bumped).await;
        Ok(queued.len())
    }

    /// Queues again every document on which the index and SQLite disagree.
    async fn reconcile(&self, index: &Arc<TextIndex>) -> Result<()> {
        let in_index = blocking({
            let index = index.clone();
            move || index.document_stamps()
        })
        .await?;
        let settled: HashMap<i64, Stamp> = self
            .store()
            .settled_stamps()
            .await?
            .into_iter()
            .map(|(id, last, count)| (id, (last, count)))
            .collect();
        let disagreeing = disagreeing(&settled, &in_index);
        if !disagreeing.is_empty() {
            tracing::info!(
                documents = disagreeing.len(),
                "the index and the database disagree; indexing those documents again"
            );
            self.store().requeue_documents(&disagreeing).await?;
        }
        Ok(())
    }

    /// Drains the queue whenever this process holds (or can take) the writer, until
    /// `cancel` fires.
    pub async fn follow_index(self, cancel: CancellationToken) {
        let Ok(index) = self.text_index() else {
            return;
        };
        let mut failing = false;
        // Draining marks documents done: a write, refused on a damaged database.
        while self.next_writable_tick(FOLLOW_INTERVAL, &cancel).await {
            // While a pass stages, drain only in large batches: a commit per tick would
            // leave many small segments to merge.
            let staging = self
                .documents()
                .staging
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0;
            if staging && !self.queue_holds(BUSY_DRAIN_MIN).await {
                continue;
            }
            match self.drain_index_queue(&index).await {
                Err(error) if !failing => {
                    tracing::warn!(%error, "indexing queued documents failed; will retry");
                    failing = true;
                }
                Err(_) => {}
                Ok(_) => failing = false,
            }
        }
    }

    async fn queue_holds(&self, documents: u32) -> bool {
        self.store()
            .index_outbox(documents)
            .await
            .is_ok_and(|queued| queued.len() >= documents as usize)
    }

    /// Reads other processes' commits (called before their invalidations are applied).
    pub(super) async fn reload_text_index(&self) {
        let Ok(index) = self.text_index() else {
            return;
        };
        if let Err(error) = blocking(move || index.reload()).await {
            tracing::warn!(%error, "cannot reload the search index");
        }
    }
}

/// Merges the index into one segment once a large drain is committed, without holding up
/// the call that drained. The merge changes no content, so nothing is invalidated.
fn merge_in_background(index: Arc<TextIndex>) {
    tokio::spawn(async move {
        let started = Instant::now();
        match blocking(move || index.merge_segments()).await {
            Ok(true) => tracing::debug!(elapsed = ?started.elapsed(), "index segments merged"),
            Ok(false) => {}
            // Another merge may hold some of the segments; the next large drain tries again.
            Err(error) => tracing::info!(%error, "the index segments were not merged"),
        }
    });
}

/// A pass's turn to write its documents to the index as it stages them (see
/// [`Engine::direct_feed`]): no read back from SQLite, and tantivy's threads index while later
/// files are read. The drain's turn is held throughout, so no drain writes the same documents
/// meanwhile; what the pass wrote stays queued until committed, so a crash loses nothing.
pub(super) struct DirectFeed<'a> {
    _turn: tokio::sync::MutexGuard<'a, ()>,
    index: Arc<TextIndex>,
    /// Written but not yet committed: (document id, its queue seq).
    written: Vec<(i64, i64)>,
    committed: usize,
    failed: bool,
}

/// Replaces `documents` in the index and removes `gone` (uncommitted).
fn write_documents(
    index: &TextIndex,
    documents: &[IndexedDocument],
    gone: &[i64],
) -> std::result::Result<(), crate::index::IndexError> {
    for document in documents {
        index.replace_document(
            document.id as u64,
            &document.workspace,
            &document.path,
            &passages_of(document),
        )?;
    }
    for id in gone {
        index.delete_document(*id as u64)?;
    }
    Ok(())
}

fn passages_of(document: &IndexedDocument) -> Vec<IndexedPassage<'_>> {
    document
        .passages
        .iter()
        .map(|(id, start_line, end_line, text)| IndexedPassage {
            id: *id as u64,
            start_line: *start_line,
            end_line: *end_line,
            text,
        })
        .collect()
}

/// Documents whose version differs, or that only one side holds. (Queued documents are not
/// in `settled`; they are written again anyway.)
fn disagreeing(settled: &HashMap<i64, Stamp>, in_index: &HashMap<i64, Stamp>) -> Vec<i64> {
    let mut ids: HashSet<i64> = settled
        .iter()
        .filter(|(id, stamp)| in_index.get(id) != Some(stamp))
        .map(|(id, _)| *id)
        .collect();
    ids.extend(in_index.keys().filter(|id| !settled.contains_key(id)));
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}
