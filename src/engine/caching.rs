//! Cache use cases: invalidation on request, statistics, and following other processes'
//! invalidations.
//!
//! Writes bump scope generations in SQLite in their own transaction (see the store); this
//! process applies its own bumps at once. Other processes' bumps are read from SQLite every
//! `sync_interval`, so a stale L1 entry can outlive another process's write by at most that
//! interval plus one poll.

use std::{sync::Arc, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    Engine,
    documents::path_error,
    error::{EngineError, Result},
    validate,
};
use crate::{
    cache::{InvalidationEvent, Lookup, Scope, Tier},
    workspace::PathError,
};

/// Arguments of `invalidate_cache`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateCache {
    /// What changed.
    pub event: EventKind,
    /// The user, for `conversation_update` and `preference_update`.
    pub user_id: Option<String>,
    /// The workspace root (its path or name), for `workspace_change`.
    pub workspace_path: Option<String>,
    /// The document (inside a workspace root), for `document_change`.
    pub document_path: Option<String>,
}

/// The invalidation events.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ConversationUpdate,
    PreferenceUpdate,
    WorkspaceChange,
    DocumentChange,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::ConversationUpdate => "conversation_update",
            EventKind::PreferenceUpdate => "preference_update",
            EventKind::WorkspaceChange => "workspace_change",
            EventKind::DocumentChange => "document_change",
        }
    }
}

impl InvalidateCache {
    /// The event with its one scope argument, which must be given and valid.
    fn into_event(self) -> Result<InvalidationEvent> {
        let required = |field: &str, value: Option<String>| {
            value.ok_or_else(|| {
                EngineError::invalid(
                    field,
                    format!("is required for event {}", self.event.as_str()),
                )
            })
        };
        let event = match self.event {
            EventKind::ConversationUpdate => InvalidationEvent::ConversationUpdate {
                user_id: required("user_id", self.user_id)?,
            },
            EventKind::PreferenceUpdate => InvalidationEvent::PreferenceUpdate {
                user_id: required("user_id", self.user_id)?,
            },
            EventKind::WorkspaceChange => InvalidationEvent::WorkspaceChange {
                workspace_path: required("workspace_path", self.workspace_path)?,
            },
            EventKind::DocumentChange => InvalidationEvent::DocumentChange {
                document_path: required("document_path", self.document_path)?,
            },
        };
        check_event(&event)?;
        Ok(event)
    }
}

/// Result of `invalidate_cache`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CacheInvalidated {
    /// The scope that was dropped, e.g. `conversations:alice`.
    pub scope: String,
    /// Entries dropped from this process's memory.
    pub dropped_l1: u64,
    /// Entries dropped from Redis; absent when Redis is not configured or did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_l2: Option<u64>,
    /// The scope's new generation: other processes drop their entries when they see it.
    pub generation: i64,
}

impl Engine {
    pub async fn invalidate_cache(&self, request: InvalidateCache) -> Result<CacheInvalidated> {
        let event = self.within_roots(request.into_event()?)?;
        let scope = event.scope().name();
        let mut scopes = vec![scope.clone()];
        // Search results span a workspace: a document's change drops its workspace's searches.
        if let InvalidationEvent::DocumentChange { document_path } = &event {
            scopes.extend(
                self.workspace_of(document_path)
                    .map(|root| Scope::Workspace(root).name()),
            );
        }
        let bumped = self.store().bump_generations(&scopes).await?;
        let dropped = self.cache().apply_own(&bumped).await;
        Ok(CacheInvalidated {
            scope,
            dropped_l1: dropped.l1,
            dropped_l2: dropped.l2,
            generation: bumped.first().map_or(0, |bumped| bumped.generation),
        })
    }

    /// A workspace or document event whose path lies in a root, spelled as the scopes that
    /// index passes bump spell it; a path outside every root is refused.
    fn within_roots(&self, event: InvalidationEvent) -> Result<InvalidationEvent> {
        Ok(match event {
            InvalidationEvent::WorkspaceChange { workspace_path } => {
                let workspaces = &self.documents().workspaces;
                let root = workspaces
                    .root("workspace_path", &workspace_path)
                    .map_err(path_error)?;
                InvalidationEvent::WorkspaceChange {
                    workspace_path: root.to_string_lossy().into_owned(),
                }
            }
            InvalidationEvent::DocumentChange { document_path } => {
                InvalidationEvent::DocumentChange {
                    document_path: self.document_in_roots(&document_path)?,
                }
            }
            other => other,
        })
    }

    /// `path` as `<root>/<relative>`: spelled inside a root (the file may be gone), or
    /// found inside one.
    fn document_in_roots(&self, path: &str) -> Result<String> {
        let spelled = std::path::Path::new(path);
        let plain = spelled.is_absolute()
            && spelled
                .components()
                .all(|part| !matches!(part, std::path::Component::ParentDir));
        if plain && self.workspace_of(path).is_some() {
            return Ok(path.to_owned());
        }
        let workspaces = &self.documents().workspaces;
        match workspaces.confine("document_path", path) {
            Ok(confined) => Ok(format!("{}/{}", confined.root.display(), confined.relative)),
            Err(error @ PathError::NoRoots { .. }) => Err(path_error(error)),
            Err(_) => Err(EngineError::invalid(
                "document_path",
                format!(
                    "{path} is outside the configured workspace roots: {}",
                    workspaces.listing()
                ),
            )),
        }
    }

    /// The configured root that holds `path` (by its spelling: the file may be gone).
    fn workspace_of(&self, path: &str) -> Option<String> {
        self.workspace_roots()
            .into_iter()
            .find(|root| std::path::Path::new(path).starts_with(root))
            .map(|root| root.to_string_lossy().into_owned())
    }

    /// Reads a value through the cache, loading it with `load` on a miss.
    pub(super) async fn cached<T, F>(&self, lookup: Lookup, load: F) -> Result<T>
    where
        T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        F: Future<Output = Result<T>>,
    {
        let value = self.cache().get_or_load(lookup, load).await?;
        Ok(T::clone(&value))
    }

    /// As `cached`, sharing the cached value instead of copying it, and saying which tier
    /// answered.
    pub(super) async fn cached_shared<T, F>(
        &self,
        lookup: Lookup,
        load: F,
    ) -> Result<(Arc<T>, Tier)>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        F: Future<Output = Result<T>>,
    {
        Ok(self.cache().get_or_load_traced(lookup, load).await?)
    }

    /// Applies the generations a write of this process bumped.
    pub(super) async fn after_write(&self, bumped: &[crate::model::ScopeGeneration]) {
        if !bumped.is_empty() {
            self.cache().apply_own(bumped).await;
        }
    }

    /// Loads every known generation; call before serving so that first reads use current keys.
    pub async fn load_generations(&self) -> Result<i64> {
        let all = self.store().generations_since(0).await?;
        self.cache().apply_foreign(&all).await;
        Ok(all.last().map_or(0, |last| last.seq))
    }

    /// Follows other processes' invalidations until `cancel` fires.
    pub async fn follow_invalidations(
        self,
        mut last_seq: i64,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        // Consecutive failed reads: they back the polling off and are logged once.
        let mut failures: u32 = 0;
        loop {
            let wait = (interval * 2u32.pow(failures.min(8))).min(MAX_SYNC_BACKOFF);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.store().generations_since(last_seq).await {
                Ok(bumped) => {
                    if failures > 0 {
                        tracing::info!("cache invalidations are readable again");
                        failures = 0;
                    }
                    if let Some(last) = bumped.last() {
                        last_seq = last.seq;
                    }
                    // Another process committed to the index before it bumped these: read
                    // its commit before dropping entries, so no search caches the old view.
                    if bumped
                        .iter()
                        .any(|bump| bump.scope.starts_with("workspace:"))
                    {
                        self.reload_text_index().await;
                    }
                    self.cache().apply_foreign(&bumped).await;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%error, "cannot read cache invalidations; retrying");
                    }
                    failures = failures.saturating_add(1);
                }
            }
        }
    }
}

/// The longest pause between reads of invalidations while they keep failing.
const MAX_SYNC_BACKOFF: Duration = Duration::from_secs(5);

fn check_event(event: &InvalidationEvent) -> Result<()> {
    match event {
        InvalidationEvent::ConversationUpdate { user_id }
        | InvalidationEvent::PreferenceUpdate { user_id } => validate::id("user_id", user_id),
        InvalidationEvent::WorkspaceChange { workspace_path } => {
            validate::path("workspace_path", workspace_path)
        }
        InvalidationEvent::DocumentChange { document_path } => {
            validate::path("document_path", document_path)
        }
    }
}

/// The scope names a write for `user_id`'s conversations bumps.
pub(super) fn conversation_scopes(user_id: &str) -> Vec<String> {
    vec![Scope::Conversations(user_id.to_owned()).name()]
}

pub(super) fn preference_scopes(user_id: &str) -> Vec<String> {
    vec![Scope::Preferences(user_id.to_owned()).name()]
}
