//! The one place that maps engine errors to MCP tool results.
//!
//! A mistake the model can correct becomes a tool error (`isError: true`) whose text names
//! the field; a retryable storage condition says so; an internal fault is logged with its
//! whole cause chain and shown as a short message.

use rmcp::{
    ErrorData,
    handler::server::tool::IntoCallToolResult,
    model::{CallToolResponse, CallToolResult, ContentBlock},
};

use super::parameters::InvalidArguments;
use crate::{engine::EngineError, error_chain as chain};

/// Why a tool call failed, as the model will read it.
#[derive(Debug)]
pub struct ToolError(String);

impl ToolError {
    /// The answer to a call the client cancelled or the session's end stopped.
    pub fn cancelled(tool: &str) -> Self {
        ToolError(format!(
            "{tool} was cancelled; what it did so far is kept, and calling it again goes on \
             from there"
        ))
    }
}

impl From<InvalidArguments> for ToolError {
    fn from(error: InvalidArguments) -> Self {
        ToolError(error.to_string())
    }
}

impl From<EngineError> for ToolError {
    fn from(error: EngineError) -> Self {
        match error.root() {
            EngineError::Store(store) if store.is_retryable() => {
                tracing::warn!(error = %chain(&error), "tool call failed, retryable");
                ToolError(format!("{store} (retryable)"))
            }
            EngineError::Store(store) if store.is_damage() => {
                tracing::error!(error = %chain(&error), "tool call failed on a damaged database");
                ToolError(store.to_string())
            }
            EngineError::Store(store) if store.is_detached() => {
                tracing::error!(error = %chain(&error), "write refused: the database file moved");
                ToolError(store.to_string())
            }
            EngineError::Store(store) => {
                tracing::error!(error = %chain(&error), "tool call failed");
                ToolError(format!(
                    "internal error: {store}; details are in the server log"
                ))
            }
            _ => ToolError(error.to_string()),
        }
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(self.0)]).into())
    }
}

/// An engine error as a JSON-RPC error, for requests that are not tool calls (resources,
/// prompts, completions): a missing thing is `not_found`, a bad argument invalid params.
pub fn protocol_error(error: EngineError, not_found: impl Fn(String) -> ErrorData) -> ErrorData {
    match error.root() {
        EngineError::NotFound { .. } => not_found(error.to_string()),
        EngineError::Invalid { .. } | EngineError::Conflict { .. } => {
            ErrorData::invalid_params(error.to_string(), None)
        }
        _ => {
            tracing::error!(error = %chain(&error), "request failed");
            ErrorData::internal_error(ToolError::from(error).0, None)
        }
    }
}
