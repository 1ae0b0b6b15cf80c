//! History by words: the word index of saved messages (`crate::words`), kept in memory by
//! every process and brought up to date from `message_changes` before each search, so a
//! search sees every message committed before it, whichever process saved it.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Engine, documents::join_error, error::Result};
use crate::words::WordIndex;

/// How often the follower looks for messages other processes saved.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct HistoryWords {
    index: Arc<RwLock<WordIndex>>,
    /// The `message_changes` position the index reflects (None: not loaded yet); the lock
    /// serialises refreshes.
    seq: tokio::sync::Mutex<Option<i64>>,
    saved: Notify,
}

impl Engine {
    /// Loads the word index, then keeps it up to date in the background until `cancel`
    /// fires: after each save in this process, and every second for other processes'. A
    /// search brings it up to date anyway; this keeps that wait short (catching up with
    /// 40,000 imported messages took 0.8 s).
    pub async fn follow_history_words(self, cancel: CancellationToken) {
        let mut failing = false;
        while !cancel.is_cancelled() {
            match self.refresh_history_words().await {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot bring the history word index up to date; will retry");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.history_words().saved.notified() => {}
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            }
        }
    }

    /// Tells the follower that messages were saved or deleted.
    pub(super) fn wake_history_words(&self) {
        self.history_words().saved.notify_one();
    }

    /// Applies the messages saved, edited or deleted since the index last looked.
    async fn refresh_history_words(&self) -> Result<()> {
        let mut seq = self.history_words().seq.lock().await;
        let changes = self.store().message_word_changes(*seq).await?;
        if *seq == Some(changes.seq) {
            return Ok(());
        }
        let (index, full) = (self.history_words().index.clone(), changes.full);
        let count = changes.messages.len();
        tokio::task::spawn_blocking(move || {
            let mut index = index
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if full {
                *index = WordIndex::default();
            }
            for (rowid, message) in changes.messages {
                match message {
                    Some((user, content)) => index.upsert(rowid, &user, &content),
                    None => index.remove(rowid),
                }
            }
        })
        .await
        .map_err(join_error)?;
        if full {
            tracing::info!(messages = count, "history word index loaded in full");
        }
        *seq = Some(changes.seq);
        Ok(())
    }

    /// Row ids of `user`'s messages that match `words` best, best first.
    pub(super) async fn rank_history_words(
        &self,
        user: String,
        words: String,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let started = std::time::Instant::now();
        self.refresh_history_words().await?;
        let refreshed = started.elapsed();
        let index = self.history_words().index.clone();
        let ranked = tokio::task::spawn_blocking(move || {
            let index = index
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let terms = index.terms(&words);
            index
                .search(&terms, limit, &user)
                .into_iter()
                .map(|(rowid, _)| rowid)
                .collect()
        })
        .await
        .map_err(join_error)?;
        tracing::debug!(
            refreshed_us = refreshed.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "history ranked by words"
        );
        Ok(ranked)
    }
}
