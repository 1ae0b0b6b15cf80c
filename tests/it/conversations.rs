//! Saving and reading conversations end to end.

use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::support::{call_err, call_ok, data_dir, start, start_with};

fn messages(range: std::ops::Range<usize>) -> Value {
    range
        .map(|n| json!({"message_id": format!("m{n}"), "role": if n % 2 == 0 { "user" } else { "assistant" }, "content": format!("message {n}")}))
        .collect()
}

fn contents(conversation: &Value) -> Vec<String> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn saves_and_reads_back_a_conversation() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let saved = call_ok(
        &client,
        "save_conversation",
        json!({"session_id": "s1", "metadata": {"topic": "rust"}, "messages": [
            {"role": "user", "content": "How do I open a file?", "metadata": {"lang": "en"}},
            {"role": "assistant", "content": "Use std::fs::File::open.", "created_at": "2026-01-02T03:04:05Z"}
        ]}),
    )
    .await;
    assert_eq!(saved["stored_messages"], 2);
    assert_eq!(saved["total_messages"], 2);
    let id = saved["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID");

    let history = call_ok(&client, "get_conversation_history", json!({})).await;
    assert_eq!(history["user_id"], "default");
    assert_eq!(history["truncated"], false);
    assert!(history.get("next_cursor").is_none());
    let conversation = &history["conversations"][0];
    assert_eq!(conversation["conversation_id"], id.as_str());
    assert_eq!(conversation["session_id"], "s1");
    assert_eq!(conversation["metadata"], json!({"topic": "rust"}));
    assert_eq!(
        contents(conversation),
        ["How do I open a file?", "Use std::fs::File::open."]
    );
    assert_eq!(
        conversation["messages"][0]["metadata"],
        json!({"lang": "en"})
    );
    assert_eq!(
        conversation["messages"][1]["created_at"],
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(conversation["messages"][1]["role"], "assistant");

    let single = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": id, "message_offset": 1}),
    )
    .await;
    assert_eq!(contents(&single), ["Use std::fs::File::open."]);
    assert_eq!(single["total_messages"], 2);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn re_saving_the_same_ids_stores_nothing_twice_and_appends_in_order() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let first = json!({"conversation_id": "c-1", "messages": messages(0..3)});
    call_ok(&client, "save_conversation", first.clone()).await;
    let again = call_ok(&client, "save_conversation", first).await;
    assert_eq!(again["stored_messages"], 0);
    assert_eq!(again["skipped_messages"], 3);
    assert_eq!(again["total_messages"], 3);

    let overlap = call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "c-1", "messages": messages(2..5)}),
    )
    .await;
    assert_eq!(overlap["stored_messages"], 2);
    assert_eq!(overlap["total_messages"], 5);

    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "c-1"}),
    )
    .await;
    let expected: Vec<String> = (0..5).map(|n| format!("message {n}")).collect();
    assert_eq!(contents(&conversation), expected);
    let seqs: Vec<i64> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);

    // Stored ids anywhere in a call are skipped; the new ones keep dense positions.
    let repeated = call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "c-1", "messages": [
            {"message_id": "r", "role": "user", "content": "first"},
            {"message_id": "m4", "role": "user", "content": "already stored"},
            {"message_id": "s", "role": "assistant", "content": "last"},
        ]}),
    )
    .await;
    assert_eq!(repeated["stored_messages"], 2);
    assert_eq!(repeated["skipped_messages"], 1);
    assert_eq!(repeated["total_messages"], 7);
    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "c-1", "message_offset": 5}),
    )
    .await;
    assert_eq!(contents(&conversation), ["first", "last"]);
    assert_eq!(conversation["messages"][1]["seq"], 6);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "kept", "user_id": "ann", "messages": messages(0..2)}),
    )
    .await;
    call_ok(
        &client,
        "set_preference",
        json!({"user_id": "ann", "key": "tone", "value": "brief"}),
    )
    .await;
    client.cancel().await.unwrap();

    let client = start(dir.path()).await;
    let history = call_ok(
        &client,
        "get_conversation_history",
        json!({"user_id": "ann"}),
    )
    .await;
    assert_eq!(history["conversations"][0]["conversation_id"], "kept");
    assert_eq!(
        contents(&history["conversations"][0]),
        ["message 0", "message 1"]
    );
    let preferences = call_ok(&client, "get_preferences", json!({"user_id": "ann"})).await;
    assert_eq!(preferences["preferences"], json!({"tone": "brief"}));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn delete_removes_the_conversation_and_its_messages() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "gone", "messages": messages(0..4)}),
    )
    .await;
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "stays", "messages": messages(0..1)}),
    )
    .await;
    let deleted = call_ok(
        &client,
        "delete_conversation",
        json!({"conversation_id": "gone"}),
    )
    .await;
    assert_eq!(deleted["deleted_messages"], 4);

    let error = call_err(
        &client,
        "get_conversation",
        json!({"conversation_id": "gone"}),
    )
    .await;
    assert!(error.starts_with("conversation_id:"), "{error}");
    let error = call_err(
        &client,
        "delete_conversation",
        json!({"conversation_id": "gone"}),
    )
    .await;
    assert!(error.contains("no conversation"), "{error}");

    // The cascade reached the messages table itself, not only the tool's view of it.
    let url = format!("sqlite://{}", dir.path().join("context-store.db").display());
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = 'gone'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!((left, others), (0, 1));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn history_pages_with_a_cursor_and_filters_by_session_and_user() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    for n in 0..5 {
        let session = if n % 2 == 0 { "even" } else { "odd" };
        call_ok(&client, "save_conversation", json!({"conversation_id": format!("c{n}"), "session_id": session, "messages": messages(0..1)})).await;
    }
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "other", "user_id": "bob", "messages": messages(0..1)}),
    )
    .await;

    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = call_ok(
            &client,
            "get_conversation_history",
            json!({"limit": 2, "cursor": cursor}),
        )
        .await;
        seen.extend(
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["conversation_id"].as_str().unwrap().to_owned()),
        );
        match page.get("next_cursor") {
            Some(next) => cursor = next.clone(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["c4", "c3", "c2", "c1", "c0"],
        "newest first, each once"
    );

    let odd = call_ok(
        &client,
        "get_conversation_history",
        json!({"session_id": "odd"}),
    )
    .await;
    let odd: Vec<&str> = odd["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(odd, ["c3", "c1"]);

    let error = call_err(
        &client,
        "save_conversation",
        json!({"conversation_id": "other", "messages": messages(1..2)}),
    )
    .await;
    assert!(error.contains("belongs to another user"), "{error}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn long_results_are_cut_at_the_size_cap_with_a_way_to_continue() {
    let dir = data_dir();
    let client = start_with(dir.path(), &["--max-response-bytes", "4096"]).await;
    let big = "x".repeat(1000);
    let batch: Vec<Value> = (0..10)
        .map(|n| json!({"message_id": format!("m{n}"), "role": "user", "content": big}))
        .collect();
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "older", "messages": messages(0..1)}),
    )
    .await;
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "big", "messages": batch}),
    )
    .await;

    let page = call_ok(&client, "get_conversation_history", json!({})).await;
    assert!(serde_json::to_vec(&page).unwrap().len() <= 4096);
    assert_eq!(page["truncated"], true);
    let first = &page["conversations"][0];
    assert_eq!(first["conversation_id"], "big");
    let shown = first["messages"].as_array().unwrap().len();
    assert!((1..10).contains(&shown), "{shown} messages shown");
    assert_eq!(first["next_message_offset"], shown);
    assert!(
        page["next_cursor"].is_string(),
        "the older conversation is on the next page"
    );

    // get_conversation continues where history stopped, and every message arrives once.
    let mut offset = shown;
    while offset < 10 {
        let rest = call_ok(
            &client,
            "get_conversation",
            json!({"conversation_id": "big", "message_offset": offset}),
        )
        .await;
        let got = rest["messages"].as_array().unwrap();
        assert_eq!(got[0]["seq"], offset);
        offset += got.len();
        assert_eq!(
            rest.get("next_message_offset")
                .cloned()
                .unwrap_or(json!(10)),
            json!(offset)
        );
    }
    let next = call_ok(
        &client,
        "get_conversation_history",
        json!({"cursor": page["next_cursor"]}),
    )
    .await;
    assert_eq!(next["conversations"][0]["conversation_id"], "older");
    client.cancel().await.unwrap();
}
