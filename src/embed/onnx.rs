//! all-MiniLM-L6-v2 through ONNX Runtime, loaded at run time from a model directory.
//!
//! The directory holds `model.onnx`, `tokenizer.json` and
//! `onnxruntime/libonnxruntime.so.*` (see `scripts/fetch-model.sh`). Sentence vectors are
//! the mean of the token vectors under the attention mask, L2-normalised; inputs are
//! truncated at 256 tokens and not padded beyond the longest text of a batch.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ndarray::{Array2, ArrayViewD, Axis};
use ort::{environment::Environment, session::Session, value::Tensor};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use super::{EmbedError, Embedder, normalize};

/// The folder name under `<data-dir>/models/` where the server looks by default.
pub const MODEL_DIR_NAME: &str = "all-MiniLM-L6-v2";
const MAX_TOKENS: usize = 256;
const DIMENSION: usize = 384;
/// One thread each: on two cores a query embedding runs beside the full-text search and the
/// other parts of a call (two query threads made uncached get_context slower: 29.9 against
/// 24.0 ms p50 in BENCHMARKS.md); background batches run at low priority.
const QUERY_THREADS: usize = 1;
const BULK_THREADS: usize = 1;

/// ONNX Runtime can be loaded once per process; later loads reuse the first environment.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

pub struct OnnxEmbedder {
    query: Mutex<Session>,
    bulk: Mutex<Session>,
    tokenizer: Tokenizer,
    input_names: Vec<String>,
    id: String,
}

impl OnnxEmbedder {
    /// Loads the model in `model_dir`. Slow (hundreds of milliseconds): call it off the
    /// request path.
    pub fn load(model_dir: &Path) -> Result<Self, EmbedError> {
        let model = existing(model_dir.join("model.onnx"))?;
        let tokenizer = load_tokenizer(&existing(model_dir.join("tokenizer.json"))?)?;
        let environment = environment(&runtime_library(model_dir)?)?;
        let session = |threads| -> Result<Session, EmbedError> {
            Ok(Session::builder(environment)?
                .with_intra_threads(threads)
                .map_err(ort::Error::from)?
                .commit_from_file(&model)?)
        };
        let (query, bulk) = (session(QUERY_THREADS)?, session(BULK_THREADS)?);
        let input_names = query
            .inputs()
            .iter()
            .map(|input| input.name().to_owned())
            .collect();
        Ok(Self {
            query: Mutex::new(query),
            bulk: Mutex::new(bulk),
            tokenizer,
            input_names,
            id: format!("{MODEL_DIR_NAME}:onnx:{}", weights_hash(&model)?),
        })
    }

    fn run(
        &self,
        session: &Mutex<Session>,
        ids: Array2<i64>,
        mask: Array2<i64>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut inputs = Vec::with_capacity(self.input_names.len());
        for name in &self.input_names {
            let values = match name.as_str() {
                "attention_mask" => mask.clone(),
                "token_type_ids" => Array2::zeros(ids.raw_dim()),
                _ => ids.clone(),
            };
            inputs.push((name.clone(), Tensor::from_array(values)?));
        }
        let mut session = session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(inputs)?;
        let hidden = outputs[0].try_extract_array::<f32>()?;
        pool(hidden, &mask)
    }
}

impl Embedder for OnnxEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_with(&self.bulk, texts)
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut vectors = self.embed_with(&self.query, &[text])?;
        vectors.pop().ok_or(EmbedError::Shape(vec![0]))
    }
}

impl OnnxEmbedder {
    fn embed_with(
        &self,
        session: &Mutex<Session>,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| EmbedError::Tokenizer(error.to_string()))?;
        let width = encodings
            .iter()
            .map(|encoding| encoding.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = Array2::<i64>::zeros((texts.len(), width));
        let mut mask = Array2::<i64>::zeros((texts.len(), width));
        for (row, encoding) in encodings.iter().enumerate() {
            for (column, (&id, &attention)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .enumerate()
            {
                ids[[row, column]] = i64::from(id);
                mask[[row, column]] = i64::from(attention);
            }
        }
        self.run(session, ids, mask)
    }
}

/// Mean of the token vectors under the mask, L2-normalised; or the model's own sentence
/// vectors when it already pools.
fn pool(hidden: ArrayViewD<'_, f32>, mask: &Array2<i64>) -> Result<Vec<Vec<f32>>, EmbedError> {
    let shape = hidden.shape().to_vec();
    let vectors: Vec<Vec<f32>> = match shape.as_slice() {
        [batch, _, dim] if *batch == mask.nrows() && *dim == DIMENSION => hidden
            .axis_iter(Axis(0))
            .zip(mask.rows())
            .map(|(tokens, row)| {
                let mut sum = vec![0f32; DIMENSION];
                let mut count = 0f32;
                for (token, &attention) in tokens.axis_iter(Axis(0)).zip(row) {
                    if attention == 1 {
                        count += 1.0;
                        sum.iter_mut()
                            .zip(token.iter())
                            .for_each(|(total, value)| *total += value);
                    }
                }
                sum.iter_mut().for_each(|total| *total /= count.max(1.0));
                sum
            })
            .collect(),
        [batch, dim] if *batch == mask.nrows() && *dim == DIMENSION => hidden
            .axis_iter(Axis(0))
            .map(|row| row.iter().copied().collect())
            .collect(),
        _ => return Err(EmbedError::Shape(shape)),
    };
    Ok(vectors.into_iter().map(normalize).collect())
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|error| EmbedError::Tokenizer(error.to_string()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(|error| EmbedError::Tokenizer(error.to_string()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// `ORT_DYLIB_PATH` if set, else the library the fetch script put under `onnxruntime/`.
fn runtime_library(model_dir: &Path) -> Result<PathBuf, EmbedError> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return existing(PathBuf::from(path));
    }
    let folder = model_dir.join("onnxruntime");
    let found = std::fs::read_dir(&folder)
        .map_err(|source| EmbedError::Read {
            path: folder.clone(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with("libonnxruntime.so")
                        || name.ends_with(".dylib")
                        || name.ends_with(".dll")
                })
        });
    found.ok_or(EmbedError::Missing(folder.join("libonnxruntime.so")))
}

fn environment(library: &Path) -> Result<&'static Environment, EmbedError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        ort::init_from(library)
            .map_err(|error| error.to_string())?
            .with_name("context-store")
            .build()
            .map_err(|error| error.to_string())
    });
    loaded.as_ref().map_err(|reason| EmbedError::Runtime {
        path: library.to_owned(),
        reason: reason.clone(),
    })
}

fn existing(path: PathBuf) -> Result<PathBuf, EmbedError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmbedError::Missing(path))
    }
}

/// 16 hex characters of SHA-256 over the weights: a different file is a different model.
fn weights_hash(model: &Path) -> Result<String, EmbedError> {
    let bytes = std::fs::read(model).map_err(|source| EmbedError::Read {
        path: model.to_owned(),
        source,
    })?;
    let digest = Sha256::digest(&bytes);
    Ok(hex::encode(&digest[..8]))
}
