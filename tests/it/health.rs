//! `health`, `stats://metrics`, and every tool's result against its declared output schema.

use std::time::Duration;

use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

use crate::support::{Client, call, call_err, call_ok, data_dir, start, start_with, text_of};

async fn health(client: &Client) -> Value {
    call_ok(client, "health", json!({})).await
}

/// Waits until the background integrity check has reported.
async fn checked_health(client: &Client) -> Value {
    for _ in 0..100 {
        let report = health(client).await;
        if report["database"]["integrity"].is_object() {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the integrity check never reported");
}

#[tokio::test]
async fn health_reports_each_part_and_each_tools_calls_errors_and_latency() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    for n in 0..3 {
        let message = json!({"role": "user", "content": format!("message {n}")});
        call_ok(&client, "save_conversation", json!({"messages": [message]})).await;
    }
    call_err(
        &client,
        "save_conversation",
        json!({"messages": "not a list"}),
    )
    .await;
    call_ok(&client, "get_preferences", json!({})).await;

    let report = checked_health(&client).await;
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    let database = &report["database"];
    assert_eq!(database["reachable"], true);
    assert_eq!(database["schema_version"], database["known_schema_version"]);
    assert!(database["file_bytes"].as_u64().unwrap() > 0);
    assert!(database["wal_bytes"].is_u64());
    assert_eq!(database["integrity"]["result"], "ok");
    assert!(database.get("damaged").is_none());
    assert_eq!(report["redis"]["state"], "not configured");
    assert_eq!(report["index"]["documents"], 0);
    assert_eq!(report["embedder"]["state"], "disabled");
    assert!(report["cache"]["l1"]["misses"].as_u64().unwrap() > 0);

    let tools = report["tools"].as_array().unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|tool| tool["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {tools:?}"))
            .clone()
    };
    let saves = tool("save_conversation");
    assert_eq!(saves["calls"], 4);
    assert_eq!(saves["errors"], 1);
    let (p50, p95, p99, max) = (
        saves["p50_us"].as_u64().unwrap(),
        saves["p95_us"].as_u64().unwrap(),
        saves["p99_us"].as_u64().unwrap(),
        saves["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max, "{saves}");
    assert_eq!(tool("get_preferences")["calls"], 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn metrics_resource_is_prometheus_text_with_the_health_figures() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    call_ok(&client, "get_preferences", json!({})).await;
    call_ok(&client, "get_preferences", json!({})).await;
    let listed = client.list_all_resources().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|resource| resource.uri == "stats://metrics")
    );

    let read = client
        .read_resource(ReadResourceRequestParams::new("stats://metrics"))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &read.contents[0]
    else {
        panic!("text contents expected");
    };
    assert_eq!(mime_type.as_deref(), Some("text/plain; version=0.0.4"));
    assert!(
        text.contains("context_store_tool_calls_total{tool=\"get_preferences\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE context_store_tool_latency_seconds summary"),
        "{text}"
    );
    assert!(text.contains("context_store_database_damaged 0"), "{text}");
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("context_store_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn every_tool_answers_with_structured_content_its_output_schema_accepts() {
    let dir = data_dir();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join("notes.md"),
        "# Notes\nThe tide table.\n",
    )
    .unwrap();
    let root = workspace.path().to_str().unwrap();
    let client = start_with(dir.path(), &["--workspace", root]).await;
    let tools = client.list_all_tools().await.unwrap();
    let saved = call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "tide tables"}]}),
    )
    .await;
    let id = saved["conversation_id"].clone();
    let calls = [
        (
            "save_conversation",
            json!({"conversation_id": id, "messages": [{"role": "assistant", "content": "ok"}]}),
        ),
        ("get_conversation_history", json!({})),
        ("get_conversation", json!({"conversation_id": id})),
        ("set_preference", json!({"key": "tone", "value": "brief"})),
        ("get_preferences", json!({})),
        ("delete_preference", json!({"key": "tone"})),
        (
            "invalidate_cache",
            json!({"event": "preference_update", "user_id": "default"}),
        ),
        ("index_workspace", json!({"path": root})),
        (
            "index_document",
            json!({"path": format!("{root}/notes.md")}),
        ),
        ("index_status", json!({})),
        ("search_documents", json!({"query": "tide"})),
        ("get_context", json!({"query": "tide"})),
        ("create_backup", json!({})),
        ("list_backups", json!({})),
        ("health", json!({})),
        ("delete_conversation", json!({"conversation_id": id})),
    ];
    assert_eq!(calls.len(), tools.len(), "every tool is called once");
    for (name, arguments) in calls {
        let tool = tools.iter().find(|tool| tool.name == name).unwrap();
        let schema = Value::Object(
            (*tool
                .output_schema
                .clone()
                .unwrap_or_else(|| panic!("{name} has no output schema")))
            .clone(),
        );
        let result = call(&client, name, arguments).await;
        assert_ne!(result.is_error, Some(true), "{name}: {}", text_of(&result));
        let content = result
            .structured_content
            .unwrap_or_else(|| panic!("{name}: no structured content"));
        if let Err(problem) = conforms(&content, &schema, &schema, "$") {
            panic!("{name}: {problem}\n{content:#}");
        }
    }
    client.cancel().await.unwrap();
}

/// A small JSON Schema check (type, properties, required, items, $ref, anyOf/oneOf, enum):
/// enough to catch a result that drifted from the schema clients validate it against.
fn conforms(value: &Value, schema: &Value, root: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        let target = root["$defs"]
            .get(name)
            .or_else(|| root["definitions"].get(name));
        return conforms(
            value,
            target.ok_or(format!("{at}: unknown {reference}"))?,
            root,
            at,
        );
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array)
            && !options
                .iter()
                .any(|option| conforms(value, option, root, at).is_ok())
        {
            return Err(format!("{at}: matches none of {key}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} not in {allowed:?}"));
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !kinds.iter().any(|kind| is_kind(value, kind)) {
            return Err(format!("{at}: {value} is not {kinds:?}"));
        }
    }
    if let Value::Object(fields) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            if !fields.contains_key(required) {
                return Err(format!("{at}: missing required {required}"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, field) in fields {
                match properties.get(key) {
                    Some(property) => conforms(field, property, root, &format!("{at}.{key}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{at}: {key} is not allowed"));
                    }
                    None => {}
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (index, element) in items.iter().enumerate() {
            conforms(element, item, root, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

fn is_kind(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

#[tokio::test]
async fn health_reports_redis_up_with_its_round_trip_then_down_when_it_dies() {
    let mut redis = crate::redis::RedisServer::start();
    let dir = data_dir();
    let url = redis.url();
    let client = start_with(dir.path(), &["--redis-url", &url]).await;
    let report = health(&client).await;
    let up = &report["redis"];
    assert_eq!(up["configured"], true);
    assert_eq!(up["state"], "up", "{report:#}");
    assert_eq!(up["circuit"], "closed");
    assert!(up["round_trip_us"].as_u64().unwrap() > 0);
    assert_eq!(report["status"], "ok");

    redis.kill();
    let report = health(&client).await;
    assert_eq!(report["redis"]["state"], "down", "{report:#}");
    assert!(report["redis"].get("round_trip_us").is_none());
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["cache"]["l2"]["circuit"], report["redis"]["circuit"]);
    // Every other part still answers.
    for _ in 0..3 {
        call_ok(
            &client,
            "save_conversation",
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        call_ok(&client, "get_conversation_history", json!({})).await;
    }
    let report = health(&client).await;
    assert_eq!(report["redis"]["circuit"], "open", "{report:#}");
    assert_eq!(report["cache"]["l2"]["circuit"], "open", "{report:#}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_health_command_checks_a_data_directory() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    client.cancel().await.unwrap();
    let output = crate::support::cli(dir.path(), &["health", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["database"]["integrity"]["result"], "ok");
    let output = crate::support::cli(dir.path(), &["health"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("status: ok\ndatabase: "), "{text}");
}
