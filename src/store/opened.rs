//! Which file the pool has open: the device and inode of the database file when it was
//! opened, compared with the file at its path before and after each write.
//!
//! SQLite keeps writing to an open file that was deleted, moved aside or replaced at its path,
//! and nobody reads those writes again: the next start opens whatever is at the path. So a
//! write is acknowledged only while the path still names the file that was opened.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::error::StoreError;

/// A file by device and inode: the same value for every name of one file, and no other file
/// can take the inode while the pool holds it open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    /// The identity of the file at `path` now, or the reason it has none.
    pub fn at(path: &Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

/// The database file as opened, and its path.
#[derive(Debug)]
pub struct OpenedFile {
    path: PathBuf,
    /// `None` when the file could not be stat'ed at open (then nothing is compared).
    identity: Option<FileIdentity>,
}

impl OpenedFile {
    /// Records the file at `path`, just after the pool opened it.
    pub fn record(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            identity: FileIdentity::at(path).ok(),
        }
    }

    /// Fails when the path no longer names the file that was opened.
    pub fn refuse_if_detached(&self) -> Result<(), StoreError> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        let found = match FileIdentity::at(&self.path) {
            Ok(found) if found == opened => return Ok(()),
            Ok(_) => "another file is at its path".to_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                "no file is at its path".to_owned()
            }
            Err(error) => format!("its path cannot be checked: {error}"),
        };
        Err(StoreError::Detached {
            path: self.path.clone(),
            found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_passes_and_a_replaced_or_removed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.db");
        std::fs::write(&path, "one").unwrap();
        let opened = OpenedFile::record(&path);
        assert!(opened.refuse_if_detached().is_ok());

        std::fs::rename(&path, dir.path().join("aside.db")).unwrap();
        std::fs::write(&path, "two").unwrap();
        let replaced = opened.refuse_if_detached().unwrap_err().to_string();
        assert!(
            replaced.contains("another file is at its path"),
            "{replaced}"
        );

        std::fs::remove_file(&path).unwrap();
        let removed = opened.refuse_if_detached().unwrap_err().to_string();
        assert!(removed.contains("no file is at its path"), "{removed}");
    }
}
