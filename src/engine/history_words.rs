//! History by words: the word index of saved messages (`crate::words`), kept in memory by
//! every process and brought up to date from `message_changes` before each search, so a
//! search sees every message committed before it, whichever process saved it.

use std::sync::{Arc, RwLock};

use super::{Engine, documents::join_error, error::Result};
use crate::words::WordIndex;

#[derive(Default)]
pub struct HistoryWords {
    index: Arc<RwLock<WordIndex>>,
    /// The `message_changes` position the index reflects (None: not loaded yet); the lock
    /// serialises refreshes.
    seq: tokio::sync::Mutex<Option<i64>>,
}

impl Engine {
    /// Loads the word index at start, so that the first `get_context` does not wait for it.
    pub async fn warm_history_words(self) {
        if let Err(error) = self.refresh_history_words().await {
            tracing::warn!(%error, "cannot load the history word index yet; will retry");
        }
    }

    /// Applies the messages saved, edited or deleted since the index last looked.
    async fn refresh_history_words(&self) -> Result<()> {
        let mut seq = self.history_words().seq.lock().await;
        let changes = self.store().message_word_changes(*seq).await?;
        if *seq == Some(changes.seq) {
            return Ok(());
        }
        let (index, full) = (self.history_words().index.clone(), seq.is_none());
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
            tracing::info!(messages = count, "history word index loaded");
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
