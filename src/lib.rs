//! context-store: an MCP server over stdio that keeps conversations, preferences (and, in
//! later parts, documents and assembled context) for AI clients.
//!
//! # Layout
//! - [`config`]: one `Config` from flags, `CONTEXT_STORE_*` variables and a TOML file.
//! - [`mcp`]: the only module that knows rmcp; tool definitions and error mapping.
//! - [`engine`]: the use cases, over the parts below; knows no MCP types.
//! - [`cache`]: the tiered cache, L1 moka and L2 Redis, with scope generations.
//! - [`store`]: SQLite persistence; the only module that holds SQL.
//! - [`model`]: the records the layers pass to each other.
//! - [`cli`]: the command line (`serve`, `migrate`, `tools-json`).
//! - [`stderr_log`]: the log writer, which never blocks or fails the code that logs.
//!
//! Dependencies point down: `mcp` → `engine` → `cache`, `store`; `model` is a leaf, and
//! `config` only builds the settings of the parts.

pub mod backup;
pub mod cache;
pub mod cli;
pub mod config;
mod counting;
pub mod embed;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod mcp;
pub mod metrics;
pub mod model;
mod own_output;
pub mod stderr_log;
pub mod store;
pub mod tokens;
pub mod transfer;
pub mod vector;
pub mod watch;
pub mod words;
pub mod workspace;

use std::future::Future;

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    cache::{Cache, CacheConfig},
    config::Config,
    embed::EmbedderSource,
    engine::{Documents, EmbedderState, Engine, Limits},
    index::TextIndex,
    store::Store,
    workspace::Workspaces,
};

/// The full-text index's folder inside the data directory.
const INDEX_DIR: &str = "index";

/// Errors that end the process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] mcp::ServeError),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Workspace(#[from] workspace::PathError),
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    #[error(transparent)]
    Export(#[from] transfer::ExportError),
    /// A command that refuses to go on, with the reason for the person who ran it.
    #[error("{0}")]
    Refused(String),
}

/// An error with its sources, "outer: inner: innermost", for logs and the command line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens the data directory and serves MCP on stdio until the client leaves or `shutdown` fires.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    // Held while serving: `context-store restore` refuses to replace a database in use.
    let _serving = backup::ServeLock::shared(&config.data_dir()?)?;
    let engine = start_engine(&config, &cancel, &tasks).await?;
    tasks.spawn(engine.clone().check_integrity_in_background(cancel.clone()));
    tasks.spawn(
        engine
            .clone()
            .checkpoint_periodically(config.checkpoint_interval(), cancel.clone()),
    );
    tasks.spawn(
        engine
            .clone()
            .prune_change_logs_periodically(cancel.clone()),
    );
    if let Some(interval) = config.backup_interval() {
        tasks.spawn(
            engine
                .clone()
                .back_up_periodically(interval, cancel.clone()),
        );
    }
    let roots = engine.workspace_roots();
    if config.watch() && !roots.is_empty() {
        let data_dir = config.data_dir()?;
        tasks.spawn(watch::watch(
            engine.clone(),
            roots,
            data_dir,
            cancel.clone(),
        ));
    }
    if config.watch() && !engine.missing_roots().is_empty() {
        tasks.spawn(watch::watch_missing_roots(
            engine.clone(),
            config.data_dir()?,
            tasks.clone(),
            cancel.clone(),
        ));
    }
    let served = mcp::serve_stdio(engine.clone(), &config.tool_profile(), shutdown).await;
    // Ordered close: the session has stopped taking calls; stop background work, let
    // writes finish, then close the database.
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    engine.close().await;
    served.map_err(RunError::from)
}

/// The workspace roots and the full-text index in `<data-dir>/index`. A root that does not
/// exist yet is reported and used once it appears; one that is not a folder stops the start
/// (a configuration mistake). An index that cannot open leaves search unavailable with the
/// reason, and everything else serving.
async fn open_documents(
    config: &Config,
    data_dir: &std::path::Path,
) -> Result<Documents, RunError> {
    let workspaces = Workspaces::new(&config.workspaces)?;
    for root in workspaces.missing() {
        tracing::warn!(root = %root.display(), "workspace root does not exist; it is used once it appears");
    }
    let index = open_text_index(&data_dir.join(INDEX_DIR))
        .await
        .map(Arc::new)
        .map_err(|error| {
            tracing::error!(%error, "the search index cannot be opened; search is unavailable");
            error.to_string()
        });
    Ok(Documents {
        workspaces,
        index,
        max_file_bytes: config.max_file_bytes(),
        drain: tokio::sync::Mutex::default(),
        staging: Default::default(),
        activity: Default::default(),
    })
}

/// Processes started at once on an empty data directory may race to create the index;
/// the loser of that race finds it created on a second look.
async fn open_text_index(dir: &std::path::Path) -> Result<TextIndex, index::IndexError> {
    let mut attempt = 1;
    loop {
        match TextIndex::open(dir) {
            Err(error) if attempt < 3 => {
                tracing::debug!(%error, attempt, "opening the search index failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Loads the embedding model off the request path, then keeps embedding waiting passages
/// until `cancel` fires. A missing or broken model leaves search on full text.
async fn load_embedder(engine: Engine, source: EmbedderSource, cancel: CancellationToken) {
    let failure = match tokio::task::spawn_blocking(move || source.load()).await {
        Ok(None) => return,
        Ok(Some(Ok(embedder))) => match engine.embedder_loaded(embedder, cancel).await {
            Ok(()) => return,
            Err(error) => error_chain(&error),
        },
        Ok(Some(Err(error))) => error_chain(&error),
        Err(error) => error.to_string(),
    };
    engine.embedder_failed(failure);
}

/// The cache settings with the store's identity; a damaged database that cannot say who it
/// is goes without Redis rather than share entries under a made-up identity.
async fn cache_config(config: &Config, store: &Store) -> Result<CacheConfig, RunError> {
    let mut cache = config.cache();
    match store.identity().await {
        Ok(identity) => cache.store = Some(identity),
        Err(error) if store.damage().is_some() => {
            tracing::warn!(%error, "the damaged database's identity is unreadable");
        }
        Err(error) => return Err(error.into()),
    }
    Ok(cache)
}

/// Opens the store (creating and migrating it on first use) and the cache, and starts the
/// background work that keeps this process's cache in step with the others.
pub async fn start_engine(
    config: &Config,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Engine, RunError> {
    let data_dir = config.data_dir()?;
    let store = Store::open(&data_dir).await?;
    tracing::info!(data_dir = %data_dir.display(), "database ready");
    let cache = Cache::start(cache_config(config, &store).await?, cancel, tasks)?;
    let documents = open_documents(config, &data_dir).await?;
    let source = config.embedder_source(&data_dir)?;
    let embedder = match &source {
        EmbedderSource::Disabled(reason) => {
            tracing::info!(%reason, "semantic search is off");
            EmbedderState::Disabled(reason.clone())
        }
        _ => EmbedderState::Loading,
    };
    let engine = Engine::new(
        store,
        cache,
        documents,
        embedder,
        config.user_id(),
        Limits::from_config(config),
        config.backups(&data_dir),
    );
    tasks.spawn(load_embedder(engine.clone(), source, cancel.clone()));
    // The token counter's tables take about 100 ms to build (2 s in a debug build): not on
    // the first get_context. A detached thread, so that a server stopped before they are
    // built exits at once instead of waiting for them.
    if let Err(error) = std::thread::Builder::new()
        .name("token-tables".into())
        .spawn(tokens::warm)
    {
        tracing::debug!(%error, "the token tables will be built on first use");
    }
    tasks.spawn(engine.clone().follow_history_words(cancel.clone()));
    tasks.spawn(engine.clone().follow_index(cancel.clone()));
    let last_seq = match engine.load_generations().await {
        Ok(last_seq) => last_seq,
        // A damaged file still serves what it can: the cache then starts from nothing.
        Err(error) if engine.database_damaged() => {
            tracing::warn!(%error, "invalidations unreadable on the damaged database");
            0
        }
        Err(error) => return Err(error.into()),
    };
    tasks.spawn(engine.clone().follow_invalidations(
        last_seq,
        config.cache_sync_interval(),
        cancel.clone(),
    ));
    Ok(engine)
}
