//! Walking a workspace root: which files are candidates for indexing, and why others are not.
//!
//! The walk reads metadata only (size, modified time), so that an unchanged file is never
//! opened; content checks (binary, not UTF-8) happen in [`read_text`] when a file is read.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;

use crate::workspace::{open_beneath, slash_path};

/// Bytes looked at for a NUL to call a file binary, as git does.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Why a file was not indexed; counted per reason in tool results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    TooLarge,
    Binary,
    NotUtf8,
    /// A path that is not UTF-8: stored paths are text, and a lossy name could stand for
    /// several files.
    NotUtf8Name,
    OutsideRoot,
    Symlink,
    /// A file with more than one hard link: another name, possibly outside the root, may
    /// be the real one, so it cannot be shown to belong to the workspace.
    HardLink,
    Unreadable,
    /// The database refused the file's rows; the rest of the pass went on.
    Unstorable,
    /// The file this process logs to: indexing it would index the log of the indexing.
    OwnOutput,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLarge => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::NotUtf8 => "not_utf8",
            SkipReason::NotUtf8Name => "not_utf8_name",
            SkipReason::OutsideRoot => "outside_root",
            SkipReason::Symlink => "symlink",
            SkipReason::HardLink => "hard_link",
            SkipReason::Unreadable => "unreadable",
            SkipReason::Unstorable => "unstorable",
            SkipReason::OwnOutput => "own_output",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files larger than this are skipped (`too_large`).
    pub max_file_bytes: u64,
    /// Only paths matching one of these globs (relative to the root); all when empty.
    pub include: Vec<String>,
    /// Paths matching these globs are left out.
    pub exclude: Vec<String>,
}

/// A candidate file, by metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    /// Relative to the root, `/`-separated.
    pub relative: String,
    pub absolute: PathBuf,
    pub size: u64,
    /// Modified time, epoch milliseconds.
    pub modified_ms: i64,
}

#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<WalkedFile>,
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl Walk {
    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid glob {glob:?}: {reason}")]
pub struct GlobError {
    pub glob: String,
    pub reason: String,
}

/// Lists the files under `start` (a canonical folder inside the canonical `root`), honouring
/// `.gitignore`, leaving out hidden files, and never following a path out of the root.
pub fn walk(root: &Path, start: &Path, options: &WalkOptions) -> Result<Walk, GlobError> {
    let mut builder = WalkBuilder::new(start);
    builder
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .follow_links(false)
        .require_git(false);
    // The walker's own rules (ignore files, hidden) prune first; the pass's globs only
    // narrow what is left, so an include can never reach an ignored or hidden file.
    let selection = std::sync::Arc::new(Selection::new(options)?);
    let pruning = (selection.clone(), root.to_owned());
    builder.filter_entry(move |entry| {
        let (selection, root) = &pruning;
        !entry.file_type().is_some_and(|kind| kind.is_dir())
            || entry
                .path()
                .strip_prefix(root)
                .map_or(true, |relative| !selection.prunes(&slash_path(relative)))
    });
    let mut walk = Walk::default();
    for entry in builder.build() {
        let Ok(entry) = entry else {
            walk.skip(SkipReason::Unreadable);
            continue;
        };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            walk.skip(symlink_reason(root, entry.path()));
        } else if file_type.is_file() {
            add_file(
                &mut walk,
                root,
                entry.path(),
                options.max_file_bytes,
                &selection,
            );
        }
    }
    walk.files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(walk)
}

/// Which paths a pass covers, by its include and exclude globs: the walk applies it to files
/// on disk, and the pass to stored documents, so that a file outside it is neither indexed
/// nor taken for deleted.
///
/// Globs follow `.gitignore` conventions: one without a `/` matches at any depth (`*.py`),
/// one with a `/` is anchored at the root, and a glob that names a folder covers what is in it.
pub struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Selection {
    pub fn new(options: &WalkOptions) -> Result<Self, GlobError> {
        let include = match options.include.is_empty() {
            true => None,
            false => Some(glob_set(&options.include)?),
        };
        Ok(Self {
            include,
            exclude: glob_set(&options.exclude)?,
        })
    }

    /// Whether everything under the folder at `relative` is excluded, so the walk can skip
    /// it (a `site-packages/**` exclude saves reading tens of thousands of entries). Tested
    /// with a child name no file can have.
    pub fn prunes(&self, relative: &str) -> bool {
        self.exclude.is_match(format!("{relative}/\0"))
    }

    /// Whether a file at `relative` (to the root, `/`-separated) is in the pass.
    pub fn admits(&self, relative: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|include| include.is_match(relative))
            && !self.exclude.is_match(relative)
    }
}

fn glob_set(globs: &[String]) -> Result<GlobSet, GlobError> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let anchored = match glob.strip_prefix('/') {
            Some(anchored) => anchored.to_owned(),
            None if glob.contains('/') => glob.clone(),
            None => format!("**/{glob}"),
        };
        for pattern in [anchored.clone(), format!("{anchored}/**")] {
            let compiled = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|error| GlobError {
                    glob: glob.clone(),
                    reason: error.kind().to_string(),
                })?;
            set.add(compiled);
        }
    }
    set.build().map_err(|error| GlobError {
        glob: String::new(),
        reason: error.to_string(),
    })
}

/// A glob that matches exactly `relative` (anchored at the root), and what is under it.
pub fn exact_glob(relative: &str) -> String {
    format!("/{}", globset::escape(relative))
}

/// A symlink is never followed: its target, if inside the root, is indexed under its own path.
fn symlink_reason(root: &Path, link: &Path) -> SkipReason {
    match link.canonicalize() {
        Ok(target) if target.starts_with(root) => SkipReason::Symlink,
        Ok(_) => SkipReason::OutsideRoot,
        Err(_) => SkipReason::Unreadable,
    }
}

fn add_file(walk: &mut Walk, root: &Path, path: &Path, max_file_bytes: u64, selection: &Selection) {
    let Ok(relative) = path.strip_prefix(root) else {
        walk.skip(SkipReason::OutsideRoot);
        return;
    };
    if relative.to_str().is_none() {
        walk.skip(SkipReason::NotUtf8Name);
        return;
    }
    let relative = slash_path(relative);
    if !selection.admits(&relative) {
        return;
    }
    let Ok(metadata) = path.symlink_metadata() else {
        walk.skip(SkipReason::Unreadable);
        return;
    };
    if metadata.len() > max_file_bytes {
        walk.skip(SkipReason::TooLarge);
        return;
    }
    if metadata.nlink() > 1 {
        walk.skip(SkipReason::HardLink);
        return;
    }
    if crate::own_output::is_own_output(&metadata) {
        walk.skip(SkipReason::OwnOutput);
        return;
    }
    let modified_ms = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_millis() as i64);
    walk.files.push(WalkedFile {
        relative,
        absolute: path.to_owned(),
        size: metadata.len(),
        modified_ms,
    });
}

/// Reads a file as text, or says why it is not text. Never reads more than `max_bytes` + 1
/// bytes: a file that grew past the cap since the walk saw it is refused, not loaded whole.
///
/// The file is opened beneath `root` without following a symlink in any component and
/// without blocking, then checked to be a regular file with one link: a path (or a folder on
/// its way) swapped for a symlink, a FIFO or a hard link between the walk and the read is
/// refused, not followed. `absolute` must lie inside `root`.
pub fn read_text(root: &Path, absolute: &Path, max_bytes: u64) -> Result<String, SkipReason> {
    use std::io::Read;
    let relative = absolute
        .strip_prefix(root)
        .map_err(|_| SkipReason::OutsideRoot)?;
    let file = open_beneath(root, relative).map_err(|error| match error.raw_os_error() {
        Some(libc::ELOOP) => SkipReason::Symlink,
        Some(libc::EXDEV) => SkipReason::OutsideRoot,
        _ if error.kind() == std::io::ErrorKind::InvalidInput => SkipReason::OutsideRoot,
        _ => SkipReason::Unreadable,
    })?;
    let metadata = file.metadata().map_err(|_| SkipReason::Unreadable)?;
    if !metadata.is_file() {
        return Err(SkipReason::Unreadable);
    }
    if metadata.nlink() > 1 {
        return Err(SkipReason::HardLink);
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|_| SkipReason::Unreadable)?;
    if bytes.len() as u64 > max_bytes {
        return Err(SkipReason::TooLarge);
    }
    if bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) {
        return Err(SkipReason::Binary);
    }
    String::from_utf8(bytes).map_err(|_| SkipReason::NotUtf8)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn options() -> WalkOptions {
        WalkOptions {
            max_file_bytes: 1024,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }

    fn relatives(walk: &Walk) -> Vec<&str> {
        walk.files
            .iter()
            .map(|file| file.relative.as_str())
            .collect()
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("ws");
        fs::create_dir_all(root.join("src/deep")).unwrap();
        fs::create_dir_all(root.join("target")).unwrap();
        fs::create_dir_all(root.join(".hidden")).unwrap();
        fs::write(root.join("src/lib.rs"), "pub fn parse_optional() {}").unwrap();
        fs::write(root.join("src/deep/notes.md"), "# notes").unwrap();
        fs::write(root.join("target/out.rs"), "generated").unwrap();
        fs::write(root.join(".hidden/secret.rs"), "hidden").unwrap();
        fs::write(root.join(".gitignore"), "target/\n").unwrap();
        fs::write(root.join("big.txt"), "x".repeat(2000)).unwrap();
        fs::write(base.path().join("canary.txt"), "outside").unwrap();
        let root = root.canonicalize().unwrap();
        (base, root)
    }

    #[test]
    fn honours_gitignore_hidden_files_and_the_size_cap() {
        let (_base, root) = tree();
        let walk = walk(&root, &root, &options()).unwrap();
        assert_eq!(relatives(&walk), ["src/deep/notes.md", "src/lib.rs"]);
        assert_eq!(walk.skipped.get(&SkipReason::TooLarge), Some(&1));
        assert_eq!(walk.files[1].size, 26);
        assert!(walk.files[1].modified_ms > 0);
    }

    #[test]
    fn include_and_exclude_globs_filter_relative_paths() {
        let (_base, root) = tree();
        let only_rust = WalkOptions {
            include: vec!["*.rs".into()],
            ..options()
        };
        assert_eq!(
            relatives(&walk(&root, &root, &only_rust).unwrap()),
            ["src/lib.rs"]
        );
        let no_docs = WalkOptions {
            exclude: vec!["*.md".into()],
            ..options()
        };
        let selection = Selection::new(&WalkOptions {
            exclude: vec!["src/deep/**".into(), "*.md".into()],
            ..options()
        })
        .unwrap();
        assert!(selection.prunes("src/deep") && !selection.prunes("src"));
        assert_eq!(
            relatives(&walk(&root, &root, &no_docs).unwrap()),
            ["src/lib.rs"]
        );
        let one_folder = WalkOptions {
            include: vec!["src/deep".into()],
            ..options()
        };
        assert_eq!(
            relatives(&walk(&root, &root, &one_folder).unwrap()),
            ["src/deep/notes.md"]
        );
        // Naming an ignored or hidden file does not bring it in.
        let ignored = WalkOptions {
            include: vec![
                exact_glob("target/out.rs"),
                exact_glob(".hidden/secret.rs"),
                exact_glob(".gitignore"),
            ],
            ..options()
        };
        assert!(walk(&root, &root, &ignored).unwrap().files.is_empty());
        let bad = WalkOptions {
            include: vec!["src/[".into()],
            ..options()
        };
        assert!(walk(&root, &root, &bad).is_err());
    }

    #[test]
    fn a_subfolder_walk_keeps_paths_relative_to_the_root() {
        let (_base, root) = tree();
        let walk = walk(&root, &root.join("src/deep"), &options()).unwrap();
        assert_eq!(relatives(&walk), ["src/deep/notes.md"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_followed_and_the_canary_never_appears() {
        let (base, root) = tree();
        std::os::unix::fs::symlink(
            base.path().join("canary.txt"),
            root.join("src/canary_link.txt"),
        )
        .unwrap();
        std::os::unix::fs::symlink(base.path(), root.join("src/up")).unwrap();
        std::os::unix::fs::symlink(root.join("src/lib.rs"), root.join("src/alias.rs")).unwrap();
        let walk = walk(&root, &root, &options()).unwrap();
        assert_eq!(relatives(&walk), ["src/deep/notes.md", "src/lib.rs"]);
        assert_eq!(walk.skipped.get(&SkipReason::OutsideRoot), Some(&2));
        assert_eq!(walk.skipped.get(&SkipReason::Symlink), Some(&1));
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_swapped_for_a_symlink_after_the_walk_is_not_read_through() {
        let (base, root) = tree();
        fs::create_dir_all(base.path().join("outside")).unwrap();
        fs::write(base.path().join("outside/secret.md"), "canary").unwrap();
        fs::write(root.join("src/deep/secret.md"), "inside").unwrap();
        let walked = walk(&root, &root, &options()).unwrap();
        fs::remove_dir_all(root.join("src/deep")).unwrap();
        std::os::unix::fs::symlink(base.path().join("outside"), root.join("src/deep")).unwrap();
        let secret = walked
            .files
            .iter()
            .find(|file| file.relative == "src/deep/secret.md")
            .unwrap();
        assert_eq!(
            read_text(&root, &secret.absolute, 100),
            Err(SkipReason::Symlink)
        );
    }

    #[test]
    fn content_checks_tell_binary_and_non_utf8_apart() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.txt");
        let binary = dir.path().join("b.bin");
        let latin1 = dir.path().join("c.txt");
        fs::write(&text, "héllo").unwrap();
        fs::write(&binary, [b'a', 0, b'b']).unwrap();
        fs::write(&latin1, [b'h', 0xe9, b'l']).unwrap();
        assert_eq!(read_text(dir.path(), &text, 100).unwrap(), "héllo");
        assert_eq!(read_text(dir.path(), &binary, 100), Err(SkipReason::Binary));
        assert_eq!(
            read_text(dir.path(), &latin1, 100),
            Err(SkipReason::NotUtf8)
        );
        assert_eq!(
            read_text(dir.path(), &dir.path().join("missing"), 100),
            Err(SkipReason::Unreadable)
        );
        // A path swapped for a symlink or a hard link after the walk is refused, not followed.
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&text, &link).unwrap();
        assert_eq!(read_text(dir.path(), &link, 100), Err(SkipReason::Symlink));
        let hard = dir.path().join("hard.txt");
        fs::hard_link(&latin1, &hard).unwrap();
        assert_eq!(read_text(dir.path(), &hard, 100), Err(SkipReason::HardLink));
        // A file that grew past the cap after the walk is refused without reading it all.
        assert_eq!(read_text(dir.path(), &text, 5), Err(SkipReason::TooLarge));
        assert_eq!(read_text(dir.path(), &text, 6).unwrap(), "héllo");
    }
}
