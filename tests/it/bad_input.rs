//! Mistakes a model makes get a tool error that names the field, and the session goes on.

use serde_json::{Value, json};

use crate::support::{Client, call_err, call_ok, data_dir, start_with};

async fn start_with_limits() -> (tempfile::TempDir, Client) {
    let dir = data_dir();
    let client = start_with(
        dir.path(),
        &[
            "--max-message-bytes",
            "1000",
            "--max-messages-per-call",
            "5",
        ],
    )
    .await;
    (dir, client)
}

fn user_message(content: Value) -> Value {
    json!({"role": "user", "content": content})
}

#[tokio::test]
async fn each_mistake_names_its_field_and_the_next_call_still_works() {
    let (_dir, client) = start_with_limits().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("save_conversation", json!({}), "missing field `messages`"),
        (
            "save_conversation",
            json!({"messages": "hello"}),
            "messages: invalid type: string",
        ),
        (
            "save_conversation",
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role: unknown variant `robot`",
        ),
        (
            "save_conversation",
            json!({"messages": [user_message(json!("ok")), user_message(json!(42))]}),
            "messages[1].content: invalid type: integer",
        ),
        (
            "save_conversation",
            json!({"messages": [{"role": "user"}]}),
            "messages[0]: missing field `content`",
        ),
        (
            "save_conversation",
            json!({"messages": [user_message(json!("x".repeat(1001)))]}),
            "messages[0].content: is 1001 bytes; the limit is 1000",
        ),
        (
            "save_conversation",
            json!({"messages": vec![user_message(json!("x")); 6]}),
            "messages: has 6 messages; the limit is 5",
        ),
        (
            "save_conversation",
            json!({"messages": [], "usr_id": "typo"}),
            "unknown field `usr_id`",
        ),
        (
            "save_conversation",
            json!({"messages": [{"role": "user", "content": "x", "created_at": "yesterday"}]}),
            "messages[0].created_at:",
        ),
        (
            "save_conversation",
            json!({"messages": [], "metadata": [1, 2]}),
            "metadata: invalid type: sequence",
        ),
        (
            "save_conversation",
            json!({"messages": [], "user_id": "u".repeat(200)}),
            "user_id: is 200 bytes; the limit is 128",
        ),
        (
            "save_conversation",
            json!({"messages": [{"message_id": "a", "role": "user", "content": "x"}, {"message_id": "a", "role": "user", "content": "y"}]}),
            "messages[1].message_id: \"a\" appears twice",
        ),
        (
            "get_conversation_history",
            json!({"limit": 0}),
            "limit: must be between 1 and 500",
        ),
        (
            "get_conversation_history",
            json!({"limit": 501}),
            "limit: is 501; the limit is 500",
        ),
        (
            "get_conversation_history",
            json!({"limit": -3}),
            "limit: invalid value: integer `-3`",
        ),
        (
            "get_conversation_history",
            json!({"cursor": "garbage"}),
            "cursor: is not a cursor",
        ),
        (
            "get_conversation",
            json!({"conversation_id": "missing"}),
            "conversation_id: no conversation with id \"missing\"",
        ),
        (
            "get_conversation",
            json!({"conversation_id": "x", "message_offset": -1}),
            "message_offset: must be 0 or more",
        ),
        (
            "get_conversation",
            json!({"conversation_id": "x", "message_limit": 5000}),
            "message_limit: is 5000; the limit is 1000",
        ),
        (
            "delete_conversation",
            json!({"conversation_id": "missing"}),
            "conversation_id: no conversation",
        ),
        (
            "set_preference",
            json!({"key": "k"}),
            "missing field `value`",
        ),
        (
            "set_preference",
            json!({"key": "k", "value": "v".repeat(70_000)}),
            "value: is 70002 bytes of JSON; the limit is 65536",
        ),
        (
            "get_preferences",
            json!({"keys": "theme"}),
            "keys: invalid type: string",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let error = call_err(&client, tool, arguments.clone()).await;
        assert!(
            error.contains(expected),
            "{tool} {arguments}: got {error:?}, expected {expected:?}"
        );
        // The same connection still serves a good call after every bad one.
        call_ok(&client, "get_preferences", json!({})).await;
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_ten_megabyte_argument_gets_a_size_error_not_a_dead_session() {
    let dir = data_dir();
    let client = crate::support::start(dir.path()).await;
    let huge = "y".repeat(10 * 1024 * 1024);
    let error = call_err(
        &client,
        "save_conversation",
        json!({"messages": [user_message(json!(huge))]}),
    )
    .await;
    assert!(
        error.contains("messages[0].content: is 10485760 bytes; the limit is 1048576"),
        "{error}"
    );
    let saved = call_ok(
        &client,
        "save_conversation",
        json!({"messages": [user_message(json!("small"))]}),
    )
    .await;
    assert_eq!(saved["stored_messages"], 1);
    client.cancel().await.unwrap();
}
