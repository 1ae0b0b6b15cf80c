//! `create_backup` and `list_backups`: consistent online snapshots of the database with a
//! manifest, checked before they are published, rotated after.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Engine,
    error::{EngineError, Result},
};
use crate::{
    backup::{self, BackupError, Counts, Draft, INDEX_DIR, Manifest},
    store::{DATABASE_FILE, inspect_file},
};

/// Where backups go and how many are kept.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub dir: PathBuf,
    pub keep: usize,
}

/// Arguments of `create_backup` (none).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {}

/// Result of `create_backup`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupCreated {
    /// The backup's folder.
    pub path: String,
    pub manifest: Manifest,
    /// Older backups deleted to keep the configured number.
    pub rotated_out: Vec<String>,
}

/// Arguments of `list_backups` (none).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBackups {}

/// One complete backup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupEntry {
    pub path: String,
    pub manifest: Manifest,
}

/// Result of `list_backups`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupList {
    /// The folder backups are written to.
    pub backup_dir: String,
    /// Newest first; unfinished backups are never listed.
    pub backups: Vec<BackupEntry>,
}

impl Engine {
    /// Snapshots the database (`VACUUM INTO`, consistent while other processes write),
    /// checks the copy's integrity and counts, and publishes it with its manifest.
    pub async fn create_backup(&self, _request: CreateBackup) -> Result<BackupCreated> {
        let settings = self.backup_settings().clone();
        let dir = settings.dir.clone();
        let draft = blocking(move || Draft::start(&dir)).await?;
        match self.fill_backup(&draft).await {
            Ok(manifest) => {
                let published = {
                    let manifest = manifest.clone();
                    blocking(move || draft.publish(&manifest)).await?
                };
                let (dir, keep) = (settings.dir, settings.keep);
                let rotated = blocking(move || backup::rotate(&dir, keep)).await?;
                tracing::info!(path = %published.display(), "backup written");
                Ok(BackupCreated {
                    path: published.to_string_lossy().into_owned(),
                    manifest,
                    rotated_out: rotated
                        .iter()
                        .map(|path| path.to_string_lossy().into_owned())
                        .collect(),
                })
            }
            Err(error) => {
                draft.abandon();
                Err(error)
            }
        }
    }

    async fn fill_backup(&self, draft: &Draft) -> Result<Manifest> {
        let copy = draft.folder.join(DATABASE_FILE);
        self.store().backup_into(&copy).await?;
        let report = inspect_file(&copy).await?;
        if !report.is_ok() {
            return Err(EngineError::Unavailable(format!(
                "the backup copy failed its integrity check ({}); the live database may be \
                 damaged: run `context-store verify`",
                report.integrity
            )));
        }
        let index_files = self.copy_index(draft).await;
        let folder = draft.folder.clone();
        let entries = blocking(move || {
            let mut entries = vec![backup::describe(&folder, DATABASE_FILE)?];
            for name in index_files.unwrap_or_default() {
                entries.push(backup::describe(&folder, &format!("{INDEX_DIR}/{name}"))?);
            }
            Ok(entries)
        })
        .await?;
        let counts = Counts {
            conversations: report.conversations,
            messages: report.messages,
            documents: report.documents,
        };
        Ok(Manifest::new(report.schema_version, counts, entries))
    }

    /// Copies the search index's last commit beside the database copy, taken after it: a
    /// restore then searches at once, and reindexes only the documents whose version differs
    /// from the restored database (see `index_sync`). Without an index (it failed to open,
    /// or the copy failed) the backup is still good: the index is rebuilt from the database.
    async fn copy_index(&self, draft: &Draft) -> Option<Vec<String>> {
        let index = self.text_index().ok()?;
        let into = draft.folder.join(INDEX_DIR);
        match super::documents::blocking(move || index.copy_committed(&into)).await {
            Ok(files) => Some(files),
            Err(error) => {
                tracing::warn!(%error, "the backup leaves out the search index; a restore rebuilds it");
                None
            }
        }
    }

    pub async fn list_backups(&self, _request: ListBackups) -> Result<BackupList> {
        let dir = self.backup_settings().dir.clone();
        let listed = {
            let dir = dir.clone();
            blocking(move || backup::list(&dir)).await?
        };
        Ok(BackupList {
            backup_dir: dir.to_string_lossy().into_owned(),
            backups: listed
                .into_iter()
                .map(|listed| BackupEntry {
                    path: listed.path.to_string_lossy().into_owned(),
                    manifest: listed.manifest,
                })
                .collect(),
        })
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, BackupError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(super::documents::join_error)?
        .map_err(|error| EngineError::Unavailable(crate::error_chain(&error)))
}
