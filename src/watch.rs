//! Watching workspace roots (`--watch`): file system events are debounced into batches, and
//! each batch is re-indexed through the engine, one batch at a time, so that a burst of
//! changes (a checkout, a build) costs one incremental pass rather than one per file.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use notify_debouncer_mini::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;

/// Quiet time before a batch of events is handed on.
const DEBOUNCE: Duration = Duration::from_millis(300);

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
    let debouncer = new_debouncer(DEBOUNCE, move |batch: DebounceEventResult| match batch {
        Ok(events) => {
            let _ = sender.send(events.into_iter().map(|event| event.path).collect());
        }
        Err(error) => tracing::warn!(%error, "watching workspace files failed"),
    });
    let mut debouncer = match debouncer {
        Ok(debouncer) => debouncer,
        Err(error) => {
            tracing::error!(%error, "cannot watch workspace files; changes need index_workspace");
            return;
        }
    };
    for root in &roots {
        if let Err(error) = debouncer.watcher().watch(root, RecursiveMode::Recursive) {
            tracing::error!(root = %root.display(), %error, "cannot watch this workspace root");
        }
    }
    catch_up(&engine, &cancel).await;
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    loop {
        let mut paths = tokio::select! {
            () = cancel.cancelled() => return,
            batch = receiver.recv() => match batch {
                Some(paths) => paths,
                None => return,
            },
        };
        // Batches that arrived while the last one was indexed join this one.
        while let Ok(more) = receiver.try_recv() {
            paths.extend(more);
        }
        paths.retain(|path| !inside(path, &data_dir));
        paths.sort();
        paths.dedup();
        if paths.is_empty() {
            continue;
        }
        match engine.index_changes(&paths).await {
            Ok(report) if report.added + report.updated + report.removed > 0 => tracing::info!(
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

fn inside(path: &Path, folder: &Path) -> bool {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_owned())
        .starts_with(folder)
}
