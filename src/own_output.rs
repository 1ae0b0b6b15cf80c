//! The file this process writes its log to, so that it is never taken for workspace content.
//!
//! A server started with `2>>log` inside a watched root would otherwise index its own log,
//! and every pass would write a line, raise an event and start the next pass.

use std::{
    fs::File,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::Path,
    sync::OnceLock,
};

/// A file by device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// Standard error's file, when it is a regular file; looked up once.
fn stderr_file() -> Option<FileIdentity> {
    static STDERR_FILE: OnceLock<Option<FileIdentity>> = OnceLock::new();
    *STDERR_FILE.get_or_init(|| {
        let duplicate = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        let metadata = File::from(duplicate).metadata().ok()?;
        metadata.is_file().then(|| FileIdentity::of(&metadata))
    })
}

/// Whether `metadata` is of a file this process writes.
pub fn is_own_output(metadata: &std::fs::Metadata) -> bool {
    stderr_file().is_some_and(|own| own == FileIdentity::of(metadata))
}

/// Whether the file at `path` is one this process writes (false when it cannot be read).
pub fn is_own_output_path(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| is_own_output(&metadata))
}
