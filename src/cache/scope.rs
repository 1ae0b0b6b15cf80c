//! What a cached entry depends on, and the events that invalidate it.

use std::fmt;

/// A unit of invalidation: every cached entry names the scopes it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A user's conversations and messages.
    Conversations(String),
    /// A user's preferences.
    Preferences(String),
    /// Everything read from one workspace root.
    Workspace(String),
    /// One document, by path.
    Document(String),
    /// The vectors of a user's messages: their history ranked by meaning. Apart from
    /// `Conversations`, so that embedding in the background drops only what it changes.
    MessageVectors(String),
    /// The vectors of a workspace's passages: semantic and hybrid searches over it.
    PassageVectors(String),
}

impl Scope {
    /// The scope's stable name, as stored in SQLite and in Redis scope sets.
    pub fn name(&self) -> String {
        match self {
            Scope::Conversations(user) => format!("conversations:{user}"),
            Scope::Preferences(user) => format!("preferences:{user}"),
            Scope::Workspace(path) => format!("workspace:{path}"),
            Scope::Document(path) => format!("document:{path}"),
            Scope::MessageVectors(user) => format!("message-vectors:{user}"),
            Scope::PassageVectors(path) => format!("passage-vectors:{path}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The design's invalidation events (plus `preference_update`, which the design folds into
/// user data): each names the one scope it drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationEvent {
    /// A user's conversations changed: drops their history and contexts.
    ConversationUpdate { user_id: String },
    /// A user's preferences changed.
    PreferenceUpdate { user_id: String },
    /// Files under a workspace root changed: drops searches and contexts over it.
    WorkspaceChange { workspace_path: String },
    /// One document changed: drops entries that contain it.
    DocumentChange { document_path: String },
}

impl InvalidationEvent {
    pub fn scope(&self) -> Scope {
        match self {
            InvalidationEvent::ConversationUpdate { user_id } => {
                Scope::Conversations(user_id.clone())
            }
            InvalidationEvent::PreferenceUpdate { user_id } => Scope::Preferences(user_id.clone()),
            InvalidationEvent::WorkspaceChange { workspace_path } => {
                Scope::Workspace(workspace_path.clone())
            }
            InvalidationEvent::DocumentChange { document_path } => {
                Scope::Document(document_path.clone())
            }
        }
    }
}
