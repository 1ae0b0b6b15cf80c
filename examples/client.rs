//! A Rust MCP client on rmcp that starts context-store, saves a conversation and reads it back.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example client
//! ```
//! The server binary is taken from the first argument, `CONTEXT_STORE_BIN`, the build's own
//! target folder, or `context-store` on PATH, in that order.

use std::path::PathBuf;

use anyhow::Context;
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let command = tokio::process::Command::new(server_binary()).configure(|command| {
        command.arg("serve").arg("--data-dir").arg(data_dir.path());
    });
    let client = ().serve(TokioChildProcess::new(command)?).await?;
    let info = client.peer_info().context("the server sent no info")?;
    let server = info
        .server_info
        .as_ref()
        .context("the server did not name itself")?;
    eprintln!("connected to {} {}", server.name, server.version);

    let saved = call(
        &client,
        "save_conversation",
        json!({
            "session_id": "example",
            "messages": [
                {"message_id": "m1", "role": "user", "content": "What is context-store?"},
                {"message_id": "m2", "role": "assistant", "content": "An MCP storage server."}
            ]
        }),
    )
    .await?;
    eprintln!("saved: {saved}");

    let history = call(
        &client,
        "get_conversation_history",
        json!({"session_id": "example"}),
    )
    .await?;
    for message in history["conversations"][0]["messages"]
        .as_array()
        .into_iter()
        .flatten()
    {
        eprintln!("{}: {}", message["role"], message["content"]);
    }
    client.cancel().await?;
    Ok(())
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Value> {
    let Value::Object(arguments) = arguments else {
        anyhow::bail!("arguments must be an object");
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await?;
    if result.is_error == Some(true) {
        anyhow::bail!("{tool} failed: {:?}", result.content);
    }
    result.structured_content.context("structured content")
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("CONTEXT_STORE_BIN"))
    {
        return path.into();
    }
    // target/<profile>/examples/client → target/<profile>/context-store
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("context-store")));
    sibling
        .filter(|path| path.exists())
        .unwrap_or_else(|| "context-store".into())
}
