//! Indexing workspace documents: walk, compare with what is stored, read only what changed,
//! cut into passages, write the full-text index, record metadata.
//!
//! Order for crash safety: a document is marked pending (checksum cleared) before its
//! passages are written, and marked indexed with its checksum only after the index commits.
//! A pass that dies in between leaves pending rows, which the next pass indexes again.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Engine,
    error::{EngineError, Result},
};
use crate::{
    cache::Scope,
    index::{
        Chunk, IndexError, SkipReason, TextIndex, WalkOptions, WalkedFile, chunk_lines,
        estimate_tokens, read_text, walk,
    },
    store::{DocumentRecord, PendingDocument},
    workspace::{Confined, PathError, Workspaces},
};

/// Passage size for the embedding model (all-MiniLM-L6-v2 reads 256 tokens; two are
/// the [CLS] and [SEP] markers).
const PASSAGE_TOKENS: usize = 254;

/// The document side of the engine: roots, the index, limits.
pub struct Documents {
    pub workspaces: Workspaces,
    /// The full-text index, or why it could not be opened.
    pub index: std::result::Result<Arc<TextIndex>, String>,
    pub max_file_bytes: u64,
}

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

/// Result of `index_workspace`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IndexReport {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Files left out, by reason: too_large, binary, not_utf8, outside_root, symlink, unreadable.
    pub skipped: BTreeMap<String, u64>,
    /// Passages written by this pass.
    pub chunks: u64,
    pub duration_ms: u64,
}

/// A file read and cut, ready for the index.
struct Prepared {
    file: WalkedFile,
    checksum: String,
    chunks: Vec<Chunk>,
}

impl Engine {
    pub async fn index_workspace(&self, request: IndexWorkspace) -> Result<IndexReport> {
        let started = Instant::now();
        let index = self.text_index()?;
        let targets = self.index_targets(request.path.as_deref())?;
        let options = WalkOptions {
            max_file_bytes: self.documents().max_file_bytes,
            include: request.include.unwrap_or_default(),
            exclude: request.exclude.unwrap_or_default(),
        };
        let force = request.force.unwrap_or(false);
        let mut report = IndexReport::default();
        for target in targets {
            self.index_target(&index, &target, &options, force, &mut report)
                .await?;
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The (root, start folder) pairs a request names.
    fn index_targets(&self, path: Option<&str>) -> Result<Vec<Confined>> {
        let workspaces = &self.documents().workspaces;
        match path {
            Some(path) => Ok(vec![workspaces.confine("path", path).map_err(path_error)?]),
            None if workspaces.roots().is_empty() => {
                Err(path_error(PathError::NoRoots { field: "path" }))
            }
            None => Ok(workspaces
                .roots()
                .iter()
                .filter_map(|root| workspaces.containing(root))
                .collect()),
        }
    }

    async fn index_target(
        &self,
        index: &Arc<TextIndex>,
        target: &Confined,
        options: &WalkOptions,
        force: bool,
        report: &mut IndexReport,
    ) -> Result<()> {
        let root = target.root.to_string_lossy().into_owned();
        let (walked, skipped) = walk_blocking(target.clone(), options.clone()).await?;
        for (reason, count) in skipped {
            *report
                .skipped
                .entry(reason.as_str().to_owned())
                .or_default() += count;
        }
        let mut stored: HashMap<String, DocumentRecord> = self
            .store()
            .documents_in(&root)
            .await?
            .into_iter()
            .filter(|record| under(&record.path, &target.relative))
            .map(|record| (record.path.clone(), record))
            .collect();
        let mut indexed = Vec::new();
        let mut changed_paths = Vec::new();
        for file in walked {
            let previous = stored.remove(&file.relative);
            if !force
                && previous
                    .as_ref()
                    .is_some_and(|record| unchanged_metadata(record, &file))
            {
                report.unchanged += 1;
                continue;
            }
            match prepare_blocking(file).await? {
                Err((reason, relative)) => {
                    *report
                        .skipped
                        .entry(reason.as_str().to_owned())
                        .or_default() += 1;
                    // A file that turned binary or unreadable leaves the index.
                    if let Some(record) = previous {
                        stored.insert(relative, record);
                    }
                }
                Ok(prepared) => {
                    let same = previous
                        .as_ref()
                        .and_then(|record| record.checksum.as_deref())
                        == Some(prepared.checksum.as_str());
                    if same && !force {
                        let record = previous.expect("a checksum came from a stored record");
                        self.store()
                            .touch_document(
                                record.id,
                                prepared.file.size as i64,
                                prepared.file.modified_ms,
                            )
                            .await?;
                        report.unchanged += 1;
                        continue;
                    }
                    match previous {
                        Some(_) => report.updated += 1,
                        None => report.added += 1,
                    }
                    report.chunks += prepared.chunks.len() as u64;
                    changed_paths.push(prepared.file.relative.clone());
                    indexed.push(self.write_document(index, &root, prepared).await?);
                }
            }
        }
        // What is stored under the target but no longer on disk (or no longer text) leaves.
        let removed: Vec<DocumentRecord> = stored.into_values().collect();
        report.removed += removed.len() as u64;
        changed_paths.extend(removed.iter().map(|record| record.path.clone()));
        let removed_ids: Vec<i64> = removed.iter().map(|record| record.id).collect();
        self.commit_pass(index, &root, indexed, removed_ids, changed_paths)
            .await
    }

    /// Marks the document pending, then writes its passages (uncommitted).
    async fn write_document(
        &self,
        index: &Arc<TextIndex>,
        root: &str,
        prepared: Prepared,
    ) -> Result<(i64, String, i64)> {
        let pending = PendingDocument {
            workspace: root,
            path: &prepared.file.relative,
            size: prepared.file.size as i64,
            modified_ms: prepared.file.modified_ms,
            file_type: file_type(&prepared.file.relative),
            now: crate::model::to_millis(crate::model::now()),
        };
        let id = self.store().mark_document_pending(&pending).await?;
        let chunk_count = prepared.chunks.len() as i64;
        let (index, root, relative) = (
            index.clone(),
            root.to_owned(),
            prepared.file.relative.clone(),
        );
        blocking(move || index.replace_document(id as u64, &root, &relative, &prepared.chunks))
            .await?;
        Ok((id, prepared.checksum, chunk_count))
    }

    /// Deletes what left, commits the index, records checksums, and invalidates the caches
    /// of the workspace and of each changed document.
    async fn commit_pass(
        &self,
        index: &Arc<TextIndex>,
        root: &str,
        indexed: Vec<(i64, String, i64)>,
        removed: Vec<i64>,
        changed_paths: Vec<String>,
    ) -> Result<()> {
        if indexed.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let committing = index.clone();
        let doomed = removed.clone();
        blocking(move || {
            for id in doomed {
                committing.delete_document(id as u64)?;
            }
            committing.commit()
        })
        .await?;
        let now = crate::model::to_millis(crate::model::now());
        self.store().mark_documents_indexed(&indexed, now).await?;
        self.store().delete_documents(&removed).await?;
        let mut scopes = vec![Scope::Workspace(root.to_owned()).name()];
        scopes.extend(
            changed_paths
                .iter()
                .map(|path| Scope::Document(format!("{root}/{path}")).name()),
        );
        let bumped = self.store().bump_generations(&scopes).await?;
        self.after_write(&bumped).await;
        Ok(())
    }

    pub(super) fn text_index(&self) -> Result<Arc<TextIndex>> {
        self.documents().index.clone().map_err(|reason| {
            EngineError::Unavailable(format!("the search index is unavailable: {reason}"))
        })
    }
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
fn file_type(relative: &str) -> &str {
    relative
        .rsplit_once('.')
        .map(|(_, extension)| extension)
        .filter(|extension| !extension.contains('/') && !extension.is_empty())
        .unwrap_or("text")
}

pub(super) fn path_error(error: PathError) -> EngineError {
    let field = match &error {
        PathError::NoRoots { field }
        | PathError::Nul { field }
        | PathError::NotFound { field, .. }
        | PathError::Outside { field, .. } => *field,
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
    let walked =
        tokio::task::spawn_blocking(move || walk(&target.root, &target.absolute, &options))
            .await
            .map_err(join_error)?;
    let walked = walked.map_err(|error| EngineError::invalid("include", error.to_string()))?;
    Ok((walked.files, walked.skipped.into_iter().collect()))
}

/// Reads, checks and cuts a file on a blocking thread; a skip comes back with its path.
async fn prepare_blocking(
    file: WalkedFile,
) -> Result<std::result::Result<Prepared, (SkipReason, String)>> {
    tokio::task::spawn_blocking(move || match read_text(&file.absolute) {
        Err(reason) => Err((reason, file.relative)),
        Ok(text) => {
            let checksum = hex::encode(Sha256::digest(text.as_bytes()));
            let chunks = chunk_lines(&text, PASSAGE_TOKENS, estimate_tokens);
            Ok(Prepared {
                file,
                checksum,
                chunks,
            })
        }
    })
    .await
    .map_err(join_error)
}

async fn blocking(
    work: impl FnOnce() -> std::result::Result<(), IndexError> + Send + 'static,
) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error)?
        .map_err(index_error)
}

pub(super) fn index_error(error: IndexError) -> EngineError {
    match error {
        IndexError::WriterBusy => EngineError::Unavailable(
            "another context-store process holds the index writer; retry when it has finished"
                .into(),
        ),
        other => EngineError::Unavailable(format!("the search index failed: {other}")),
    }
}

pub(super) fn join_error(error: tokio::task::JoinError) -> EngineError {
    EngineError::Unavailable(format!("an indexing task failed: {error}"))
}
