//! context-store: an MCP server over stdio that keeps conversations, preferences (and, in
//! later parts, documents and assembled context) for AI clients.
//!
//! # Layout
//! - [`config`]: one `Config` from flags, `CONTEXT_STORE_*` variables and a TOML file.
//! - [`mcp`]: the only module that knows rmcp; tool definitions and error mapping.
//! - [`engine`]: the use cases, over the parts below; knows no MCP types.
//! - [`store`]: SQLite persistence; the only module that holds SQL.
//! - [`model`]: the records the layers pass to each other.
//! - [`cli`]: the command line (`serve`, `migrate`, `tools-json`).
//!
//! Dependencies point down: `mcp` → `engine` → `store`; `model` and `config` are leaves.

pub mod cli;
pub mod config;
pub mod engine;
pub mod mcp;
pub mod model;
pub mod store;

use std::future::Future;

use crate::{
    config::Config,
    engine::{Engine, Limits},
    store::Store,
};

/// Errors that end the process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] mcp::ServeError),
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
    let engine = open_engine(&config).await?;
    let served = mcp::serve_stdio(engine.clone(), shutdown).await;
    // Ordered close: the session has stopped taking calls; let writes finish, then close.
    engine.close().await;
    served.map_err(RunError::from)
}

/// Opens (creating and migrating on first use) the store in the configured data directory.
pub async fn open_engine(config: &Config) -> Result<Engine, RunError> {
    let data_dir = config.data_dir()?;
    let store = Store::open(&data_dir).await?;
    tracing::info!(data_dir = %data_dir.display(), "database ready");
    Ok(Engine::new(
        store,
        config.user_id(),
        Limits::from_config(config),
    ))
}
