//! The MCP face of the server: the only module that knows rmcp and JSON-RPC.

mod admission;
mod error;
mod framing;
mod parameters;
mod profile;
mod resources;
mod schema;
mod server;
mod wire;

use std::{future::Future, time::Duration};

use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

pub use self::server::ContextStoreServer;
use crate::{config::ToolProfile, engine::Engine};

/// Why serving stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the MCP session could not start")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Profile(#[from] profile::UnknownTools),
    #[error("the MCP session task failed")]
    Join(#[from] tokio::task::JoinError),
}

/// How long a stopping session waits for its calls to give up, so that none touches the
/// database after it closes. Cancelled calls stop at their next await.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Serves MCP on stdin/stdout until the client closes stdin or stdout, or `shutdown`
/// resolves.
pub async fn serve_stdio(
    engine: Engine,
    tool_profile: &ToolProfile,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let cancel = CancellationToken::new();
    // Cancelled by the transport when stdin ends or stdout breaks: long calls stop then.
    let ended = CancellationToken::new();
    let wire = wire::Wire::new();
    let transport = framing::stdio(wire.clone(), ended.clone());
    let server = ContextStoreServer::new(engine)
        .with_profile(tool_profile)?
        .with_wire(wire)
        .with_session_end(ended.clone());
    tokio::pin!(shutdown);
    // A client that never finishes the handshake must not keep a signal from stopping us.
    let running = tokio::select! {
        running = server.serve_with_ct(transport, cancel.clone()) => {
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
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        reason = &mut waiting => {
            tracing::info!(?reason, "client closed the session");
        }
        () = shutdown => {
            tracing::info!("shutting down on signal");
            ended.cancel();
            cancel.cancel();
            if tokio::time::timeout(STOP_GRACE, waiting).await.is_err() {
                tracing::warn!("calls still running at shutdown are abandoned");
            }
        }
    }
    Ok(())
}

/// Decodes `arguments` as the tool named `tool` does before it runs (for the fuzz targets):
/// Ok, or the error the model would read. Unknown tools are an error too.
#[doc(hidden)]
pub fn decode_tool_arguments(tool: &str, arguments: serde_json::Value) -> Result<(), String> {
    use crate::engine::*;
    fn decode<T: serde::de::DeserializeOwned>(arguments: serde_json::Value) -> Result<(), String> {
        parameters::parse::<T>(arguments)
            .map(drop)
            .map_err(|error| error.to_string())
    }
    match tool {
        "get_context" => decode::<GetContext>(arguments),
        "save_conversation" => decode::<SaveConversation>(arguments),
        "get_conversation_history" => decode::<ConversationHistory>(arguments),
        "get_conversation" => decode::<GetConversation>(arguments),
        "delete_conversation" => decode::<DeleteConversation>(arguments),
        "set_preference" => decode::<SetPreference>(arguments),
        "get_preferences" => decode::<GetPreferences>(arguments),
        "delete_preference" => decode::<DeletePreference>(arguments),
        "invalidate_cache" => decode::<InvalidateCache>(arguments),
        "index_workspace" => decode::<IndexWorkspace>(arguments),
        "index_document" => decode::<IndexDocument>(arguments),
        "index_status" => decode::<IndexStatusRequest>(arguments),
        "search_documents" => decode::<SearchDocuments>(arguments),
        "create_backup" => decode::<CreateBackup>(arguments),
        "list_backups" => decode::<ListBackups>(arguments),
        "health" => decode::<HealthRequest>(arguments),
        other => Err(format!("unknown tool {other:?}")),
    }
}

/// True when the stdio guard answers `line` itself (for the fuzz targets).
#[doc(hidden)]
pub fn guard_answers(line: &[u8]) -> bool {
    framing::answers(line)
}

/// `tools/list` as pretty JSON, the content of `tools.json`.
pub fn tools_json() -> String {
    let tools = ContextStoreServer::tools();
    serde_json::to_string_pretty(&tools).expect("tool definitions always serialise") + "\n"
}
