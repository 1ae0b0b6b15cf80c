//! Index passes in progress in this process: `index_status` shows how far the walk is, and
//! searches say that what they found may not be everything yet.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Counts of the passes running now and of the files their walks have handled.
#[derive(Debug, Default)]
pub struct IndexActivity {
    passes: AtomicUsize,
    files_done: AtomicU64,
    files_total: AtomicU64,
}

/// How far the index passes in progress are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WalkProgress {
    /// Files read and staged so far.
    pub files_done: u64,
    /// Files the walk found to read (0 while it is still listing folders).
    pub files_total: u64,
}

/// Counts a pass as running while it lives.
pub(super) struct RunningPass<'a>(&'a IndexActivity);

impl IndexActivity {
    pub(super) fn start(&self) -> RunningPass<'_> {
        // The first of overlapping passes starts the counts afresh.
        if self.passes.fetch_add(1, Ordering::SeqCst) == 0 {
            self.files_done.store(0, Ordering::Relaxed);
            self.files_total.store(0, Ordering::Relaxed);
        }
        RunningPass(self)
    }

    pub(super) fn progress(&self, done: u64, total: u64) {
        self.files_done.store(done, Ordering::Relaxed);
        self.files_total.store(total, Ordering::Relaxed);
    }

    pub fn is_indexing(&self) -> bool {
        self.passes.load(Ordering::SeqCst) > 0
    }

    /// The walk in progress, if a pass runs.
    pub fn walk(&self) -> Option<WalkProgress> {
        self.is_indexing().then(|| WalkProgress {
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
        })
    }
}

impl Drop for RunningPass<'_> {
    fn drop(&mut self) {
        self.0.passes.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_counts_while_it_runs() {
        let activity = IndexActivity::default();
        assert_eq!(activity.walk(), None);
        let pass = activity.start();
        activity.progress(3, 10);
        let expected = WalkProgress {
            files_done: 3,
            files_total: 10,
        };
        assert_eq!(activity.walk(), Some(expected));
        drop(pass);
        assert!(!activity.is_indexing());
    }
}
