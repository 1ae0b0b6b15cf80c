//! Import and export through the CLI, checked through the tools: ChatGPT and Claude exports
//! (hand-built here in their formats), the project's JSONL both ways, and Markdown.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{call_ok, cli, data_dir, start};

fn chatgpt_export() -> Value {
    let node = |id: &str, parent: Option<&str>, role: &str, parts: Value| {
        json!({ "id": id, "parent": parent, "children": [], "message": {
            "id": id, "author": { "role": role }, "create_time": 1_700_000_000.0,
            "content": { "content_type": "multimodal_text", "parts": parts } } })
    };
    json!([
        { "id": "g1", "title": "Café plans ☕", "create_time": 1_700_000_000.0, "current_node": "a2",
          "mapping": {
              "root": { "id": "root", "parent": null, "message": null },
              "u1": node("u1", Some("root"), "user", json!(["Where should we meet? 東京"])),
              "a1": node("a1", Some("u1"), "assistant", json!(["An abandoned branch"])),
              "a2": node("a2", Some("u1"), "assistant",
                  json!(["At the café.", { "content_type": "image_asset_pointer" }])),
          } },
        { "id": "g2", "title": "Empty", "current_node": "root",
          "mapping": { "root": { "id": "root", "parent": null, "message": null } } },
    ])
}

fn claude_export() -> Value {
    json!([
        { "uuid": "c1", "name": "Poem", "created_at": "2024-05-01T10:00:00Z", "chat_messages": [
            { "uuid": "m1", "sender": "human", "text": "Write a haiku", "created_at": "2024-05-01T10:00:01Z",
              "attachments": [{ "file_name": "notes.txt", "extracted_content": "about rain" }] },
            { "uuid": "m2", "sender": "assistant", "content": [{ "type": "text", "text": "Rain on the tin roof" }],
              "created_at": "2024-05-01T10:00:02Z" },
        ] },
    ])
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_chatgpt_export_imports_the_thread_the_user_saw() {
    let dir = data_dir();
    let file = write_json(dir.path(), "conversations.json", &chatgpt_export());
    let data = dir.path().join("data");
    let output = cli(&data, &["import", &file]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with("1 conversations: stored 2 messages"),
        "{output:?}"
    );
    assert!(
        stdout(&output).contains("1 empty conversations"),
        "{output:?}"
    );

    let client = start(&data).await;
    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "chatgpt:g1"}),
    )
    .await;
    let contents: Vec<&str> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "Where should we meet? 東京",
            "At the café.\n[image_asset_pointer not imported]"
        ]
    );
    assert_eq!(conversation["metadata"]["title"], "Café plans ☕");
    assert_eq!(conversation["messages"][0]["message_id"], "chatgpt:u1");
    assert_eq!(
        conversation["messages"][0]["created_at"],
        "2023-11-14T22:13:20Z"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_claude_export_keeps_attachments_under_their_message() {
    let dir = data_dir();
    let file = write_json(dir.path(), "conversations.json", &claude_export());
    let data = dir.path().join("data");
    let output = cli(
        &data,
        &["import", "--format", "claude", "--user", "ann", &file],
    );
    assert!(output.status.success(), "{output:?}");

    let client = start(&data).await;
    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "claude:c1"}),
    )
    .await;
    assert_eq!(conversation["user_id"], "ann");
    assert_eq!(
        conversation["messages"][0]["content"],
        "Write a haiku\n\n[attachment notes.txt]\nabout rain"
    );
    assert_eq!(conversation["messages"][1]["role"], "assistant");
    client.cancel().await.unwrap();
}

#[test]
fn importing_the_same_file_twice_stores_nothing_the_second_time() {
    let dir = data_dir();
    let file = write_json(dir.path(), "conversations.json", &chatgpt_export());
    let data = dir.path().join("data");
    assert!(cli(&data, &["import", &file]).status.success());
    let again = cli(&data, &["import", &file]);
    assert!(again.status.success(), "{again:?}");
    assert!(
        stdout(&again).starts_with("1 conversations: stored 0 messages, skipped 2 already stored"),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_truncated_file_names_where_it_broke_and_imports_only_whole_conversations() {
    let dir = data_dir();
    let whole = serde_json::to_string(&claude_export()).unwrap();
    let second = whole.replacen("\"c1\"", "\"c2\"", 1);
    let text = format!(
        "[{}, {}",
        &whole[1..whole.len() - 1],
        &second[1..second.len() / 2]
    );
    let path = dir.path().join("cut.json");
    std::fs::write(&path, text).unwrap();
    let data = dir.path().join("data");
    let output = cli(
        &data,
        &["import", "--format", "claude", path.to_str().unwrap()],
    );
    assert!(!output.status.success(), "{output:?}");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("conversation #1 (line 1, column"),
        "{errors}"
    );

    let client = start(&data).await;
    let history = call_ok(&client, "get_conversation_history", json!({})).await;
    let ids: Vec<&str> = history["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude:c1"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn export_then_import_into_an_empty_store_gives_the_same_conversations_and_preferences() {
    let dir = data_dir();
    let source = dir.path().join("source");
    let client = start(&source).await;
    let mut conversations = Vec::new();
    for (index, session) in ["s1", "s2", "s1"].iter().enumerate() {
        let saved = call_ok(
            &client,
            "save_conversation",
            json!({
                "session_id": session,
                "metadata": {"topic": index, "tags": ["a", "ü"]},
                "messages": [
                    {"message_id": format!("q{index}"), "role": "user", "content": format!("question {index}\n  with ``` fences and ünïcode\t")},
                    {"role": "assistant", "content": "answer", "metadata": {"model": "m"}},
                    {"role": "tool", "content": " "},
                ],
            }),
        )
        .await;
        conversations.push(saved["conversation_id"].as_str().unwrap().to_owned());
    }
    call_ok(
        &client,
        "set_preference",
        json!({"key": "theme", "value": {"dark": true}}),
    )
    .await;
    call_ok(
        &client,
        "set_preference",
        json!({"key": "lang", "value": "fr"}),
    )
    .await;
    let before = read_all(&client, &conversations).await;
    client.cancel().await.unwrap();

    let file = dir.path().join("export.jsonl");
    let exported = cli(&source, &["export", "--out", file.to_str().unwrap()]);
    assert!(exported.status.success(), "{exported:?}");
    let target = dir.path().join("target");
    let imported = cli(&target, &["import", file.to_str().unwrap()]);
    assert!(imported.status.success(), "{imported:?}");

    let client = start(&target).await;
    assert_eq!(read_all(&client, &conversations).await, before);
    client.cancel().await.unwrap();
}

/// Every conversation's messages (ids, order, roles, content, metadata, times), session and
/// metadata, and the preferences.
async fn read_all(client: &crate::support::Client, ids: &[String]) -> Value {
    let mut all = Vec::new();
    for id in ids {
        let conversation =
            call_ok(client, "get_conversation", json!({"conversation_id": id})).await;
        all.push(json!({
            "id": id,
            "session": conversation["session_id"],
            "metadata": conversation["metadata"],
            "messages": conversation["messages"],
        }));
    }
    let preferences = call_ok(client, "get_preferences", json!({})).await;
    json!({"conversations": all, "preferences": preferences["preferences"]})
}

#[tokio::test]
async fn markdown_export_writes_a_file_per_conversation() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let client = start(&data).await;
    for content in ["one", "two"] {
        call_ok(
            &client,
            "save_conversation",
            json!({"messages": [{"role": "user", "content": content}]}),
        )
        .await;
    }
    client.cancel().await.unwrap();
    let folder = dir.path().join("notes");
    let output = cli(
        &data,
        &[
            "export",
            "--format",
            "markdown",
            "--out",
            folder.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let mut texts: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 2);
    assert!(
        texts.iter().any(|text| text.contains("```text\none\n```")),
        "{texts:?}"
    );
    assert!(texts[0].starts_with("---\nconversation_id: "), "{texts:?}");
}

#[tokio::test]
async fn a_zipped_chatgpt_export_imports_as_downloaded() {
    use std::io::Write;
    let dir = data_dir();
    let path = dir.path().join("export.zip");
    let mut archive = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    archive.start_file("chat.html", options).unwrap();
    archive.write_all(b"<html></html>").unwrap();
    archive
        .start_file("export/conversations.json", options)
        .unwrap();
    archive
        .write_all(&serde_json::to_vec(&chatgpt_export()).unwrap())
        .unwrap();
    archive.finish().unwrap();
    let data = dir.path().join("data");
    let output = cli(&data, &["import", path.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with("1 conversations: stored 2 messages"),
        "{output:?}"
    );

    let client = start(&data).await;
    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "chatgpt:g1"}),
    )
    .await;
    assert_eq!(
        conversation["messages"][0]["content"],
        "Where should we meet? 東京"
    );
    client.cancel().await.unwrap();
}
