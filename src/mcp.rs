//! The MCP face of the server: the only module that knows rmcp and JSON-RPC.

mod error;
mod parameters;
mod resources;
mod server;

use std::future::Future;

use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

pub use self::server::ContextStoreServer;
use crate::engine::Engine;

/// Why serving stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the MCP session could not start")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the MCP session task failed")]
    Join(#[from] tokio::task::JoinError),
}

/// Serves MCP on stdin/stdout until the client closes the pipe or `shutdown` resolves.
pub async fn serve_stdio(
    engine: Engine,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let cancel = CancellationToken::new();
    // Non-blocking pipes when the client launched us with pipes: 2-4x cheaper per call.
    let transport = rmcp::transport::stdio_pipes();
    tokio::pin!(shutdown);
    // A client that never finishes the handshake must not keep a signal from stopping us.
    let running = tokio::select! {
        running = ContextStoreServer::new(engine).serve_with_ct(transport, cancel.clone()) => {
            match running {
                Ok(running) => running,
                // A client that leaves before the handshake (a probe, a cancelled launch) is
                // a normal end, not a failure.
                Err(rmcp::service::ServerInitializeError::ConnectionClosed(reason)) => {
                    tracing::info!(%reason, "the client left before initializing");
                    return Ok(());
                }
                Err(error) => return Err(ServeError::Start(Box::new(error))),
            }
        }
        () = &mut shutdown => {
            tracing::info!("shutting down before the session started");
            return Ok(());
        }
    };
    tokio::select! {
        reason = running.waiting() => {
            tracing::info!(?reason, "client closed the session");
        }
        () = shutdown => {
            tracing::info!("shutting down on signal");
            cancel.cancel();
        }
    }
    Ok(())
}

/// `tools/list` as pretty JSON, the content of `tools.json`.
pub fn tools_json() -> String {
    let tools = ContextStoreServer::tools();
    serde_json::to_string_pretty(&tools).expect("tool definitions always serialise") + "\n"
}
