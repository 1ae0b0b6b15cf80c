//! Tool profiles: `--tools` and `--read-only` (also from the environment and the file).

use serde_json::json;

use crate::support::{call, call_err, call_ok, data_dir, server_command, start_with};

async fn listed(client: &crate::support::Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn only_the_named_tools_are_listed_and_callable() {
    let dir = data_dir();
    let client = start_with(dir.path(), &["--tools", "get_context, health"]).await;
    assert_eq!(listed(&client).await, ["get_context", "health"]);
    let refused = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("save_conversation").with_arguments(
                json!({"messages": [{"role": "user", "content": "x"}]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let health = call_ok(&client, "health", json!({})).await;
    assert_eq!(
        health["served"],
        json!({"tools": ["get_context", "health"], "read_only": false})
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_read_only_server_lists_only_readers_and_refuses_writes_saying_why() {
    let dir = data_dir();
    let client = start_with(dir.path(), &["--read-only"]).await;
    let names = listed(&client).await;
    for writer in [
        "save_conversation",
        "set_preference",
        "delete_conversation",
        "index_workspace",
        "create_backup",
    ] {
        assert!(
            !names.iter().any(|name| name == writer),
            "{writer} is listed: {names:?}"
        );
    }
    for reader in [
        "get_context",
        "get_conversation_history",
        "search_documents",
        "health",
    ] {
        assert!(
            names.iter().any(|name| name == reader),
            "{reader} is missing: {names:?}"
        );
    }
    let error = call_err(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert!(error.contains("read-only"), "{error}");
    call_ok(&client, "get_conversation_history", json!({})).await;
    let health = call_ok(&client, "health", json!({})).await;
    assert_eq!(health["served"]["read_only"], true);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn profiles_come_from_the_environment_and_the_file_too() {
    let dir = data_dir();
    let file = dir.path().join("context-store.toml");
    std::fs::write(&file, "tools = [\"health\", \"save_conversation\"]\n").unwrap();
    let mut command = server_command(&dir.path().join("data"));
    command
        .arg("--config")
        .arg(&file)
        .env("CONTEXT_STORE_READ_ONLY", "true");
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    assert_eq!(listed(&client).await, ["health"]);
    let result = call(&client, "save_conversation", json!({"messages": []})).await;
    assert_eq!(result.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[test]
fn an_unknown_tool_in_the_profile_stops_the_start_naming_it() {
    let dir = data_dir();
    let output = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--tools", "get_context,get_contxt", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("--tools: no tool named get_contxt"),
        "{errors}"
    );
}
