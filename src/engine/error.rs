//! Errors of the use cases: the caller's mistakes apart from the server's own faults.

use std::sync::Arc;

use crate::store::StoreError;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A value the caller can correct: the field it names and what is wrong with it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The caller named something that does not exist.
    #[error("{field}: {reason}")]
    NotFound { field: String, reason: String },
    /// The request contradicts what is stored (another user's conversation, another session).
    #[error("{field}: {reason}")]
    Conflict { field: String, reason: String },
    /// A part the call needs cannot serve it now (the search index, its writer).
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed; whether it is worth retrying is in the store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One error shared by calls that waited on the same cache load.
    #[error(transparent)]
    Shared(Arc<EngineError>),
}

impl From<Arc<EngineError>> for EngineError {
    fn from(shared: Arc<EngineError>) -> Self {
        Arc::try_unwrap(shared).unwrap_or_else(EngineError::Shared)
    }
}

impl EngineError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EngineError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EngineError::NotFound {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EngineError::Conflict {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error itself, looking through [`EngineError::Shared`].
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Shared(shared) => shared.root(),
            other => other,
        }
    }
}
