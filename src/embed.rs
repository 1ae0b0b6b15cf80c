//! Text embeddings for semantic search: the `Embedder` trait and its implementations.
//!
//! Embedding is CPU-bound and blocking; callers run it on a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime.

mod onnx;

pub use self::onnx::{MODEL_DIR_NAME, OnnxEmbedder};

/// Turns texts into L2-normalised vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// Identifies the model and its weights; vectors of different ids are never mixed.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text, in order. Blocking.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the model file {0} is missing")]
    Missing(std::path::PathBuf),
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("the model failed: {0}")]
    Model(#[from] ort::Error),
    #[error("the model gave an output of unexpected shape {0:?}")]
    Shape(Vec<usize>),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
