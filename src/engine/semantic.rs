//! Semantic search's moving parts: the embedder (loaded in the background), the vectors in
//! memory (following SQLite), and the worker that embeds waiting messages and passages.
//!
//! Passages are written without vectors when a document is indexed, messages when they are
//! saved; any process with a ready embedder claims waiting ones in batches, embeds them and
//! stores the vectors. Messages go first: a user waits on them in `get_context`.
//! Every process follows the stored vectors through `vector_state` (see the migration), so a
//! search anywhere sees every vector committed before it.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    Engine,
    documents::join_error,
    error::{EngineError, Result},
};
use crate::{
    cache::{Lookup, Scope, TtlClass},
    embed::Embedder,
    vector::{VectorHit, VectorIndex},
};

/// Passages embedded per batch: small, so that shutdown never waits long for a batch.
const BATCH: u32 = 8;
/// How long a claimed batch stays with its process before others may take it.
const LEASE_MS: i64 = 120_000;
/// How often an idle worker looks for passages other processes staged.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// A batch starts once no tool call has run for this long (a client's back-to-back calls
/// hold it off; one polling every 50 ms does not)...
const QUIET: Duration = Duration::from_millis(20);
/// ...or once it has waited this long, so that a steady load slows embedding, never stops it.
const PATIENCE: Duration = Duration::from_secs(2);

/// Where the embedder is.
pub enum EmbedderState {
    Loading,
    Ready(Arc<dyn Embedder>),
    Disabled(String),
    Failed(String),
}

/// The embedder's state as tools report it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EmbedderStatus {
    /// loading, ready, disabled or failed.
    pub state: String,
    /// The model and a hash of its weights, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<usize>,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Which vectors to search.
#[derive(Debug, Clone, Copy)]
pub(super) enum Collection {
    /// Document passages, filtered by document id.
    Passages,
    /// Messages, filtered by conversation rowid.
    Messages,
}

pub struct Semantic {
    state: RwLock<EmbedderState>,
    vectors: Arc<RwLock<VectorIndex>>,
    messages: Arc<RwLock<VectorIndex>>,
    /// The `vector_state` version the vectors reflect; the lock serialises refreshes.
    version: tokio::sync::Mutex<i64>,
    wake: tokio::sync::Notify,
}

impl Semantic {
    pub fn new(state: EmbedderState) -> Self {
        Self {
            state: RwLock::new(state),
            vectors: Arc::default(),
            messages: Arc::default(),
            version: tokio::sync::Mutex::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn ready(&self) -> Option<Arc<dyn Embedder>> {
        match &*self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            EmbedderState::Ready(embedder) => Some(embedder.clone()),
            _ => None,
        }
    }

    fn set(&self, state: EmbedderState) {
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = state;
    }

    pub fn status(&self) -> EmbedderStatus {
        let status = |state: &str, reason: Option<&str>| EmbedderStatus {
            state: state.into(),
            id: None,
            dimension: None,
            reason: reason.map(str::to_owned),
        };
        match &*self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            EmbedderState::Loading => status("loading", Some("the embedding model is loading")),
            EmbedderState::Ready(embedder) => EmbedderStatus {
                id: Some(embedder.id().to_owned()),
                dimension: Some(embedder.dimension()),
                ..status("ready", None)
            },
            EmbedderState::Disabled(reason) => status("disabled", Some(reason)),
            EmbedderState::Failed(reason) => status("failed", Some(reason)),
        }
    }

    /// Why semantic search cannot run now, or None when it can.
    pub fn unavailable(&self) -> Option<String> {
        self.status().reason
    }
}

impl Engine {
    /// Installs a loaded embedder: drops vectors of other models, loads this model's vectors,
    /// and starts embedding what waits.
    pub async fn embedder_loaded(
        &self,
        embedder: Arc<dyn Embedder>,
        cancel: CancellationToken,
    ) -> Result<()> {
        let stale = self.store().clear_other_models(embedder.id()).await?;
        if stale > 0 {
            tracing::warn!(
                passages = stale,
                model = embedder.id(),
                "stored vectors came from another model; embedding them again"
            );
        }
        for index in [&self.semantic().vectors, &self.semantic().messages] {
            *index
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                VectorIndex::new(embedder.dimension());
        }
        *self.semantic().version.lock().await = 0;
        // Stored vectors load before the model is announced ready, so that a ready model
        // never searches an empty set.
        self.load_vector_changes(&embedder).await?;
        self.semantic().set(EmbedderState::Ready(embedder.clone()));
        tracing::info!(model = embedder.id(), "embedding model ready");
        self.embed_waiting(embedder, cancel).await;
        Ok(())
    }

    /// Records why the embedder could not load; search keeps running on full text.
    pub fn embedder_failed(&self, reason: String) {
        tracing::error!(%reason, "the embedding model cannot load; semantic search is off");
        self.semantic().set(EmbedderState::Failed(reason));
    }

    /// Tells the worker that new passages or messages wait.
    pub(super) fn wake_embedder(&self) {
        self.semantic().wake.notify_one();
    }

    /// Embeds waiting passages, batch by batch, until `cancel` fires.
    async fn embed_waiting(&self, embedder: Arc<dyn Embedder>, cancel: CancellationToken) {
        while !cancel.is_cancelled() {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.foreground().quiet(QUIET, PATIENCE) => {}
            }
            match self.embed_batch(&embedder).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "embedding passages failed; will retry"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.semantic().wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }

    /// Embeds one batch, of messages if any wait, else of passages; false when nothing waited.
    async fn embed_batch(&self, embedder: &Arc<dyn Embedder>) -> Result<bool> {
        let now = crate::model::to_millis(crate::model::now());
        let messages = self
            .store()
            .claim_unembedded_messages(BATCH, now, LEASE_MS)
            .await?;
        let scopes: Vec<String> = if !messages.is_empty() {
            let (rowids, texts): (Vec<i64>, Vec<String>) = messages.into_iter().unzip();
            let vectors = embed_texts(embedder, texts).await?;
            let pairs: Vec<(i64, Vec<f32>)> = rowids.into_iter().zip(vectors).collect();
            let users = self
                .store()
                .store_message_vectors(embedder.id(), &pairs)
                .await?;
            users
                .into_iter()
                .map(|user| Scope::MessageVectors(user).name())
                .collect()
        } else {
            let batch = self.store().claim_unembedded(BATCH, now, LEASE_MS).await?;
            if batch.is_empty() {
                return Ok(false);
            }
            let texts = batch
                .iter()
                .map(|passage| passage_input(&passage.path, &passage.text))
                .collect();
            let vectors = embed_texts(embedder, texts).await?;
            let pairs: Vec<(i64, Vec<f32>)> = batch
                .iter()
                .map(|passage| passage.id)
                .zip(vectors)
                .collect();
            let workspaces = self.store().store_vectors(embedder.id(), &pairs).await?;
            workspaces
                .into_iter()
                .map(|root| Scope::PassageVectors(root).name())
                .collect()
        };
        let bumped = self.store().bump_generations(&scopes).await?;
        self.after_write(&bumped).await;
        self.refresh_vectors().await?;
        Ok(true)
    }

    /// Brings the in-memory vectors up to what SQLite holds.
    pub(super) async fn refresh_vectors(&self) -> Result<()> {
        match self.semantic().ready() {
            Some(embedder) => self.load_vector_changes(&embedder).await,
            None => Ok(()),
        }
    }

    async fn load_vector_changes(&self, embedder: &Arc<dyn Embedder>) -> Result<()> {
        let mut version = self.semantic().version.lock().await;
        let changes = self.store().vector_changes(embedder.id(), *version).await?;
        if changes.version == *version {
            return Ok(());
        }
        let (vectors, messages) = (
            self.semantic().vectors.clone(),
            self.semantic().messages.clone(),
        );
        let dimension = embedder.dimension();
        tokio::task::spawn_blocking(move || {
            if changes.full {
                replace(&vectors, dimension, &changes.added);
                replace(&messages, dimension, &changes.messages_added);
            } else {
                apply(&vectors, &changes.removed, &changes.added);
                apply(
                    &messages,
                    &changes.messages_removed,
                    &changes.messages_added,
                );
            }
            changes.version
        })
        .await
        .map(|loaded| *version = loaded)
        .map_err(join_error)
    }

    /// The query's vector, cached under the embedding TTL class.
    async fn query_vector(&self, embedder: &Arc<dyn Embedder>, query: &str) -> Result<Vec<f32>> {
        let lookup = Lookup {
            operation: "embed_query",
            params: json!({"model": embedder.id(), "text": query}),
            class: TtlClass::Embedding,
            scopes: Vec::new(),
        };
        let (model, text) = (embedder.clone(), query.to_owned());
        let load = async move {
            tokio::task::spawn_blocking(move || model.embed_query(&text))
                .await
                .map_err(join_error)?
                .map_err(|error| {
                    EngineError::Unavailable(format!("the embedding model failed: {error}"))
                })
        };
        self.cached(lookup, load).await
    }

    /// The passages (or messages) nearest the query by meaning; only in `allowed` documents
    /// (or conversations) when given.
    pub(super) async fn rank_by_meaning(
        &self,
        collection: Collection,
        query: &str,
        depth: usize,
        allowed: Option<Arc<HashSet<i64>>>,
    ) -> Result<Vec<VectorHit>> {
        let embedder = self.semantic().ready().ok_or_else(|| {
            EngineError::Unavailable(
                self.semantic()
                    .unavailable()
                    .unwrap_or_else(|| "the embedding model is not ready".into()),
            )
        })?;
        let started = std::time::Instant::now();
        let vector = self.query_vector(&embedder, query).await?;
        let embedded = started.elapsed();
        self.refresh_vectors().await?;
        let refreshed = started.elapsed();
        let vectors = match collection {
            Collection::Passages => self.semantic().vectors.clone(),
            Collection::Messages => self.semantic().messages.clone(),
        };
        let hits = tokio::task::spawn_blocking(move || {
            vectors
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .search(&vector, depth, allowed.as_deref())
        })
        .await
        .map_err(join_error)?;
        tracing::debug!(
            ?collection,
            embedded_us = embedded.as_micros() as u64,
            refreshed_us = refreshed.as_micros() as u64,
            searched_us = started.elapsed().as_micros() as u64,
            "ranked by meaning"
        );
        Ok(hits)
    }

    /// The embedder's id when it is ready: search results depend on it.
    pub(super) fn embedder_id(&self) -> Option<String> {
        self.semantic()
            .ready()
            .map(|embedder| embedder.id().to_owned())
    }

    /// Vectors this process searches.
    pub(super) fn vector_count(&self) -> usize {
        self.semantic()
            .vectors
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// The embedder's state, for `index_status`.
    pub fn embedder_status(&self) -> EmbedderStatus {
        self.semantic().status()
    }
}

/// Swaps in an index of exactly `all`, built aside so that no search sees it half loaded.
fn replace(index: &RwLock<VectorIndex>, dimension: usize, all: &[(i64, i64, Vec<f32>)]) {
    let mut fresh = VectorIndex::new(dimension);
    for (id, group, vector) in all {
        fresh.insert(*id, *group, vector);
    }
    *index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
}

/// Removals first: a rowid removed and then reused comes back in `added`.
fn apply(index: &RwLock<VectorIndex>, removed: &[i64], added: &[(i64, i64, Vec<f32>)]) {
    let mut index = index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for id in removed {
        index.remove(*id);
    }
    for (id, group, vector) in added {
        index.insert(*id, *group, vector);
    }
}

/// Embeds a background batch on the background thread, at the lowest CPU priority, so that
/// a batch (up to a second of CPU) never slows a query's embedding or a search beside it.
async fn embed_texts(embedder: &Arc<dyn Embedder>, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
    let model = embedder.clone();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: BackgroundJob = Box::new(move || {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let _ = reply.send(model.embed(&texts));
    });
    background_thread()?
        .send(job)
        .map_err(|_| EngineError::Unavailable("the embedding thread stopped".into()))?;
    answer
        .await
        .map_err(|_| EngineError::Unavailable("the embedding thread stopped".into()))?
        .map_err(|error| EngineError::Unavailable(format!("the embedding model failed: {error}")))
}

type BackgroundJob = Box<dyn FnOnce() + Send>;

/// One long-lived thread for background batches: the model's per-thread buffers stay warm,
/// and its lowered priority (which an unprivileged process cannot raise again) is its own.
fn background_thread() -> Result<&'static std::sync::mpsc::Sender<BackgroundJob>> {
    static SENDER: std::sync::OnceLock<std::sync::mpsc::Sender<BackgroundJob>> =
        std::sync::OnceLock::new();
    if let Some(sender) = SENDER.get() {
        return Ok(sender);
    }
    let (sender, jobs) = std::sync::mpsc::channel::<BackgroundJob>();
    std::thread::Builder::new()
        .name("embed-background".into())
        .spawn(move || {
            lowest_priority();
            for job in jobs {
                job();
            }
        })
        .map_err(|error| {
            EngineError::Unavailable(format!("cannot start the embedding thread: {error}"))
        })?;
    // A racing caller's thread, if any, ends at once: its sender is dropped here.
    Ok(SENDER.get_or_init(|| sender))
}

/// Lowers the calling thread's priority to nice 19 (Linux sets nice per thread).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; who = 0 names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// What the model reads for a passage: its file's path, then its text, so that a query
/// naming a module finds it by meaning too.
fn passage_input(path: &str, text: &str) -> String {
    format!("{path}\n{text}")
}
