//! Backup folders on disk: the manifest, checksums, durable publication, listing, rotation,
//! and the lock that tells a restore whether a server is using a data directory.
//!
//! A backup is written into `.partial-<name>` and renamed to `<name>` only once its files are
//! complete, checked and synced: a backup interrupted anywhere is never listed, restored or
//! counted by rotation. The search index's last commit is copied into `index/`; a restore puts
//! it back, and the first server reindexes only what differs from the restored database.

use std::{
    fs::{self, File},
    io::{self, Read},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Held shared by every serving process, exclusively by a restore.
const SERVE_LOCK_FILE: &str = "serve.lock";
const PARTIAL_PREFIX: &str = ".partial-";
const FORMAT: u32 = 1;
/// The search index's folder, in a data directory and in a backup.
pub const INDEX_DIR: &str = "index";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} has no valid manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{file} in {backup} does not match its manifest ({reason})")]
    Mismatch {
        backup: PathBuf,
        file: String,
        reason: String,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io {
        action,
        path,
        source,
    }
}

/// What a backup holds, written beside its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    /// The context-store version that wrote it.
    pub app_version: String,
    pub schema_version: i64,
    pub counts: Counts,
    pub files: Vec<FileEntry>,
    /// How the search index comes back: copied, or rebuilt from the restored documents.
    pub index: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub conversations: i64,
    pub messages: i64,
    pub documents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    /// Relative to the backup folder.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// A manifest of `files`; whether the search index comes back copied or rebuilt follows
    /// from whether they hold it.
    pub fn new(schema_version: i64, counts: Counts, files: Vec<FileEntry>) -> Self {
        let mut manifest = Self {
            format: FORMAT,
            created_at: crate::model::now(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            schema_version,
            counts,
            files,
            index: String::new(),
        };
        manifest.index = if manifest.has_index() {
            COPIED
        } else {
            REBUILT
        }
        .into();
        manifest
    }

    /// The names of the index files the backup holds, inside its `index/` folder.
    pub fn index_files(&self) -> impl Iterator<Item = &str> {
        let prefix = format!("{INDEX_DIR}/");
        self.files
            .iter()
            .filter_map(move |file| file.path.strip_prefix(prefix.as_str()))
    }

    /// True when the backup holds a copy of the search index.
    pub fn has_index(&self) -> bool {
        self.index_files().next().is_some()
    }
}

const COPIED: &str = "copied from its last commit; documents that changed since are indexed \
                      again from the restored database when a server starts";
const REBUILT: &str = "rebuilt from the restored documents when a server starts";

/// A complete backup found on disk.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// A backup being written: a hidden folder that becomes the backup on `publish`.
pub struct Draft {
    pub folder: PathBuf,
    final_path: PathBuf,
}

impl Draft {
    /// Starts a backup named after the current time in `backup_dir`.
    pub fn start(backup_dir: &Path) -> Result<Self, BackupError> {
        fs::create_dir_all(backup_dir).map_err(io_error("cannot create", backup_dir))?;
        let stamp = crate::model::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let mut name = stamp.clone();
        let mut suffix = 2;
        while backup_dir.join(&name).exists() {
            name = format!("{stamp}-{suffix}");
            suffix += 1;
        }
        let folder = backup_dir.join(format!("{PARTIAL_PREFIX}{name}-{}", std::process::id()));
        fs::create_dir(&folder).map_err(io_error("cannot create", &folder))?;
        Ok(Self {
            folder,
            final_path: backup_dir.join(name),
        })
    }

    /// Syncs each file, writes the manifest, and renames the folder into place (synced), so
    /// that the backup appears whole or not at all. Returns its path.
    pub fn publish(self, manifest: &Manifest) -> Result<PathBuf, BackupError> {
        for file in &manifest.files {
            sync_file(&self.folder.join(&file.path))?;
        }
        let manifest_path = self.folder.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(manifest).expect("a manifest always serialises");
        fs::write(&manifest_path, text).map_err(io_error("cannot write", &manifest_path))?;
        sync_file(&manifest_path)?;
        sync_dir(&self.folder)?;
        fs::rename(&self.folder, &self.final_path)
            .map_err(io_error("cannot publish", &self.final_path))?;
        if let Some(parent) = self.final_path.parent() {
            sync_dir(parent)?;
        }
        Ok(self.final_path)
    }

    /// Removes an unfinished backup.
    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.folder);
    }
}

/// Complete backups in `backup_dir`, newest first; unfinished or unreadable folders are
/// left out.
pub fn list(backup_dir: &Path) -> Result<Vec<Listed>, BackupError> {
    let entries = match fs::read_dir(backup_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("cannot read", backup_dir)(error)),
    };
    let mut found: Vec<Listed> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|entry| {
            let path = entry.path();
            let manifest = read_manifest(&path).ok()?;
            Some(Listed { path, manifest })
        })
        .collect();
    found.sort_by(|a, b| b.path.cmp(&a.path));
    Ok(found)
}

pub fn read_manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(io_error("cannot read", &path))?;
    serde_json::from_str(&text).map_err(|error| BackupError::Manifest {
        path: backup.to_owned(),
        reason: error.to_string(),
    })
}

/// Deletes the oldest complete backups beyond `keep`; the paths deleted.
pub fn rotate(backup_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let mut removed = remove_abandoned_drafts(backup_dir)?;
    for old in list(backup_dir)?.into_iter().skip(keep.max(1)) {
        fs::remove_dir_all(&old.path).map_err(io_error("cannot remove", &old.path))?;
        removed.push(old.path);
    }
    Ok(removed)
}

/// Deletes the `.partial-` folders of backups whose process is gone (killed midway): they
/// were never listed, and nothing will finish them.
fn remove_abandoned_drafts(backup_dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let entries = fs::read_dir(backup_dir).map_err(io_error("cannot read", backup_dir))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(draft) = name.strip_prefix(PARTIAL_PREFIX) else {
            continue;
        };
        let writer = draft
            .rsplit('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if writer.is_some_and(|pid| !process_alive(pid)) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_error("cannot remove", &path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let outcome = unsafe { libc::kill(pid, 0) };
    outcome == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Checks every file of a backup against its manifest (size and SHA-256).
pub fn verify_files(backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    for file in &manifest.files {
        let entry = describe(backup, &file.path)?;
        let mismatch = |reason: String| BackupError::Mismatch {
            backup: backup.to_owned(),
            file: file.path.clone(),
            reason,
        };
        if entry.bytes != file.bytes {
            return Err(mismatch(format!(
                "{} bytes, expected {}",
                entry.bytes, file.bytes
            )));
        }
        if entry.sha256 != file.sha256 {
            return Err(mismatch("SHA-256 differs".into()));
        }
    }
    Ok(manifest)
}

/// Size and SHA-256 of `folder/relative`.
pub fn describe(folder: &Path, relative: &str) -> Result<FileEntry, BackupError> {
    let path = folder.join(relative);
    let mut file = File::open(&path).map_err(io_error("cannot open", &path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(io_error("cannot read", &path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok(FileEntry {
        path: relative.to_owned(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

pub fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io_error("cannot sync", path))
}

pub fn sync_dir(path: &Path) -> Result<(), BackupError> {
    // Directories are synced by opening them read-only; that is how POSIX makes a rename durable.
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("cannot sync", path))
}

/// Puts a verified backup's database and search index in `data_dir`. The current database
/// (with its WAL and shared-memory files) and the search index move to `replaced-<time>/` in
/// the data directory, never deleted; the backup's files are copied beside them under
/// temporary names, synced, then renamed into place. Returns the folder holding what was
/// replaced, if any.
pub fn restore_into(
    backup: &Path,
    manifest: &Manifest,
    data_dir: &Path,
) -> Result<Option<PathBuf>, BackupError> {
    let database = crate::store::DATABASE_FILE;
    fs::create_dir_all(data_dir).map_err(io_error("cannot create", data_dir))?;
    let staged = data_dir.join(format!(".restoring-{database}"));
    fs::copy(backup.join(database), &staged).map_err(io_error("cannot copy to", &staged))?;
    sync_file(&staged)?;
    let staged_index = data_dir.join(format!(".restoring-{INDEX_DIR}"));
    let index_files: Vec<&str> = manifest.index_files().collect();
    if !index_files.is_empty() {
        stage_index(backup, &index_files, &staged_index)?;
    }
    let stamp = crate::model::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = data_dir.join(format!("replaced-{stamp}"));
    let mut moved = false;
    for name in [
        database.to_owned(),
        format!("{database}-wal"),
        format!("{database}-shm"),
        INDEX_DIR.to_owned(),
    ] {
        let current = data_dir.join(&name);
        if current.exists() {
            fs::create_dir_all(&aside).map_err(io_error("cannot create", &aside))?;
            fs::rename(&current, aside.join(&name))
                .map_err(io_error("cannot move aside", &current))?;
            moved = true;
        }
    }
    fs::rename(&staged, data_dir.join(database))
        .map_err(io_error("cannot put in place", &data_dir.join(database)))?;
    if !index_files.is_empty() {
        let index = data_dir.join(INDEX_DIR);
        fs::rename(&staged_index, &index).map_err(io_error("cannot put in place", &index))?;
    }
    sync_dir(data_dir)?;
    Ok(moved.then_some(aside))
}

/// Copies a backup's index files into `staged` (emptied first), synced.
fn stage_index(backup: &Path, files: &[&str], staged: &Path) -> Result<(), BackupError> {
    if staged.exists() {
        fs::remove_dir_all(staged).map_err(io_error("cannot clear", staged))?;
    }
    fs::create_dir_all(staged).map_err(io_error("cannot create", staged))?;
    for name in files {
        let target = staged.join(name);
        fs::copy(backup.join(INDEX_DIR).join(name), &target)
            .map_err(io_error("cannot copy to", &target))?;
        sync_file(&target)?;
    }
    sync_dir(staged)
}

/// A lock on `<data-dir>/serve.lock`: shared while a server runs, exclusive for a restore.
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Taken by every serving process for its lifetime (released by the OS if it dies).
    pub fn shared(data_dir: &Path) -> Result<Self, BackupError> {
        let file = open_lock(data_dir)?;
        let path = data_dir.join(SERVE_LOCK_FILE);
        file.lock_shared().map_err(io_error("cannot lock", &path))?;
        Ok(Self { _file: file })
    }

    /// Taken by a restore; None while any server holds the directory.
    pub fn try_exclusive(data_dir: &Path) -> Result<Option<Self>, BackupError> {
        let file = open_lock(data_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(error)) => Err(io_error(
                "cannot lock",
                &data_dir.join(SERVE_LOCK_FILE),
            )(error)),
        }
    }
}

fn open_lock(data_dir: &Path) -> Result<File, BackupError> {
    fs::create_dir_all(data_dir).map_err(io_error("cannot create", data_dir))?;
    let path = data_dir.join(SERVE_LOCK_FILE);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error("cannot open", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(folder: &Path) -> Manifest {
        fs::write(folder.join("data.db"), b"some bytes").unwrap();
        let entry = describe(folder, "data.db").unwrap();
        let counts = Counts {
            conversations: 1,
            messages: 2,
            documents: 3,
        };
        Manifest::new(5, counts, vec![entry])
    }

    #[test]
    fn a_published_backup_is_listed_verified_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let mut published = Vec::new();
        for _ in 0..3 {
            let draft = Draft::start(dir.path()).unwrap();
            let manifest = manifest_for(&draft.folder);
            published.push(draft.publish(&manifest).unwrap());
        }
        // An interrupted one is never listed.
        let unfinished = Draft::start(dir.path()).unwrap();
        manifest_for(&unfinished.folder);
        let listed = list(dir.path()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].path, published[2]);
        verify_files(&published[0]).unwrap();
        fs::write(published[0].join("data.db"), b"other bytes").unwrap();
        assert!(verify_files(&published[0]).is_err());
        let removed = rotate(dir.path(), 2).unwrap();
        assert_eq!(removed, [published[0].clone()]);
        assert_eq!(list(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_restore_lock_waits_for_no_server() {
        let dir = tempfile::tempdir().unwrap();
        let serving = ServeLock::shared(dir.path()).unwrap();
        assert!(ServeLock::try_exclusive(dir.path()).unwrap().is_none());
        drop(serving);
        assert!(ServeLock::try_exclusive(dir.path()).unwrap().is_some());
    }
}
