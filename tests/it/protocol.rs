//! The MCP surface: protocol versions, server identity, tools.json, and a clean stdout.

use rmcp::{
    model::ProtocolVersion,
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::TokioChildProcess,
};
use serde_json::{Value, json};

use crate::support::{RawServer, data_dir, repo_file, server_command, text_of};

fn tools_json_file() -> Value {
    let text =
        std::fs::read_to_string(repo_file("tools.json")).expect("tools.json at the top level");
    serde_json::from_str(&text).expect("tools.json is JSON")
}

#[tokio::test]
async fn answers_initialize_for_each_handshake_version_with_its_own_identity() {
    let dir = data_dir();
    for version in ["2025-06-18", "2025-11-25"] {
        let mut server = RawServer::spawn(dir.path());
        let answer = server.initialize(version).await;
        let result = &answer["result"];
        assert_eq!(result["protocolVersion"], version);
        assert_eq!(result["serverInfo"]["name"], "context-store");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(result["capabilities"]["tools"].is_object());
        let tools = server.request(1, "tools/list", json!({})).await;
        assert_eq!(
            tools["result"]["tools"],
            tools_json_file(),
            "tools.json is stale: run `cargo run -- tools-json > tools.json`"
        );
        server.finish().await;
    }
}

#[tokio::test]
async fn serves_the_2026_07_28_revision_without_initialize() {
    let dir = data_dir();
    let (transport, _) = TokioChildProcess::builder(server_command(dir.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client = ().serve_with_lifecycle(transport, lifecycle).await.expect("discover handshake");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(serde_json::to_value(&tools).unwrap(), tools_json_file());
    let params = rmcp::model::CallToolRequestParams::new("get_preferences")
        .with_arguments(Default::default());
    let result = client.call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_tools_json_command_prints_the_committed_file() {
    let output = std::process::Command::new(crate::support::BIN)
        .arg("tools-json")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, tools_json_file());
}

#[tokio::test]
async fn every_stdout_line_is_json_rpc_even_when_calls_fail() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let ok = server
        .call_tool(
            1,
            "save_conversation",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(ok["result"]["isError"], false);
    let tool_error = server
        .call_tool(2, "save_conversation", json!({"messages": 7}))
        .await;
    assert_eq!(tool_error["result"]["isError"], true);
    let unknown_tool = server.call_tool(3, "no_such_tool", json!({})).await;
    assert!(unknown_tool["error"]["code"].is_i64(), "{unknown_tool}");
    let unknown_method = server.request(4, "no/such/method", json!({})).await;
    assert_eq!(unknown_method["error"]["code"], -32601);
    server.send_raw(b"this is not json\n").await;
    let after = server.call_tool(5, "get_preferences", json!({})).await;
    assert_eq!(
        after["result"]["isError"], false,
        "still serving after garbage"
    );

    let lines = server.finish().await;
    assert!(lines.len() >= 6);
    for line in lines {
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
}
