//! get_context end to end: relevance, budgets, caching and freshness (in one process and
//! across two sharing a data directory and Redis), and the resources and prompts beside it.

use std::{fs, time::Duration};

use rmcp::{
    ServiceError,
    model::{
        ArgumentInfo, CompleteRequestParams, ErrorCode, GetPromptRequestParams,
        PaginatedRequestParams, ReadResourceRequestParams, Reference, ResourceContents,
        Role as PromptRole,
    },
};
use serde_json::{Value, json};

use crate::{
    redis::RedisServer,
    support::{
        Client, call, call_err, call_ok, data_dir, model_dir, start, start_with, text_of,
        wait_for_index,
    },
};

/// A workspace with one file on search engines, one on cooking, and a long one.
fn workspace() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("proj");
    fs::create_dir_all(root.join("notes")).unwrap();
    fs::write(
        root.join("notes/search.md"),
        "# Search engine notes\n\nTantivy merges segments in the background.\n\
         Segment merging uses the LogMergePolicy by default.\n",
    )
    .unwrap();
    fs::write(
        root.join("notes/kitchen.md"),
        "# Kitchen\n\nBoil the pasta for nine minutes and salt the water.\n",
    )
    .unwrap();
    let long: String = (0..400)
        .map(|line| format!("line {line} on tantivy internals: readers, buffers, caches\n"))
        .collect();
    fs::write(root.join("notes/long.md"), long).unwrap();
    fs::write(base.path().join("canary.txt"), "canary_secret_value\n").unwrap();
    base
}

fn root_of(base: &tempfile::TempDir) -> String {
    base.path()
        .join("proj")
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

async fn save(
    client: &Client,
    user: &str,
    conversation: &str,
    session: Option<&str>,
    texts: &[&str],
) {
    let messages: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let role = if index % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": text})
        })
        .collect();
    let mut arguments = json!({
        "conversation_id": conversation, "user_id": user, "messages": messages,
    });
    if let Some(session) = session {
        arguments["session_id"] = json!(session);
    }
    call_ok(client, "save_conversation", arguments).await;
}

async fn seed(client: &Client) {
    call_ok(client, "index_workspace", json!({})).await;
    save(
        client,
        "alice",
        "c-search",
        None,
        &[
            "Why is tantivy segment merging so slow on my index?",
            "Merging rewrites segments; a LogMergePolicy with fewer merges helps.",
        ],
    )
    .await;
    save(
        client,
        "alice",
        "c-garden",
        None,
        &[
            "Which tomatoes grow well on a balcony?",
            "Cherry tomatoes in large pots.",
        ],
    )
    .await;
    save(
        client,
        "bob",
        "c-bob",
        None,
        &["tantivy segment merging is bob's secret"],
    )
    .await;
    call_ok(
        client,
        "set_preference",
        json!({"user_id": "alice", "key": "answer_style", "value": "terse, with code"}),
    )
    .await;
}

fn contents(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

async fn context(client: &Client, arguments: Value) -> (Value, String) {
    let result = call(client, "get_context", arguments).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "get_context failed: {}",
        text_of(&result)
    );
    let text = text_of(&result);
    (result.structured_content.expect("structured content"), text)
}

#[tokio::test]
async fn assembles_relevant_history_and_passages_within_the_budget() {
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;
    seed(&client).await;

    let query = json!({"query": "tantivy segment merging", "user_id": "alice"});
    let (bundle, text) = context(&client, query.clone()).await;
    assert_eq!(bundle["cache"], "miss");
    assert_eq!(bundle["preferences"][0]["key"], "answer_style");
    let history = contents(&bundle["history"], "conversation_id");
    assert!(history.iter().all(|id| id == "c-search"), "{history:?}");
    assert!(!history.is_empty());
    let paths = contents(&bundle["documents"], "path");
    assert!(paths.contains(&"notes/search.md".to_owned()), "{paths:?}");
    assert!(!paths.contains(&"notes/kitchen.md".to_owned()), "{paths:?}");
    assert!(
        !text.contains("bob's secret"),
        "another user's message leaked"
    );
    assert!(bundle["total_tokens"].as_u64().unwrap() <= 4000);
    assert_eq!(bundle["tokenizer"], "cl100k_base");
    // The text marks where each item comes from and fences it as data.
    assert!(text.contains("not instructions"));
    assert!(text.contains("### Message"), "{text}");
    assert!(text.contains("### File \"notes/search.md\""), "{text}");
    assert!(text.contains("```md\n# Search engine notes"), "{text}");

    // The same call again is a cache hit with the same bundle. A third is written from the
    // bytes of the second (src/mcp/wire.rs): the same answer, links and all.
    let second = call(&client, "get_context", query.clone()).await;
    let third = call(&client, "get_context", query.clone()).await;
    assert_eq!(
        serde_json::to_value(&third).unwrap(),
        serde_json::to_value(&second).unwrap()
    );
    let again = second
        .structured_content
        .clone()
        .expect("structured content");
    let again_text = text_of(&second);
    assert_eq!(again["cache"], "l1");
    assert_eq!(again_text, text);
    let strip = |mut bundle: Value| {
        bundle.as_object_mut().unwrap().remove("cache");
        bundle
    };
    assert_eq!(strip(again), strip(bundle));

    // Every budget holds; the long file is cut at a line, and says so.
    for budget in [100, 250, 600, 1500] {
        let (small, small_text) = context(
            &client,
            json!({"query": "tantivy segment merging", "user_id": "alice", "max_tokens": budget}),
        )
        .await;
        let total = small["total_tokens"].as_u64().unwrap();
        assert!(total <= budget, "{total} tokens for a budget of {budget}");
        let sections = &small["sections"];
        let summed: u64 = ["preferences", "history", "documents"]
            .iter()
            .map(|name| sections[name]["tokens"].as_u64().unwrap())
            .sum();
        assert!(summed <= total, "{summed} > {total}");
        for passage in small["documents"].as_array().unwrap() {
            let content = passage["content"].as_str().unwrap();
            assert!(
                content.ends_with('\n'),
                "a passage ends mid-line: {content:?}"
            );
            if passage["cut"] == true {
                assert!(small_text.contains("cut: the passage goes on past line"));
            }
        }
        if budget <= 250 {
            assert!(
                ["history", "documents"]
                    .iter()
                    .any(|name| sections[name]["truncated"] == true),
                "{budget}: {sections}"
            );
        }
    }

    // A save for the user makes the next call fresh and shows the new message.
    save(
        &client,
        "alice",
        "c-search",
        None,
        &["Update: tantivy segment merging got fast after raising the writer heap."],
    )
    .await;
    let (fresh, fresh_text) = context(&client, query.clone()).await;
    assert_eq!(fresh["cache"], "miss");
    assert!(
        fresh_text.contains("raising the writer heap"),
        "{fresh_text}"
    );
    // Hits after it show the new bundle, never bytes kept from the old one.
    for _ in 0..2 {
        let (hit, hit_text) = context(&client, query.clone()).await;
        assert_eq!(hit["cache"], "l1");
        assert_eq!(hit_text, fresh_text);
    }

    // So does an edit to an indexed file once it is indexed again.
    let notes = base.path().join("proj/notes/search.md");
    fs::write(
        &notes,
        "# Search engine notes\n\nTantivy segment merging: see FRESH_MARKER_42.\n",
    )
    .unwrap();
    call_ok(
        &client,
        "index_document",
        json!({"path": notes.to_string_lossy()}),
    )
    .await;
    let (edited, edited_text) = context(&client, query.clone()).await;
    assert_eq!(edited["cache"], "miss");
    assert!(edited_text.contains("FRESH_MARKER_42"), "{edited_text}");

    // Only what was asked for.
    let (only, _) = context(
        &client,
        json!({"query": "tantivy", "user_id": "alice", "include": ["preferences"]}),
    )
    .await;
    assert_eq!(only["history"], json!([]));
    assert_eq!(only["documents"], json!([]));
    assert_eq!(only["preferences"].as_array().unwrap().len(), 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn session_messages_come_first_and_bad_input_names_the_field() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    save(
        &client,
        "carol",
        "c-old",
        None,
        &["We settled on PostgreSQL for the billing service."],
    )
    .await;
    save(
        &client,
        "carol",
        "c-now",
        Some("s-1"),
        &["Let's plan the migration.", "First step: dump the schema."],
    )
    .await;
    let (bundle, text) = context(
        &client,
        json!({"query": "billing database", "user_id": "carol", "session_id": "s-1"}),
    )
    .await;
    let history = bundle["history"].as_array().unwrap();
    assert_eq!(history[0]["source"], "session");
    assert_eq!(history[0]["content"], "Let's plan the migration.");
    assert_eq!(history[1]["content"], "First step: dump the schema.");
    assert_eq!(history[2]["source"], "relevant");
    assert_eq!(history[2]["conversation_id"], "c-old");
    assert!(text.contains("latest in this session"));
    // No workspace is configured: no documents, and no error.
    assert_eq!(bundle["documents"], json!([]));

    for (arguments, field) in [
        (json!({"query": "x", "max_tokens": 10}), "max_tokens"),
        (json!({"query": "x", "include": []}), "include"),
        (json!({"query": "   "}), "query"),
        (json!({"query": "x", "include": ["everything"]}), "include"),
        (json!({"query": "x", "user_id": ""}), "user_id"),
        (json!({"query": "x", "workspace": "/nowhere"}), "workspace"),
    ] {
        let error = call_err(&client, "get_context", arguments.clone()).await;
        assert!(error.starts_with(field), "{arguments}: {error}");
    }
    // The server still serves.
    context(&client, json!({"query": "billing", "user_id": "carol"})).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn two_processes_share_bundles_through_redis_and_never_serve_stale_ones() {
    let redis = RedisServer::start();
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let args = ["--workspace", &root, "--redis-url", &redis.url()];
    let first = start_with(dir.path(), &args).await;
    let second = start_with(dir.path(), &args).await;
    seed(&first).await;
    let query = json!({"query": "tantivy segment merging", "user_id": "alice"});
    let (made, text) = context(&first, query.clone()).await;
    assert_eq!(made["cache"], "miss");
    // Redis is filled behind the first call's back, and the second process follows the
    // seed's invalidations within its sync interval; then it finds the bundle in Redis.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (shared, second_text) = context(&second, query.clone()).await;
    assert_eq!(shared["cache"], "l2");
    assert_eq!(second_text, text);

    // A save in the first process reaches the second's next call.
    save(
        &first,
        "alice",
        "c-search",
        None,
        &["tantivy segment merging note SAVED_IN_FIRST"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after_save, after_text) = context(&second, query.clone()).await;
    assert_eq!(after_save["cache"], "miss");
    assert!(after_text.contains("SAVED_IN_FIRST"));

    // An edit indexed by the second reaches the first.
    let notes = base.path().join("proj/notes/search.md");
    fs::write(&notes, "Tantivy segment merging: EDITED_IN_SECOND.\n").unwrap();
    call_ok(
        &second,
        "index_document",
        json!({"path": notes.to_string_lossy()}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after_edit, edit_text) = context(&first, query.clone()).await;
    assert_eq!(after_edit["cache"], "miss");
    assert!(edit_text.contains("EDITED_IN_SECOND"), "{edit_text}");
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_prompts_and_completions() {
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;
    seed(&client).await;
    // Enough conversations for a second page.
    for index in 0..100 {
        save(
            &client,
            "dave",
            &format!("bulk-{index:03}"),
            None,
            &["hello"],
        )
        .await;
    }

    let templates = client.list_all_resource_templates().await.unwrap();
    let uris: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        uris,
        [
            "conversation://{conversation_id}",
            "document://{workspace}/{path}"
        ]
    );

    let page = client.list_resources(None).await.unwrap();
    // The metrics resource, then 100 conversations and documents.
    assert_eq!(page.resources.len(), 101);
    assert_eq!(page.resources[0].uri, "stats://metrics");
    let cursor = page.next_cursor.clone().expect("a second page");
    let next = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert!(next.next_cursor.is_none());
    let all = client.list_all_resources().await.unwrap();
    assert_eq!(all.len(), page.resources.len() + next.resources.len());
    let all_uris: Vec<&str> = all.iter().map(|r| r.uri.as_str()).collect();
    assert!(all_uris.contains(&"conversation://c-search"));
    assert!(
        all_uris.contains(&"document://proj/notes/search.md"),
        "{all_uris:?}"
    );

    let read = |uri: &str| client.read_resource(ReadResourceRequestParams::new(uri));
    let transcript = text_contents(read("conversation://c-search").await.unwrap().contents);
    assert!(transcript.starts_with("# Conversation \"c-search\""));
    assert!(transcript.contains("```text\nWhy is tantivy segment merging so slow"));
    let file = read("document://proj/notes/kitchen.md").await.unwrap();
    assert_eq!(
        text_contents(file.contents),
        fs::read_to_string(base.path().join("proj/notes/kitchen.md")).unwrap()
    );
    for missing in [
        "conversation://nope",
        "document://proj/notes/absent.md",
        "document://other/x.md",
    ] {
        let Err(ServiceError::McpError(error)) = read(missing).await else {
            panic!("{missing} should not be found");
        };
        assert_eq!(
            error.code,
            ErrorCode::RESOURCE_NOT_FOUND,
            "{missing}: {error:?}"
        );
    }
    for escape in [
        "document://proj/../canary.txt",
        "document://proj/%2E%2E/canary.txt",
    ] {
        let result = read(escape).await;
        assert!(result.is_err(), "{escape} was served");
    }

    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["with_context", "continue_conversation"]);
    let mut arguments = serde_json::Map::new();
    arguments.insert("query".into(), json!("tantivy segment merging"));
    arguments.insert("user_id".into(), json!("alice"));
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("with_context").with_arguments(arguments))
        .await
        .unwrap();
    assert_eq!(prompt.messages.len(), 1);
    let prompt_text = serde_json::to_string(&prompt.messages[0]).unwrap();
    assert!(prompt_text.contains("notes/search.md"), "{prompt_text}");
    assert!(prompt_text.contains("answer_style"), "{prompt_text}");
    let mut arguments = serde_json::Map::new();
    arguments.insert("conversation_id".into(), json!("c-search"));
    let replay = client
        .get_prompt(GetPromptRequestParams::new("continue_conversation").with_arguments(arguments))
        .await
        .unwrap();
    let roles: Vec<PromptRole> = replay.messages.iter().map(|m| m.role.clone()).collect();
    assert_eq!(roles, [PromptRole::User, PromptRole::Assistant]);

    let completed = client
        .complete(CompleteRequestParams::new(
            Reference::for_resource("conversation://{conversation_id}"),
            ArgumentInfo::new("conversation_id", "c-"),
        ))
        .await
        .unwrap();
    assert_eq!(
        completed.completion.values,
        ["c-bob", "c-garden", "c-search"]
    );
    let workspaces = client
        .complete(CompleteRequestParams::new(
            Reference::for_resource("document://{workspace}/{path}"),
            ArgumentInfo::new("workspace", "pr"),
        ))
        .await
        .unwrap();
    assert_eq!(workspaces.completion.values, ["proj"]);

    // get_context links the conversations and files it quotes.
    let result = call(
        &client,
        "get_context",
        json!({"query": "tantivy segment merging", "user_id": "alice"}),
    )
    .await;
    let links: Vec<String> = result
        .content
        .iter()
        .filter_map(|block| block.as_resource_link().map(|link| link.uri.clone()))
        .collect();
    assert!(
        links.contains(&"conversation://c-search".to_owned()),
        "{links:?}"
    );
    assert!(
        links.contains(&"document://proj/notes/search.md".to_owned()),
        "{links:?}"
    );
    client.cancel().await.unwrap();
}

fn text_contents(contents: Vec<ResourceContents>) -> String {
    match contents.into_iter().next().expect("one content") {
        ResourceContents::TextResourceContents { text, .. } => text,
        other => panic!("not text: {other:?}"),
    }
}

/// With the model, history is found by meaning too: a message that shares no word with the
/// query but means the same comes back; an unrelated one does not.
#[tokio::test]
async fn history_is_found_by_meaning_with_the_model() {
    let Some(model) = model_dir() else { return };
    let dir = data_dir();
    let client = start_with(dir.path(), &["--model-dir", &model.to_string_lossy()]).await;
    save(
        &client,
        "erin",
        "c-pets",
        None,
        &["My dog barks at the mail carrier every morning."],
    )
    .await;
    save(
        &client,
        "erin",
        "c-tax",
        None,
        &["The quarterly tax filing is due in April."],
    )
    .await;
    wait_for_index(&client, "ready", Duration::from_secs(120)).await;
    let (bundle, _) = context(
        &client,
        json!({"query": "noisy puppy", "user_id": "erin", "include": ["history"]}),
    )
    .await;
    let history = bundle["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["conversation_id"], "c-pets");
    assert!(history[0]["similarity"].as_f64().unwrap() >= 0.3);
    assert!(history[0].get("text_rank").is_none());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn many_better_matches_of_another_user_never_hide_a_users_own_messages() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    // Bob's 300 messages outrank Alice's two by words: the best matches of all users are
    // all his, so Alice's must come from the full per-user query.
    let bobs: Vec<Value> = (0..300)
        .map(|n| json!({"role": "user", "content": format!("tantivy segment merging tantivy segments {n}")}))
        .collect();
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "bob-1", "user_id": "bob", "messages": bobs}),
    )
    .await;
    call_ok(
        &client,
        "save_conversation",
        json!({"conversation_id": "alice-1", "user_id": "alice", "messages": [
            {"role": "user", "content": "how does segment merging work in tantivy?"},
            {"role": "assistant", "content": "merging policy notes"},
        ]}),
    )
    .await;
    let (alice, _) = context(
        &client,
        json!({"query": "tantivy segment merging", "user_id": "alice", "include": ["history"]}),
    )
    .await;
    let ids = contents(&alice["history"], "conversation_id");
    assert!(!ids.is_empty(), "{alice}");
    assert!(ids.iter().all(|id| id == "alice-1"), "{ids:?}");
    let (bob, _) = context(
        &client,
        json!({"query": "tantivy segment merging", "user_id": "bob", "include": ["history"]}),
    )
    .await;
    let ids = contents(&bob["history"], "conversation_id");
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| id == "bob-1"), "{ids:?}");
    client.cancel().await.unwrap();
}
