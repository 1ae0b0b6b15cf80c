//! Opening a file beneath a root without following a symlink in any component.
//!
//! A path checked once (by the walk or by [`super::Workspaces::confine`]) can change before it
//! is opened: a folder on the way swapped for a symlink to `/home` would take a plain `open`,
//! or one with `O_NOFOLLOW` (which guards only the last component), out of the root. So every
//! workspace file is opened relative to its root's descriptor with no symlink followed:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, else
//! `openat` one component at a time, each with `O_NOFOLLOW`.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path},
};

/// Flags of every open: read only, and never blocking on a FIFO swapped in for a file.
const READ_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;

/// Opens `relative` (made of plain names only) for reading beneath the folder `root`.
///
/// A symlink anywhere in `relative` fails with `ELOOP`; `..`, an absolute path or an empty
/// one fails with `InvalidInput`. The root itself is trusted (roots are canonical).
pub fn open_beneath(root: &Path, relative: &Path) -> io::Result<File> {
    let names = plain_names(relative)?;
    let root = open_folder(root)?;
    #[cfg(target_os = "linux")]
    match open_resolving_beneath(&root, &names) {
        Err(error) if openat2_missing(&error) => {}
        other => return other,
    }
    open_stepwise(&root, &names)
}

/// The components of `relative` as C strings; only plain names are accepted.
fn plain_names(relative: &Path) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => names.push(c_string(name.as_bytes())?),
            Component::CurDir => {}
            _ => return Err(invalid("the path must be relative, without `..`")),
        }
    }
    if names.is_empty() {
        return Err(invalid("the path names no file"));
    }
    Ok(names)
}

fn open_folder(path: &Path) -> io::Result<OwnedFd> {
    let path = c_string(path.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    owned(unsafe { libc::open(path.as_ptr(), flags) })
}

/// `struct open_how` of `linux/openat2.h` (libc's is `non_exhaustive`, so not buildable).
#[cfg(target_os = "linux")]
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// One `openat2` call: the kernel refuses any symlink and any step out of `root`.
#[cfg(target_os = "linux")]
fn open_resolving_beneath(root: &OwnedFd, names: &[CString]) -> io::Result<File> {
    let joined: Vec<&[u8]> = names.iter().map(|name| name.as_bytes()).collect();
    let path = c_string(&joined.join(&b'/'))?;
    let how = OpenHow {
        flags: (READ_FLAGS | libc::O_NOFOLLOW) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: `path` and `how` outlive the call, and the size passed is `how`'s own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    owned(fd as RawFd).map(File::from)
}

/// Kernels before 5.6 lack `openat2`, and some sandboxes (seccomp) refuse it with `EPERM`.
#[cfg(target_os = "linux")]
fn openat2_missing(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// `openat` one component at a time: folders with `O_DIRECTORY | O_NOFOLLOW`, the file with
/// `O_NOFOLLOW`, so no step can pass through a symlink.
fn open_stepwise(root: &OwnedFd, names: &[CString]) -> io::Result<File> {
    let (file_name, folders) = names.split_last().expect("plain_names is never empty");
    let mut folder: Option<OwnedFd> = None;
    for name in folders {
        let parent = folder.as_ref().unwrap_or(root);
        let flags = READ_FLAGS | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        folder = Some(
            open_at(parent, name, flags).map_err(|error| symlink_as_loop(parent, name, error))?,
        );
    }
    let parent = folder.as_ref().unwrap_or(root);
    open_at(parent, file_name, READ_FLAGS | libc::O_NOFOLLOW).map(File::from)
}

fn open_at(parent: &OwnedFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call; `parent` is open.
    owned(unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) })
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with `ENOTDIR`; say `ELOOP`, as `openat2`
/// does, so callers tell a symlink from a file in a folder's place.
fn symlink_as_loop(parent: &OwnedFd, name: &CString, error: io::Error) -> io::Error {
    if error.raw_os_error() != Some(libc::ENOTDIR) {
        return error;
    }
    // SAFETY: `stat` is plain data, so all zeroes is a valid value for the call to fill.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `stat` is writable, and both outlive the call.
    let status = unsafe {
        libc::fstatat(
            parent.as_raw_fd(),
            name.as_ptr(),
            &mut stat,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match status == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
        true => io::Error::from_raw_os_error(libc::ELOOP),
        false => error,
    }
}

/// Takes ownership of a descriptor a call returned, or the call's error.
fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| invalid("the path contains a NUL byte"))
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use std::{fs, io::Read, os::unix::fs::symlink, path::PathBuf};

    use super::*;

    /// base/ws/zzz/secret.txt inside the root, base/outside/secret.txt beside it.
    struct Layout {
        _base: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn layout() -> Layout {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("ws");
        let outside = base.path().join("outside");
        fs::create_dir_all(root.join("zzz")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("zzz/secret.txt"), "inside").unwrap();
        fs::write(outside.join("secret.txt"), "canary").unwrap();
        Layout {
            root: root.canonicalize().unwrap(),
            outside,
            _base: base,
        }
    }

    /// Replaces the folder `zzz` by a symlink to the outside folder, as a hostile writer
    /// would between the walk and the read.
    fn swap_folder_for_link(layout: &Layout) {
        fs::remove_dir_all(layout.root.join("zzz")).unwrap();
        symlink(&layout.outside, layout.root.join("zzz")).unwrap();
    }

    fn text(mut file: File) -> String {
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    fn names(relative: &str) -> Vec<CString> {
        plain_names(Path::new(relative)).unwrap()
    }

    fn folder(path: &Path) -> OwnedFd {
        open_folder(path).unwrap()
    }

    #[test]
    fn a_file_beneath_the_root_opens() {
        let layout = layout();
        let file = open_beneath(&layout.root, Path::new("zzz/secret.txt")).unwrap();
        assert_eq!(text(file), "inside");
        let stepwise = open_stepwise(&folder(&layout.root), &names("zzz/secret.txt")).unwrap();
        assert_eq!(text(stepwise), "inside");
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_is_not_followed() {
        let layout = layout();
        swap_folder_for_link(&layout);
        let error = open_beneath(&layout.root, Path::new("zzz/secret.txt")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP), "{error}");
    }

    #[test]
    fn the_stepwise_fallback_refuses_a_swapped_folder_too() {
        let layout = layout();
        swap_folder_for_link(&layout);
        let error = open_stepwise(&folder(&layout.root), &names("zzz/secret.txt")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP), "{error}");
    }

    #[test]
    fn a_symlinked_last_component_is_not_followed() {
        let layout = layout();
        symlink(
            layout.outside.join("secret.txt"),
            layout.root.join("link.txt"),
        )
        .unwrap();
        for error in [
            open_beneath(&layout.root, Path::new("link.txt")).unwrap_err(),
            open_stepwise(&folder(&layout.root), &names("link.txt")).unwrap_err(),
        ] {
            assert_eq!(error.raw_os_error(), Some(libc::ELOOP), "{error}");
        }
    }

    #[test]
    fn parent_steps_and_absolute_paths_are_refused() {
        let layout = layout();
        for path in [
            "../outside/secret.txt",
            "zzz/../../outside/secret.txt",
            "/etc/passwd",
            "",
        ] {
            let error = open_beneath(&layout.root, Path::new(path)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{path}");
        }
    }
}
