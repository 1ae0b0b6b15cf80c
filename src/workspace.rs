//! Workspace roots and the confinement of every path to them.
//!
//! Roots are canonicalised once. A requested path is canonicalised too (resolving `..` and
//! symlinks) and accepted only if the result lies inside a root, compared component by
//! component, so `/ws_evil` is not inside `/ws` and a symlink out of the root is refused.

use std::{
    path::{Component, Path, PathBuf},
    sync::{Arc, OnceLock},
};

mod beneath;

pub use beneath::open_beneath;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{field}: no workspace roots are configured (start the server with --workspace DIR)")]
    NoRoots { field: &'static str },
    #[error("{field}: the path contains a NUL byte")]
    Nul { field: &'static str },
    #[error("{field}: {path} does not exist")]
    NotFound { field: &'static str, path: String },
    #[error("{field}: {path} is outside the configured workspace roots")]
    Outside { field: &'static str, path: String },
    #[error("{field}: the workspace root {root} does not exist (a server uses it once it appears)")]
    RootMissing { field: &'static str, root: String },
    #[error(
        "{field}: must name a configured workspace root, by name or path; {given:?} is none \
         of them: {known}"
    )]
    UnknownRoot {
        field: &'static str,
        given: String,
        known: String,
    },
    #[error("workspace root {path} cannot be used: {reason}")]
    BadRoot { path: String, reason: String },
}

/// A path inside a workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    /// The canonical root that contains the path.
    pub root: PathBuf,
    /// The canonical path itself.
    pub absolute: PathBuf,
    /// The path relative to its root ("" for the root itself), with `/` separators.
    pub relative: String,
}

/// The configured roots. A root that does not exist yet is kept by its configured path and
/// looked for again whenever the roots are asked for, so that a folder created after the
/// start is used without a restart.
#[derive(Debug, Clone, Default)]
pub struct Workspaces {
    roots: Arc<[Root]>,
}

#[derive(Debug)]
struct Root {
    /// As configured, made absolute.
    configured: PathBuf,
    /// The canonical folder, once it has been found.
    found: OnceLock<PathBuf>,
}

impl Root {
    /// The canonical folder, if it exists now (or did once).
    fn resolved(&self) -> Option<&Path> {
        if let Some(found) = self.found.get() {
            return Some(found);
        }
        let canonical = self
            .configured
            .canonicalize()
            .ok()
            .filter(|path| path.is_dir())?;
        Some(self.found.get_or_init(|| canonical))
    }
}

impl Workspaces {
    /// Canonicalises each root that exists; one that does not is kept to be looked for
    /// later, while one that is not a folder, or cannot be read, is an error.
    pub fn new(roots: &[PathBuf]) -> Result<Self, PathError> {
        let mut checked: Vec<Root> = Vec::with_capacity(roots.len());
        for root in roots {
            let bad = |reason: String| PathError::BadRoot {
                path: root.display().to_string(),
                reason,
            };
            let configured = std::path::absolute(root).map_err(|error| bad(error.to_string()))?;
            let found = OnceLock::new();
            match configured.canonicalize() {
                Ok(resolved) if !resolved.is_dir() => return Err(bad("not a folder".into())),
                Ok(resolved) => {
                    let _ = found.set(resolved);
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(bad(error.to_string())),
            }
            let duplicate = checked.iter().any(|seen| {
                seen.configured == configured
                    || (seen.found.get().is_some() && seen.found.get() == found.get())
            });
            if !duplicate {
                checked.push(Root { configured, found });
            }
        }
        Ok(Self {
            roots: checked.into(),
        })
    }

    /// The canonical roots that exist, in configured order.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = Vec::with_capacity(self.roots.len());
        for root in self.roots.iter().filter_map(Root::resolved) {
            if !found.iter().any(|seen| seen == root) {
                found.push(root.to_owned());
            }
        }
        found
    }

    /// The configured roots that do not exist (yet).
    pub fn missing(&self) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter(|root| root.resolved().is_none())
            .map(|root| root.configured.clone())
            .collect()
    }

    /// Whether any root is configured, present or not.
    pub fn is_configured(&self) -> bool {
        !self.roots.is_empty()
    }

    /// A short name per root, for URIs: its folder's name, with `-2`, `-3`… when two roots
    /// share one. Stable for a given configuration (roots keep their configured order); a
    /// root that does not exist yet is named by its configured path.
    pub fn names(&self) -> Vec<(String, PathBuf)> {
        let mut named: Vec<(String, PathBuf)> = Vec::with_capacity(self.roots.len());
        for root in self.roots.iter() {
            let path = root.resolved().unwrap_or(&root.configured).to_owned();
            let base = path.file_name().map_or_else(
                || "root".to_owned(),
                |name| name.to_string_lossy().into_owned(),
            );
            let mut name = base.clone();
            let mut suffix = 2;
            while named.iter().any(|(taken, _)| *taken == name) {
                name = format!("{base}-{suffix}");
                suffix += 1;
            }
            named.push((name, path));
        }
        named
    }

    /// The canonical root that `given` names: by its name (as in `document://` URIs and
    /// `resources/list`) or by its path. Anything else is an error listing the roots.
    pub fn root(&self, field: &'static str, given: &str) -> Result<PathBuf, PathError> {
        if let Some((_, path)) = self.names().into_iter().find(|(name, _)| name == given) {
            return match self.roots().contains(&path) {
                true => Ok(path),
                false => Err(PathError::RootMissing {
                    field,
                    root: path.display().to_string(),
                }),
            };
        }
        match self.confine(field, given) {
            Ok(confined) if confined.relative.is_empty() => Ok(confined.root),
            Err(error @ (PathError::NoRoots { .. } | PathError::RootMissing { .. })) => Err(error),
            Err(error @ PathError::Nul { .. }) => Err(error),
            _ => Err(PathError::UnknownRoot {
                field,
                given: given.to_owned(),
                known: self.listing(),
            }),
        }
    }

    /// The roots as "name (path)", for errors.
    pub fn listing(&self) -> String {
        self.names()
            .iter()
            .map(|(name, path)| format!("{name} ({})", path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves `path` (absolute, or relative to the first root that has it) and checks that
    /// its real location is inside a root. `field` names the argument in errors.
    pub fn confine(&self, field: &'static str, path: &str) -> Result<Confined, PathError> {
        if self.roots.is_empty() {
            return Err(PathError::NoRoots { field });
        }
        if path.contains('\0') {
            return Err(PathError::Nul { field });
        }
        let requested = Path::new(path);
        let roots = self.roots();
        let candidates: Vec<PathBuf> = if requested.is_absolute() {
            vec![requested.to_owned()]
        } else {
            roots.iter().map(|root| root.join(requested)).collect()
        };
        let Some(resolved) = candidates
            .iter()
            .find_map(|candidate| candidate.canonicalize().ok())
        else {
            return Err(self.not_found(field, requested));
        };
        self.containing(&resolved)
            .ok_or_else(|| PathError::Outside {
                field,
                path: path.to_owned(),
            })
    }

    /// Why `requested` was not found: a root it belongs to is missing, or it is not there.
    fn not_found(&self, field: &'static str, requested: &Path) -> PathError {
        let missing = self.missing();
        let owner = match requested.is_absolute() {
            true => missing.iter().find(|root| requested.starts_with(root)),
            false if self.roots().is_empty() => missing.first(),
            false => None,
        };
        match owner {
            Some(root) => PathError::RootMissing {
                field,
                root: root.display().to_string(),
            },
            None => PathError::NotFound {
                field,
                path: requested.display().to_string(),
            },
        }
    }

    /// The root that contains an already canonical path, if any.
    pub fn containing(&self, canonical: &Path) -> Option<Confined> {
        let roots = self.roots();
        let root = roots.into_iter().find(|root| canonical.starts_with(root))?;
        let relative = canonical.strip_prefix(&root).ok()?;
        Some(Confined {
            absolute: canonical.to_owned(),
            relative: slash_path(relative),
            root,
        })
    }
}

/// A relative path with `/` between its parts, whatever the platform.
pub fn slash_path(relative: &Path) -> String {
    relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    struct Layout {
        _base: tempfile::TempDir,
        root: PathBuf,
        sibling: PathBuf,
    }

    /// base/ws (the root), base/ws_evil (a sibling with the same prefix), base/outside.txt.
    fn layout() -> Layout {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("ws");
        let sibling = base.path().join("ws_evil");
        fs::create_dir_all(root.join("src")).unwrap();
        fs::create_dir_all(&sibling).unwrap();
        fs::write(root.join("src/lib.rs"), "fn main() {}").unwrap();
        fs::write(sibling.join("secret.txt"), "secret").unwrap();
        fs::write(base.path().join("outside.txt"), "canary").unwrap();
        Layout {
            root: root.canonicalize().unwrap(),
            sibling: sibling.canonicalize().unwrap(),
            _base: base,
        }
    }

    #[test]
    fn paths_inside_a_root_resolve_absolute_or_relative() {
        let layout = layout();
        let workspaces = Workspaces::new(std::slice::from_ref(&layout.root)).unwrap();
        let relative = workspaces.confine("path", "src/lib.rs").unwrap();
        assert_eq!(relative.relative, "src/lib.rs");
        let absolute = workspaces
            .confine(
                "path",
                layout.root.join("src/../src/lib.rs").to_str().unwrap(),
            )
            .unwrap();
        assert_eq!(absolute, relative);
        assert_eq!(
            workspaces
                .confine("path", layout.root.to_str().unwrap())
                .unwrap()
                .relative,
            ""
        );
    }

    #[test]
    fn escapes_are_refused() {
        let layout = layout();
        let workspaces = Workspaces::new(std::slice::from_ref(&layout.root)).unwrap();
        let outside = |path: &str| {
            matches!(
                workspaces.confine("path", path),
                Err(PathError::Outside { .. })
            )
        };
        assert!(outside("../outside.txt"));
        assert!(outside("src/../../outside.txt"));
        assert!(
            outside(layout.sibling.join("secret.txt").to_str().unwrap()),
            "sibling prefix"
        );
        assert!(outside("../ws_evil/secret.txt"));
        assert_eq!(
            workspaces.confine("path", "src/\0lib.rs"),
            Err(PathError::Nul { field: "path" })
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_allowed() {
        let layout = layout();
        std::os::unix::fs::symlink(
            layout.root.parent().unwrap().join("outside.txt"),
            layout.root.join("link_out"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&layout.sibling, layout.root.join("dir_out")).unwrap();
        std::os::unix::fs::symlink(layout.root.join("src/lib.rs"), layout.root.join("link_in"))
            .unwrap();
        let workspaces = Workspaces::new(std::slice::from_ref(&layout.root)).unwrap();
        assert!(matches!(
            workspaces.confine("path", "link_out"),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            workspaces.confine("path", "dir_out/secret.txt"),
            Err(PathError::Outside { .. })
        ));
        assert_eq!(
            workspaces.confine("path", "link_in").unwrap().relative,
            "src/lib.rs"
        );
    }

    #[test]
    fn a_missing_root_is_used_once_it_appears() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("later");
        let workspaces = Workspaces::new(std::slice::from_ref(&root)).unwrap();
        assert!(workspaces.roots().is_empty());
        assert_eq!(workspaces.missing(), std::slice::from_ref(&root));
        assert!(matches!(
            workspaces.confine("path", "notes.md"),
            Err(PathError::RootMissing { .. })
        ));

        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("notes.md"), "hello").unwrap();
        assert_eq!(workspaces.roots(), [root.canonicalize().unwrap()]);
        assert!(workspaces.missing().is_empty());
        assert_eq!(
            workspaces.confine("path", "notes.md").unwrap().relative,
            "notes.md"
        );
    }

    #[test]
    fn a_root_that_is_a_file_is_refused() {
        let layout = layout();
        let file = layout.root.join("src/lib.rs");
        assert!(matches!(
            Workspaces::new(&[file]),
            Err(PathError::BadRoot { .. })
        ));
    }

    #[test]
    fn a_root_is_found_by_its_name_or_its_path_and_nothing_else() {
        let layout = layout();
        let workspaces = Workspaces::new(std::slice::from_ref(&layout.root)).unwrap();
        assert_eq!(workspaces.root("workspace", "ws").unwrap(), layout.root);
        let by_path = workspaces.root("workspace", layout.root.to_str().unwrap());
        assert_eq!(by_path.unwrap(), layout.root);
        let error = workspaces.root("workspace", "src").unwrap_err().to_string();
        assert!(
            error.starts_with("workspace: must name a configured workspace root"),
            "{error}"
        );
        assert!(
            error.contains(&format!("ws ({})", layout.root.display())),
            "{error}"
        );
    }

    #[test]
    fn without_roots_every_path_is_refused() {
        let workspaces = Workspaces::default();
        assert_eq!(
            workspaces.confine("path", "/etc/passwd"),
            Err(PathError::NoRoots { field: "path" })
        );
    }
}
