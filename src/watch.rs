//! Watching workspace roots (`--watch`): file system events are debounced into batches, and
//! each batch is re-indexed through the engine, one batch at a time, so that a burst of
//! changes (a checkout, a build) costs one incremental pass rather than one per file.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use notify_debouncer_mini::{
    Config as DebounceConfig, DebounceEventResult, new_debouncer_opt,
    notify::{
        self, Config, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, Watcher,
        WatcherKind,
    },
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::engine::Engine;

/// Quiet time before a batch of events is handed on.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the roots themselves are looked at: a root deleted and made again is a new
/// folder, which the watch on the old one never reports.
const ROOT_CHECK: Duration = Duration::from_secs(1);
/// How often configured roots that do not exist yet are looked for.
const MISSING_ROOT_POLL: Duration = Duration::from_secs(1);

/// Indexes every root once (catching up with changes made while no server ran), then
/// re-indexes what changes until `cancel` fires. `data_dir` is never indexed, even when it
/// lies inside a root.
pub async fn watch(
    engine: Engine,
    roots: Vec<PathBuf>,
    data_dir: PathBuf,
    cancel: CancellationToken,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let handler = move |batch: DebounceEventResult| match batch {
        Ok(events) => {
            let _ = sender.send(events.into_iter().map(|event| event.path).collect());
        }
        Err(error) => tracing::warn!(%error, "watching workspace files failed"),
    };
    let config = DebounceConfig::default().with_timeout(DEBOUNCE);
    let debouncer = new_debouncer_opt::<_, ChangeWatcher>(config, handler);
    let mut debouncer = match debouncer {
        Ok(debouncer) => debouncer,
        Err(error) => {
            tracing::error!(%error, "cannot watch workspace files; changes need index_workspace");
            return;
        }
    };
    let mut watched: Vec<WatchedRoot> = roots
        .into_iter()
        .map(|root| WatchedRoot::watch(root, debouncer.watcher()))
        .collect();
    catch_up(&engine, &cancel).await;
    let mut root_check = tokio::time::interval(ROOT_CHECK);
    root_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    loop {
        // Biased: once cancelled, a batch waiting in the channel starts no pass.
        let mut paths = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            batch = receiver.recv() => match batch {
                Some(paths) => paths,
                None => return,
            },
            // A root watched again is indexed whole: it may have filled up meanwhile.
            _ = root_check.tick() => watched
                .iter_mut()
                .filter_map(|root| root.renew(debouncer.watcher()))
                .collect(),
        };
        // Batches that arrived while the last one was indexed join this one.
        while let Ok(more) = receiver.try_recv() {
            paths.extend(more);
        }
        // An event on a root itself may be its removal; its folder is looked at again now,
        // since a folder made again at once can get the same inode number.
        let touched: Vec<PathBuf> = watched
            .iter_mut()
            .filter(|root| paths.contains(&root.path))
            .filter_map(|root| {
                root.folder = None;
                root.renew(debouncer.watcher())
            })
            .collect();
        paths.extend(touched);
        // The log of this process may sit in a root: its lines are no change to index.
        paths.retain(|path| {
            !inside(path, &data_dir) && !crate::own_output::is_own_output_path(path)
        });
        paths.sort();
        paths.dedup();
        if paths.is_empty() {
            continue;
        }
        let indexed = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            indexed = engine.index_changes(&paths) => indexed,
        };
        match indexed {
            // Debug: a pass's own log line must not be what the next pass reacts to.
            Ok(report) if report.added + report.updated + report.removed > 0 => tracing::debug!(
                added = report.added,
                updated = report.updated,
                removed = report.removed,
                duration_ms = report.duration_ms,
                "re-indexed changed files"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "re-indexing changed files failed"),
        }
    }
}

/// A root and the folder its watch is on, by device and inode.
struct WatchedRoot {
    path: PathBuf,
    /// None while nothing is watched (the root is gone, or watching it failed).
    folder: Option<FolderIdentity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FolderIdentity {
    device: u64,
    inode: u64,
}

impl FolderIdentity {
    fn at(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

impl WatchedRoot {
    fn watch(path: PathBuf, watcher: &mut dyn Watcher) -> Self {
        let mut root = Self { path, folder: None };
        root.renew(watcher);
        root
    }

    /// Watches the root again when the folder at its path is not the one watched; the
    /// root's path when it did.
    fn renew(&mut self, watcher: &mut dyn Watcher) -> Option<PathBuf> {
        let found = FolderIdentity::at(&self.path);
        if found == self.folder {
            return None;
        }
        // The old watch ended with its folder; unwatching clears notify's record of it.
        let _ = watcher.unwatch(&self.path);
        self.folder = None;
        let Some(found) = found else {
            tracing::warn!(root = %self.path.display(), "a workspace root is gone; watching for it");
            return None;
        };
        if let Err(error) = watcher.watch(&self.path, RecursiveMode::Recursive) {
            tracing::error!(root = %self.path.display(), %error, "cannot watch this workspace root");
            return None;
        }
        self.folder = Some(found);
        Some(self.path.clone())
    }
}

/// Looks for configured roots that do not exist yet until each has appeared; a root that
/// appears is watched (and so indexed) on `tasks` like the roots present at the start.
pub async fn watch_missing_roots(
    engine: Engine,
    data_dir: PathBuf,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let mut present = engine.workspace_roots();
    while !engine.missing_roots().is_empty() {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(MISSING_ROOT_POLL) => {}
        }
        let now = engine.workspace_roots();
        let appeared: Vec<PathBuf> = now
            .iter()
            .filter(|root| !present.contains(root))
            .cloned()
            .collect();
        if !appeared.is_empty() {
            tracing::info!(roots = ?appeared, "workspace roots appeared; indexing and watching them");
            let watcher = watch(engine.clone(), appeared, data_dir.clone(), cancel.clone());
            tasks.spawn(watcher);
        }
        present = now;
    }
}

async fn catch_up(engine: &Engine, cancel: &CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => {}
        indexed = engine.index_workspace(Default::default(), None) => match indexed {
            Ok(report) => tracing::info!(
                added = report.added,
                updated = report.updated,
                removed = report.removed,
                unchanged = report.unchanged,
                duration_ms = report.duration_ms,
                "workspaces indexed; watching for changes"
            ),
            Err(error) => tracing::warn!(%error, "indexing the workspaces failed"),
        },
    }
}

/// The platform's watcher, passing on only events that may change what is indexed. Reading a
/// file raises open and close events (notify reports them as access), and indexing reads every
/// file: without this filter each pass would be followed by a pass over what it read, and any
/// program reading the workspace (an editor, a build) would start passes.
struct ChangeWatcher(RecommendedWatcher);

impl Watcher for ChangeWatcher {
    fn new<F: EventHandler>(mut handler: F, config: Config) -> notify::Result<Self> {
        let filtered = move |event: notify::Result<Event>| {
            if !matches!(&event, Ok(event) if is_access(&event.kind)) {
                handler.handle_event(event);
            }
        };
        RecommendedWatcher::new(filtered, config).map(Self)
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// Opening, reading, closing unwritten: nothing that changes a file (a write closed is kept).
fn is_access(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, EventKind::Access(access)
        if *access != AccessKind::Close(AccessMode::Write))
}

fn inside(path: &Path, folder: &Path) -> bool {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_owned())
        .starts_with(folder)
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};

    use super::*;

    #[test]
    fn reads_are_not_changes() {
        assert!(is_access(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(is_access(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_access(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_access(&EventKind::Modify(ModifyKind::Any)));
        assert!(!is_access(&EventKind::Create(CreateKind::File)));
    }
}
