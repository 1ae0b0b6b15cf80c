//! Indexing workspace documents: walk, compare with what is stored, read only what changed,
//! cut into passages, and stage them in SQLite, which is the source of truth.
//!
//! Staging records the document, its passages and a row in the full-text index's queue in
//! one transaction; the process that holds tantivy's writer drains the queue (see
//! `index_sync`). So every process can index, a crash at any point leaves work queued
//! rather than lost, and no caller ever meets tantivy's writer lock.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Engine,
    activity::IndexActivity,
    error::{EngineError, Result},
    index_sync::DirectFeed,
};
use crate::{
    cache::Scope,
    index::{
        Chunk, IndexError, Selection, SkipReason, TextIndex, WalkOptions, WalkedFile, chunk_lines,
        estimate_tokens, read_text, walk,
    },
    store::{DocumentRecord, IndexedDocument, NewPassage, StagedDocument, StagedIds, StoreError},
    workspace::{Confined, PathError, Workspaces},
};

/// Passage size for the embedding model (all-MiniLM-L6-v2 reads 256 tokens; two are
/// the [CLS] and [SEP] markers).
const PASSAGE_TOKENS: usize = 254;
/// Files read and cut at once (blocking threads); two cores, and reads overlap with cutting.
const PARALLEL_READS: usize = 4;
/// Documents staged per SQLite transaction.
const STAGE_BATCH_FILES: usize = 64;
/// Past this many changed paths in one batch, a watcher's pass covers the whole root
/// (unchanged files cost a metadata read).
const MAX_CHANGE_GLOBS: usize = 256;
/// Progress is reported after this many files.
const PROGRESS_EVERY: u64 = 50;

/// The document side of the engine: roots, the index, limits.
pub struct Documents {
    pub workspaces: Workspaces,
    /// The full-text index, or why it could not be opened.
    pub index: std::result::Result<Arc<TextIndex>, String>,
    pub max_file_bytes: u64,
    /// One drain of the index queue at a time in this process.
    pub drain: tokio::sync::Mutex<()>,
    /// Passes of this process still staging; the background drain waits for them, so that
    /// a pass is written to the index in a few large commits rather than many small ones.
    pub staging: std::sync::atomic::AtomicUsize,
    /// Passes of `index_workspace` running in this process.
    pub activity: IndexActivity,
}

/// Counts a pass as staging while it lives.
struct StagingGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> StagingGuard<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Called with (files done, files in all) while a pass runs.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Arguments of `index_workspace`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexWorkspace {
    /// A configured workspace root or a folder inside one; all roots when absent.
    pub path: Option<String>,
    /// Only files matching these globs (relative to the root), e.g. `**/*.py`.
    pub include: Option<Vec<String>>,
    /// Leave out files matching these globs.
    pub exclude: Option<Vec<String>>,
    /// Re-read and re-index every file even when unchanged.
    pub force: Option<bool>,
}

/// Arguments of `index_document`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexDocument {
    /// A file inside a configured workspace root (absolute, or relative to a root). A file
    /// that no longer exists leaves the index.
    pub path: String,
}

/// Result of `index_workspace` and `index_document`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IndexReport {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Files left out, by reason: too_large, binary, not_utf8, not_utf8_name, outside_root,
    /// symlink, hard_link, unreadable, unstorable, own_output.
    pub skipped: BTreeMap<String, u64>,
    /// Passages written by this pass.
    pub chunks: u64,
    /// Bytes of the files this pass indexed (added or updated).
    pub bytes: u64,
    /// Files of this pass still queued for the full-text index when the call returned (another
    /// process holds the index writer and had not caught up); they are indexed, not lost.
    pub pending: u64,
    pub duration_ms: u64,
    /// Configured workspace roots that do not exist yet; each is used once it appears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roots: Vec<String>,
}

impl IndexReport {
    fn skip(&mut self, reason: SkipReason, count: u64) {
        *self.skipped.entry(reason.as_str().to_owned()).or_default() += count;
    }

    /// Takes back a file counted as added or updated whose rows the database refused.
    fn unstorable(&mut self, prepared: &Prepared, error: &EngineError) {
        tracing::warn!(
            path = %prepared.file.relative,
            error = %crate::error_chain(error),
            "a file's rows were refused; the pass goes on without it"
        );
        match prepared.previous {
            Some(_) => self.updated -= 1,
            None => self.added -= 1,
        }
        self.chunks -= prepared.chunks.len() as u64;
        self.bytes -= prepared.file.size;
        self.skip(SkipReason::Unstorable, 1);
    }
}

/// A file read and cut, ready to stage.
struct Prepared {
    file: WalkedFile,
    checksum: String,
    chunks: Vec<Chunk>,
    /// The stored record when the file was indexed before.
    previous: Option<DocumentRecord>,
}

/// What one pass over a target changed.
#[derive(Default)]
struct Pass {
    staged: Vec<i64>,
    changed_paths: Vec<String>,
}

impl Engine {
    pub async fn index_workspace(
        &self,
        request: IndexWorkspace,
        progress: Option<Progress>,
    ) -> Result<IndexReport> {
        let started = Instant::now();
        self.text_index()?;
        let _running = self.documents().activity.start();
        let progress = Some(self.tracked(progress));
        let request_all_roots = request.path.is_none();
        let targets = self.index_targets(request.path.as_deref())?;
        let options = WalkOptions {
            max_file_bytes: self.documents().max_file_bytes,
            include: request.include.unwrap_or_default(),
            exclude: request.exclude.unwrap_or_default(),
        };
        let force = request.force.unwrap_or(false);
        let mut report = IndexReport::default();
        let mut staged = Vec::new();
        for target in targets {
            let pass = self
                .index_target(&target, &options, force, progress.as_ref(), &mut report)
                .await?;
            staged.extend(pass.staged);
        }
        report.pending = self.sync_text_index(&staged).await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        if request_all_roots {
            report.missing_roots = self.missing_roots();
        }
        Ok(report)
    }

    /// `progress`, also recorded for `index_status`.
    fn tracked(&self, progress: Option<Progress>) -> Progress {
        let engine = self.clone();
        Arc::new(move |done, total| {
            engine.documents().activity.progress(done, total);
            if let Some(forward) = &progress {
                forward(done, total);
            }
        })
    }

    /// Indexes one file, or removes it from the index when it no longer exists.
    pub async fn index_document(&self, request: IndexDocument) -> Result<IndexReport> {
        let started = Instant::now();
        self.text_index()?;
        let workspaces = &self.documents().workspaces;
        let target = match workspaces.confine("path", &request.path) {
            Ok(target) if target.absolute.is_dir() => {
                return Err(EngineError::invalid(
                    "path",
                    "is a folder; index folders with index_workspace",
                ));
            }
            Ok(target) => target,
            Err(PathError::NotFound { .. }) => self.vanished_file(&request.path).await?,
            Err(other) => return Err(path_error(other)),
        };
        let options = WalkOptions {
            max_file_bytes: self.documents().max_file_bytes,
            include: Vec::new(),
            exclude: Vec::new(),
        };
        let mut report = IndexReport::default();
        let pass = self
            .index_target(&target, &options, false, None, &mut report)
            .await?;
        report.pending = self.sync_text_index(&pass.staged).await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Re-indexes what changed on disk at `paths` (absolute; files or folders, present or
    /// gone), as a watcher reports them. Paths outside the roots, hidden or ignored are left
    /// alone, as a full pass would leave them.
    pub async fn index_changes(&self, paths: &[std::path::PathBuf]) -> Result<IndexReport> {
        let started = Instant::now();
        self.text_index()?;
        let workspaces = &self.documents().workspaces;
        let roots = workspaces.roots();
        // Per root, the changed paths; an empty list means the root itself changed.
        let mut by_root: BTreeMap<std::path::PathBuf, Vec<String>> = BTreeMap::new();
        let mut whole_roots = Vec::new();
        for path in paths {
            // Real paths where they exist; a vanished path is matched by its spelling.
            let real = path.canonicalize().unwrap_or_else(|_| path.clone());
            let Some(root) = roots.iter().find(|root| real.starts_with(root)) else {
                continue;
            };
            let relative = crate::workspace::slash_path(real.strip_prefix(root).unwrap_or(&real));
            let globs = by_root.entry(root.clone()).or_default();
            match relative.is_empty() {
                true => whole_roots.push(root.clone()),
                false => globs.push(crate::index::exact_glob(&relative)),
            }
        }
        for root in whole_roots {
            by_root.insert(root, Vec::new());
        }
        let mut report = IndexReport::default();
        let mut staged = Vec::new();
        for (root, mut include) in by_root {
            if include.len() > MAX_CHANGE_GLOBS {
                include.clear();
            }
            let target = workspaces
                .containing(&root)
                .expect("a configured root contains itself");
            let options = WalkOptions {
                max_file_bytes: self.documents().max_file_bytes,
                include,
                exclude: Vec::new(),
            };
            let pass = self
                .index_target(&target, &options, false, None, &mut report)
                .await?;
            staged.extend(pass.staged);
        }
        report.pending = self.sync_text_index(&staged).await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// A path that no longer exists, as the indexed document it was: its folder must still
    /// be inside a root, and the document must be stored.
    async fn vanished_file(&self, path: &str) -> Result<Confined> {
        let not_found =
            || EngineError::not_found("path", format!("no file or indexed document {path}"));
        let (folder, name) = path.rsplit_once('/').ok_or_else(not_found)?;
        let folder = if folder.is_empty() { "/" } else { folder };
        let parent = self
            .documents()
            .workspaces
            .confine("path", folder)
            .map_err(|_| not_found())?;
        let relative = match parent.relative.as_str() {
            "" => name.to_owned(),
            folder => format!("{folder}/{name}"),
        };
        let root = parent.root.to_string_lossy().into_owned();
        let stored = self.store().documents_in(&root).await?;
        if !stored.iter().any(|record| record.path == relative) {
            return Err(not_found());
        }
        Ok(Confined {
            absolute: parent.absolute.join(name),
            root: parent.root,
            relative,
        })
    }

    /// The (root, start folder) pairs a request names.
    fn index_targets(&self, path: Option<&str>) -> Result<Vec<Confined>> {
        let workspaces = &self.documents().workspaces;
        match path {
            Some(path) => Ok(vec![workspaces.confine("path", path).map_err(path_error)?]),
            None if !workspaces.is_configured() => {
                Err(path_error(PathError::NoRoots { field: "path" }))
            }
            None => {
                let roots = workspaces.roots();
                if let (true, Some(missing)) = (roots.is_empty(), workspaces.missing().first()) {
                    return Err(path_error(PathError::RootMissing {
                        field: "path",
                        root: missing.display().to_string(),
                    }));
                }
                Ok(roots
                    .iter()
                    .filter_map(|root| workspaces.containing(root))
                    .collect())
            }
        }
    }

    async fn index_target(
        &self,
        target: &Confined,
        options: &WalkOptions,
        force: bool,
        progress: Option<&Progress>,
        report: &mut IndexReport,
    ) -> Result<Pass> {
        let _staging = StagingGuard::enter(&self.documents().staging);
        let mut feed = self.direct_feed().await;
        let root = target.root.to_string_lossy().into_owned();
        let (walked, skipped) = walk_blocking(target.clone(), options.clone()).await?;
        for (reason, count) in skipped {
            report.skip(reason, count);
        }
        let selection = Selection::new(options)
            .map_err(|error| EngineError::invalid("include", error.to_string()))?;
        let mut stored: HashMap<String, DocumentRecord> = self
            .store()
            .documents_in(&root)
            .await?
            .into_iter()
            .filter(|record| {
                under(&record.path, &target.relative) && selection.admits(&record.path)
            })
            .map(|record| (record.path.clone(), record))
            .collect();
        let total = walked.len() as u64;
        let mut to_read = Vec::new();
        for file in walked {
            let previous = stored.remove(&file.relative);
            match previous {
                Some(record) if !force && unchanged_metadata(&record, &file) => {
                    report.unchanged += 1
                }
                previous => to_read.push((file, previous)),
            }
        }
        let mut pass = Pass::default();
        let mut batch: Vec<Prepared> = Vec::new();
        let mut done = report.unchanged;
        let mut prepared = futures::stream::iter(to_read)
            .map(|(file, previous)| {
                let root = target.root.clone();
                prepare_blocking(root, file, previous, self.documents().max_file_bytes)
            })
            .buffered(PARALLEL_READS);
        while let Some(outcome) = prepared.next().await {
            done += 1;
            if let Some(report_progress) = progress
                && done.is_multiple_of(PROGRESS_EVERY)
                && done < total
            {
                report_progress(done, total);
            }
            match outcome? {
                Err((reason, previous)) => {
                    report.skip(reason, 1);
                    // A file that turned binary or unreadable leaves the index.
                    if let Some(record) = previous {
                        stored.insert(record.path.clone(), record);
                    }
                }
                Ok(file) => {
                    let previous_checksum = file
                        .previous
                        .as_ref()
                        .and_then(|record| record.checksum.as_deref());
                    if !force && previous_checksum == Some(file.checksum.as_str()) {
                        let record = file
                            .previous
                            .as_ref()
                            .expect("a checksum came from a record");
                        self.store()
                            .touch_document(record.id, file.file.size as i64, file.file.modified_ms)
                            .await?;
                        report.unchanged += 1;
                        continue;
                    }
                    match file.previous {
                        Some(_) => report.updated += 1,
                        None => report.added += 1,
                    }
                    report.chunks += file.chunks.len() as u64;
                    report.bytes += file.file.size;
                    batch.push(file);
                    if batch.len() >= STAGE_BATCH_FILES {
                        let batch = std::mem::take(&mut batch);
                        self.stage(&root, batch, &mut pass, feed.as_mut(), report)
                            .await?;
                    }
                }
            }
        }
        self.stage(&root, batch, &mut pass, feed.as_mut(), report)
            .await?;
        tracing::debug!(files = total, "pass staged");
        if let Some(report_progress) = progress {
            report_progress(total, total);
        }
        // What is stored under the target but no longer on disk (or no longer text) leaves.
        let removed: Vec<DocumentRecord> = stored.into_values().collect();
        report.removed += removed.len() as u64;
        if !removed.is_empty() {
            let ids: Vec<i64> = removed.iter().map(|record| record.id).collect();
            self.store().delete_documents(&ids).await?;
            pass.staged.extend(ids);
            pass.changed_paths
                .extend(removed.into_iter().map(|record| record.path));
        }
        if let Some(feed) = feed {
            self.finish_feed(feed, &root).await;
        }
        self.announce(&root, &pass).await?;
        Ok(pass)
    }

    /// Records a batch of read files with their passages, queued for the index, and writes
    /// them to the index through `feed` when the pass has one. A batch refused for one
    /// file's rows is staged again file by file, so that the file alone is left out.
    async fn stage(
        &self,
        root: &str,
        batch: Vec<Prepared>,
        pass: &mut Pass,
        mut feed: Option<&mut DirectFeed<'_>>,
        report: &mut IndexReport,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.record(root, &batch).await {
            Ok(staged) => {
                self.staged(root, batch, staged, pass, feed).await;
                Ok(())
            }
            Err(error) if refused_rows(&error) => {
                for prepared in batch {
                    let single = std::slice::from_ref(&prepared);
                    match self.record(root, single).await {
                        Ok(staged) => {
                            self.staged(root, vec![prepared], staged, pass, feed.as_deref_mut())
                                .await
                        }
                        Err(error) if refused_rows(&error) => report.unstorable(&prepared, &error),
                        Err(error) => return Err(error),
                    }
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Writes the rows of a batch in one transaction.
    async fn record(&self, root: &str, batch: &[Prepared]) -> Result<Vec<StagedIds>> {
        let documents: Vec<StagedDocument<'_>> = batch
            .iter()
            .map(|prepared| StagedDocument {
                workspace: root,
                path: &prepared.file.relative,
                size: prepared.file.size as i64,
                modified_ms: prepared.file.modified_ms,
                file_type: file_type(&prepared.file.relative),
                checksum: &prepared.checksum,
                passages: prepared
                    .chunks
                    .iter()
                    .map(|chunk| NewPassage {
                        start_line: chunk.start_line,
                        end_line: chunk.end_line,
                        text: &chunk.text,
                    })
                    .collect(),
            })
            .collect();
        let now = crate::model::to_millis(crate::model::now());
        Ok(self.store().stage_documents(&documents, now).await?)
    }

    /// Notes a recorded batch in the pass, and feeds it to the index when the pass can.
    async fn staged(
        &self,
        root: &str,
        batch: Vec<Prepared>,
        staged: Vec<StagedIds>,
        pass: &mut Pass,
        feed: Option<&mut DirectFeed<'_>>,
    ) {
        pass.staged.extend(staged.iter().map(|ids| ids.document));
        pass.changed_paths
            .extend(batch.iter().map(|prepared| prepared.file.relative.clone()));
        if let Some(feed) = feed {
            let written = batch
                .into_iter()
                .zip(staged)
                .map(|(prepared, ids)| (indexed(root, prepared, &ids), ids.seq))
                .collect();
            self.feed(feed, root, written).await;
        }
    }

    /// Raises `workspace_change` and a `document_change` per changed file, and wakes the
    /// embedding worker.
    async fn announce(&self, root: &str, pass: &Pass) -> Result<()> {
        if pass.staged.is_empty() {
            return Ok(());
        }
        let mut scopes = vec![Scope::Workspace(root.to_owned()).name()];
        scopes.extend(
            pass.changed_paths
                .iter()
                .map(|path| Scope::Document(format!("{root}/{path}")).name()),
        );
        let bumped = self.store().bump_generations(&scopes).await?;
        self.after_write(&bumped).await;
        self.wake_embedder();
        Ok(())
    }

    pub(super) fn text_index(&self) -> Result<Arc<TextIndex>> {
        self.documents().index.clone().map_err(|reason| {
            EngineError::Unavailable(format!("the search index is unavailable: {reason}"))
        })
    }
}

/// A staged file as the index takes it, with the ids staging gave its passages.
fn indexed(root: &str, prepared: Prepared, ids: &StagedIds) -> IndexedDocument {
    IndexedDocument {
        id: ids.document,
        workspace: root.to_owned(),
        path: prepared.file.relative,
        passages: ids
            .passages
            .iter()
            .zip(prepared.chunks)
            .map(|(id, chunk)| (*id, chunk.start_line, chunk.end_line, chunk.text))
            .collect(),
    }
}

/// Whether the database refused a batch for what is in its rows (a constraint, a value it
/// cannot take) rather than for a state of the file or the disk that every batch would meet.
fn refused_rows(error: &EngineError) -> bool {
    matches!(error, EngineError::Store(StoreError::Database(_)))
}

fn under(path: &str, folder: &str) -> bool {
    folder.is_empty() || path == folder || path.starts_with(&format!("{folder}/"))
}

fn unchanged_metadata(record: &DocumentRecord, file: &WalkedFile) -> bool {
    record.checksum.is_some()
        && record.size == file.size as i64
        && record.modified_ms == file.modified_ms
}

/// The file's extension, lowercased, or `text`.
fn file_type(relative: &str) -> String {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    name.rsplit_once('.')
        .map(|(_, extension)| extension)
        .filter(|extension| !extension.is_empty())
        .unwrap_or("text")
        .to_lowercase()
}

pub(super) fn path_error(error: PathError) -> EngineError {
    let field = match &error {
        PathError::NoRoots { field }
        | PathError::Nul { field }
        | PathError::NotFound { field, .. }
        | PathError::Outside { field, .. }
        | PathError::RootMissing { field, .. }
        | PathError::UnknownRoot { field, .. } => *field,
        PathError::BadRoot { .. } => "path",
    };
    let message = error.to_string();
    let reason = message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&message)
        .to_owned();
    EngineError::invalid(field, reason)
}

async fn walk_blocking(
    target: Confined,
    options: WalkOptions,
) -> Result<(Vec<WalkedFile>, Vec<(SkipReason, u64)>)> {
    // A file that vanished (index_document of a deleted file) walks to nothing.
    if !target.absolute.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let walked =
        tokio::task::spawn_blocking(move || walk(&target.root, &target.absolute, &options))
            .await
            .map_err(join_error)?;
    let walked = walked.map_err(|error| EngineError::invalid("include", error.to_string()))?;
    Ok((walked.files, walked.skipped.into_iter().collect()))
}

/// A skipped file: why, and its stored record if it had one.
type Skipped = (SkipReason, Option<DocumentRecord>);

/// Reads (beneath its root), checks and cuts a file on a blocking thread.
async fn prepare_blocking(
    root: std::path::PathBuf,
    file: WalkedFile,
    previous: Option<DocumentRecord>,
    max_bytes: u64,
) -> Result<std::result::Result<Prepared, Skipped>> {
    tokio::task::spawn_blocking(move || match read_text(&root, &file.absolute, max_bytes) {
        Err(reason) => Err((reason, previous)),
        Ok(text) => {
            let checksum = hex::encode(Sha256::digest(text.as_bytes()));
            let chunks = chunk_lines(&text, PASSAGE_TOKENS, estimate_tokens);
            Ok(Prepared {
                file,
                checksum,
                chunks,
                previous,
            })
        }
    })
    .await
    .map_err(join_error)
}

/// Runs index work on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, IndexError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error)?
        .map_err(index_error)
}

pub(super) fn index_error(error: IndexError) -> EngineError {
    EngineError::Unavailable(format!("the search index failed: {error}"))
}

pub(super) fn join_error(error: tokio::task::JoinError) -> EngineError {
    EngineError::Unavailable(format!("an indexing task failed: {error}"))
}
