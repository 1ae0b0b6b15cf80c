//! Text embeddings for semantic search: the `Embedder` trait and its implementations.
//!
//! Embedding is CPU-bound and blocking; callers run it on a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime.

mod http;
mod onnx;

pub use self::{
    http::HttpEmbedder,
    onnx::{MODEL_DIR_NAME, OnnxEmbedder},
};

/// Where a server's embeddings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderSource {
    /// The ONNX model in this folder.
    Onnx(std::path::PathBuf),
    /// An OpenAI-compatible embeddings API.
    Http { base_url: String, model: String },
    /// No embeddings, and why.
    Disabled(String),
}

impl EmbedderSource {
    /// Loads the embedder; slow (reads weights, may call the network), so run it off the
    /// request path. None when disabled.
    pub fn load(&self) -> Option<Result<std::sync::Arc<dyn Embedder>, EmbedError>> {
        match self {
            EmbedderSource::Onnx(dir) => Some(
                OnnxEmbedder::load(dir)
                    .map(|model| std::sync::Arc::new(model) as std::sync::Arc<dyn Embedder>),
            ),
            EmbedderSource::Http { base_url, model } => Some(
                HttpEmbedder::connect(base_url, model)
                    .map(|model| std::sync::Arc::new(model) as std::sync::Arc<dyn Embedder>),
            ),
            EmbedderSource::Disabled(_) => None,
        }
    }
}

/// Turns texts into L2-normalised vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// Identifies the model and its weights; vectors of different ids are never mixed.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text, in order, for background work. Blocking.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// One text, on the latency path of a search. Blocking.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut vectors = self.embed(&[text])?;
        vectors.pop().ok_or(EmbedError::Shape(vec![0]))
    }
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
    #[error("the embeddings API at {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Scales a vector to unit length, so that a dot product is the cosine. Some servers
/// (Ollama) return vectors that are not.
fn normalize(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|value| *value /= norm);
    }
    vector
}
