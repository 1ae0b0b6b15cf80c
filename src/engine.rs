//! The use cases: what a tool call asks for, in terms of the parts below (store, cache,
//! index, embedder). Knows nothing of MCP.

mod activity;
mod backup;
mod budget;
mod caching;
mod context;
mod conversations;
mod cursor;
mod documents;
mod error;
mod export;
mod foreground;
mod health;
mod history_words;
mod index_sync;
mod maintenance;
mod preferences;
mod prometheus;
mod render;
mod resources;
mod search;
mod semantic;
mod validate;

use std::{sync::Arc, time::Instant};

pub use self::{
    activity::{IndexActivity, WalkProgress},
    backup::{BackupCreated, BackupEntry, BackupList, BackupSettings, CreateBackup, ListBackups},
    caching::{CacheInvalidated, InvalidateCache},
    context::{
        AssembledContext, BundleSections, CacheSource, ContextAnswer, ContextBundle, GetContext,
        HistoryItem, HistorySource, PassageItem, PreferenceItem, Section, SectionTokens,
    },
    conversations::{
        Conversation, ConversationHistory, DeleteConversation, DeletedConversation,
        GetConversation, HistoryPage, MessageInput, SaveConversation, SavedConversation,
    },
    documents::{Documents, IndexDocument, IndexReport, IndexWorkspace, Progress},
    error::{EngineError, Result},
    export::{ExportCursor, ExportPage, ExportedConversation, UserPreferences},
    foreground::ForegroundCall,
    health::{DatabaseHealth, Health, HealthRequest, IndexHealth, RedisHealth, ServedTools},
    index_sync::{IndexStatus, IndexStatusRequest, Pending, WriterStatus},
    preferences::{
        DeletePreference, GetPreferences, PreferenceDeleted, PreferenceSet, Preferences,
        SetPreference,
    },
    resources::{DocumentText, ResourceEntry, ResourcePage},
    search::{Grouping, HitDocument, SearchDocuments, SearchHit, SearchMode, SearchResults},
    semantic::{EmbedderState, EmbedderStatus},
    validate::Rfc3339,
};
use self::{foreground::Foreground, history_words::HistoryWords, semantic::Semantic};
use crate::{cache::Cache, config::Config, metrics::CallMetrics, store::Store};

/// Limits on what one call may send or receive.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_response_bytes: usize,
    pub max_message_bytes: usize,
    pub max_messages_per_call: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_response_bytes: config.max_response_bytes(),
            max_message_bytes: config.max_message_bytes(),
            max_messages_per_call: config.max_messages_per_call(),
        }
    }
}

/// The use cases over shared parts; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cache: Cache,
    documents: Documents,
    semantic: Semantic,
    history_words: HistoryWords,
    default_user_id: String,
    limits: Limits,
    backups: BackupSettings,
    started: Instant,
    calls: CallMetrics,
    foreground: Foreground,
}

impl Engine {
    pub fn new(
        store: Store,
        cache: Cache,
        documents: Documents,
        embedder: EmbedderState,
        default_user_id: impl Into<String>,
        limits: Limits,
        backups: BackupSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                cache,
                documents,
                semantic: Semantic::new(embedder),
                history_words: HistoryWords::default(),
                default_user_id: default_user_id.into(),
                limits,
                backups,
                started: Instant::now(),
                calls: CallMetrics::default(),
                foreground: Foreground::default(),
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn documents(&self) -> &Documents {
        &self.inner.documents
    }

    fn semantic(&self) -> &Semantic {
        &self.inner.semantic
    }

    fn history_words(&self) -> &HistoryWords {
        &self.inner.history_words
    }

    fn foreground(&self) -> &Foreground {
        &self.inner.foreground
    }

    /// Marks a tool call in flight until the guard drops: background embedding waits.
    pub fn call_started(&self) -> ForegroundCall<'_> {
        self.inner.foreground.enter()
    }

    fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn backup_settings(&self) -> &BackupSettings {
        &self.inner.backups
    }

    /// The given user id, checked, or the configured default.
    fn user_or_default(&self, user_id: Option<&str>) -> Result<String> {
        match user_id {
            Some(user_id) => {
                validate::id("user_id", user_id)?;
                Ok(user_id.to_owned())
            }
            None => Ok(self.inner.default_user_id.clone()),
        }
    }

    /// The canonical workspace roots.
    pub fn workspace_roots(&self) -> Vec<std::path::PathBuf> {
        self.documents().workspaces.roots()
    }

    /// Finishes in-flight work and closes the database.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }
}
