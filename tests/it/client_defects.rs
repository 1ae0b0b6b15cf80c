//! What new users meet first: small workspaces, the command line used from any folder,
//! a workspace root that is not there yet, and answers that say what is still under way.

use std::{fs, path::Path, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    BIN, Client, call_err, call_ok, cli, data_dir, hit_paths, start_with, stdlib_dir,
};

const QUERIES: &str = include_str!("../queries/cpython.json");
/// Text MRR@10 of the labelled CPython queries (words and identifiers) when small corpora
/// were first handled; word search must not rank them worse.
const TEXT_MRR_AT_10: f64 = 0.907;
const LAUNCH_QUESTION: &str = "what is the launch code word and the launch checklist";

/// Three short notes, as in a small personal project.
fn small_workspace() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("launch.md"),
        "# Launch checklist\n\nThe code word is bluebird. Check the fuel, then the radio.\n",
    )
    .unwrap();
    fs::write(
        root.path().join("cooking.md"),
        "# Cooking\n\nBoil the pasta for nine minutes and salt the water.\n",
    )
    .unwrap();
    fs::write(
        root.path().join("notes.md"),
        "# Notes\n\nBuy milk. Call the plumber about the sink.\n",
    )
    .unwrap();
    root
}

fn canonical(path: &Path) -> String {
    path.canonicalize().unwrap().to_string_lossy().into_owned()
}

fn document_paths(context: &Value) -> Vec<String> {
    context["documents"]
        .as_array()
        .expect("a context has documents")
        .iter()
        .map(|document| document["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn word_search_of_a_small_workspace_finds_the_file_holding_the_words() {
    let workspace = small_workspace();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &canonical(workspace.path())]).await;
    call_ok(&client, "index_workspace", json!({})).await;

    let found = call_ok(
        &client,
        "search_documents",
        json!({"query": LAUNCH_QUESTION, "mode": "text"}),
    )
    .await;
    assert_eq!(
        hit_paths(&found).first().map(String::as_str),
        Some("launch.md"),
        "{found}"
    );
}

#[tokio::test]
async fn get_context_of_a_small_workspace_quotes_the_file_holding_the_words() {
    let workspace = small_workspace();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &canonical(workspace.path())]).await;
    call_ok(&client, "index_workspace", json!({})).await;

    let context = call_ok(
        &client,
        "get_context",
        json!({"query": LAUNCH_QUESTION, "include": ["documents"]}),
    )
    .await;
    assert_eq!(
        document_paths(&context).first().map(String::as_str),
        Some("launch.md"),
        "{context}"
    );
}

/// Copies the labelled files into a temporary root, keeping their relative paths.
fn labelled_corpus(stdlib: &Path, files: &[Value]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for file in files {
        let relative = file.as_str().unwrap();
        let target = root.path().join(relative);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(stdlib.join(relative), target).unwrap();
    }
    root
}

/// 1 / the rank of `file` among the files a text search returns, 0 past the tenth.
async fn reciprocal_rank(client: &Client, query: &str, file: &str) -> f64 {
    let results = call_ok(
        client,
        "search_documents",
        json!({"query": query, "mode": "text", "limit": 10, "group_by": "document"}),
    )
    .await;
    hit_paths(&results)
        .iter()
        .position(|path| path == file)
        .map_or(0.0, |index| 1.0 / (index + 1) as f64)
}

#[tokio::test]
async fn labelled_queries_rank_as_well_by_words_as_before() {
    let Some(stdlib) = stdlib_dir() else {
        return;
    };
    let set: Value = serde_json::from_str(QUERIES).unwrap();
    let root = labelled_corpus(&stdlib, set["files"].as_array().unwrap());
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &canonical(root.path())]).await;
    call_ok(&client, "index_workspace", json!({})).await;

    let ranked: Vec<&Value> = set["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] != "substring")
        .collect();
    let mut sum = 0.0;
    for entry in &ranked {
        let (query, file) = (
            entry["query"].as_str().unwrap(),
            entry["file"].as_str().unwrap(),
        );
        sum += reciprocal_rank(&client, query, file).await;
    }
    let mrr = sum / ranked.len() as f64;
    eprintln!("text MRR@10 over {} queries: {mrr:.3}", ranked.len());
    assert!(mrr >= TEXT_MRR_AT_10 - 1e-9, "text MRR@10 fell to {mrr:.3}");
}

/// Runs `context-store ARGS --data-dir DATA` from the folder `cwd`.
fn cli_in(cwd: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("CONTEXT_STORE_CONFIG")
        .env_remove("CONTEXT_STORE_WORKSPACES")
        .env_remove("CONTEXT_STORE_MODEL_DIR")
        .output()
        .expect("running context-store")
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn index_takes_a_relative_folder_from_the_current_directory() {
    let base = tempfile::tempdir().unwrap();
    fs::create_dir_all(base.path().join("ws/pylib")).unwrap();
    fs::write(
        base.path().join("ws/pylib/heapq.py"),
        "def heappush(heap, item):\n",
    )
    .unwrap();
    let data = data_dir();

    let indexed = cli_in(base.path(), data.path(), &["index", "ws/pylib"]);
    assert!(indexed.status.success(), "{}", stderr_of(&indexed));
    assert!(
        stdout_of(&indexed).contains("added 1"),
        "{}",
        stdout_of(&indexed)
    );
    let found = cli_in(
        base.path(),
        data.path(),
        &["search", "heappush", "--mode", "text"],
    );
    assert!(
        stdout_of(&found).contains("heapq.py"),
        "{}",
        stdout_of(&found)
    );
}

#[test]
fn read_only_commands_on_a_data_directory_without_a_database_refuse_and_create_none() {
    for command in [
        &["health"][..],
        &["search", "anything"],
        &["verify"],
        &["backups"],
    ] {
        let data = data_dir();
        let output = cli(data.path(), command);
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        assert!(
            stderr_of(&output).contains("no database"),
            "{command:?}: {}",
            stderr_of(&output)
        );
        let created: Vec<_> = fs::read_dir(data.path()).unwrap().collect();
        assert!(created.is_empty(), "{command:?} created {created:?}");
    }
}

#[test]
fn verify_takes_a_backup_by_its_name() {
    let data = data_dir();
    assert!(cli(data.path(), &["backup"]).status.success());
    let listed = stdout_of(&cli(data.path(), &["backups"]));
    let path = listed.split_whitespace().next().expect("one backup listed");
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();

    let verified = cli(data.path(), &["verify", name]);
    assert!(verified.status.success(), "{}", stderr_of(&verified));
    assert!(
        stdout_of(&verified).contains("is good"),
        "{}",
        stdout_of(&verified)
    );
}

#[tokio::test]
async fn saving_no_messages_is_refused() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    let error = call_err(&client, "save_conversation", json!({"messages": []})).await;
    assert!(error.starts_with("messages: "), "{error}");
    assert!(error.contains("at least one message"), "{error}");
    let history = call_ok(&client, "get_conversation_history", json!({})).await;
    assert_eq!(history["conversations"], json!([]), "{history}");
}

#[tokio::test]
async fn a_message_dated_more_than_a_day_ahead_is_refused() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(25)).to_rfc3339();
    let message = json!({"role": "user", "content": "from the future", "created_at": ahead});
    let error = call_err(&client, "save_conversation", json!({"messages": [message]})).await;
    assert!(error.starts_with("messages[0].created_at: "), "{error}");
    assert!(error.contains("a day"), "{error}");
}

#[tokio::test]
async fn a_message_dated_a_little_ahead_is_kept() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let message = json!({"role": "user", "content": "clock skew", "created_at": ahead});
    let saved = call_ok(&client, "save_conversation", json!({"messages": [message]})).await;
    assert_eq!(saved["stored_messages"], 1, "{saved}");
}

#[tokio::test]
async fn a_date_that_is_not_rfc_3339_is_refused_with_an_example() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    let message = json!({"role": "user", "content": "x", "created_at": "2024-01-02 03:04"});
    let error = call_err(&client, "save_conversation", json!({"messages": [message]})).await;
    assert!(error.starts_with("messages[0].created_at: "), "{error}");
    assert!(
        error.contains("expected RFC 3339, e.g. 2024-01-02T03:04:05Z"),
        "{error}"
    );
}

/// A workspace root that does not exist yet, inside a temporary folder.
fn missing_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().canonicalize().unwrap().join("not-yet");
    (base, root)
}

#[tokio::test]
async fn a_missing_root_leaves_conversations_and_preferences_working() {
    let (_base, root) = missing_root();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", root.to_str().unwrap()]).await;

    let message = json!({"role": "user", "content": "hello"});
    let saved = call_ok(&client, "save_conversation", json!({"messages": [message]})).await;
    assert_eq!(saved["stored_messages"], 1, "{saved}");
    call_ok(
        &client,
        "set_preference",
        json!({"key": "theme", "value": "dark"}),
    )
    .await;
}

#[tokio::test]
async fn health_and_index_status_name_a_missing_root() {
    let (_base, root) = missing_root();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", root.to_str().unwrap()]).await;
    let expected = json!([root.to_str().unwrap()]);

    let health = call_ok(&client, "health", json!({})).await;
    assert_eq!(health["index"]["missing_roots"], expected, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["missing_roots"], expected, "{status}");
}

#[tokio::test]
async fn document_tools_name_a_missing_root() {
    let (_base, root) = missing_root();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", root.to_str().unwrap()]).await;

    let found = call_ok(&client, "search_documents", json!({"query": "launch"})).await;
    assert_eq!(
        found["missing_roots"],
        json!([root.to_str().unwrap()]),
        "{found}"
    );
    let error = call_err(&client, "index_workspace", json!({})).await;
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains(root.to_str().unwrap()), "{error}");
}

#[tokio::test]
async fn a_root_created_after_the_start_is_indexed_and_searched() {
    let (_base, root) = missing_root();
    let dir = data_dir();
    let args = ["--workspace", root.to_str().unwrap(), "--watch", "true"];
    let client = start_with(dir.path(), &args).await;
    call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;

    fs::create_dir_all(&root).unwrap();
    fs::write(
        root.join("launch.md"),
        "# Launch checklist\n\nfuel, radio\n",
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let query = json!({"query": "checklist", "mode": "text"});
        let found = call_ok(&client, "search_documents", query).await;
        if hit_paths(&found) == ["launch.md"] {
            assert!(found.get("missing_roots").is_none(), "{found}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never indexed: {found}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["documents"], 1, "{status}");
}

/// The small workspace under a folder named `launchpad`, the name URIs give it.
fn named_workspace() -> (tempfile::TempDir, String) {
    let base = small_workspace();
    let root = base.path().join("launchpad");
    fs::create_dir_all(&root).unwrap();
    for name in ["launch.md", "cooking.md", "notes.md"] {
        fs::rename(base.path().join(name), root.join(name)).unwrap();
    }
    let root = canonical(&root);
    (base, root)
}

#[tokio::test]
async fn tools_take_a_workspace_by_the_name_its_uris_use() {
    let (_base, root) = named_workspace();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let resources = client.list_all_resources().await.unwrap();
    assert!(
        resources
            .iter()
            .any(|resource| resource.uri.starts_with("document://launchpad/")),
        "{resources:?}"
    );

    let query = json!({"query": "checklist", "mode": "text", "workspace": "launchpad"});
    let found = call_ok(&client, "search_documents", query).await;
    assert_eq!(hit_paths(&found), ["launch.md"], "{found}");
    let status = call_ok(&client, "index_status", json!({"workspace": "launchpad"})).await;
    assert_eq!(status["documents"], 3, "{status}");
}

#[tokio::test]
async fn an_unknown_workspace_is_refused_with_the_configured_roots() {
    let (_base, root) = named_workspace();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;

    let query = json!({"query": "checklist", "workspace": "rocket"});
    let error = call_err(&client, "search_documents", query).await;
    assert!(error.starts_with("workspace: "), "{error}");
    assert!(error.contains(&format!("launchpad ({root})")), "{error}");
}

#[tokio::test]
async fn invalidate_cache_refuses_paths_outside_every_root() {
    let (base, root) = named_workspace();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;
    let outside = base.path().join("elsewhere.md");
    fs::write(&outside, "not in the workspace").unwrap();

    let document = json!({"event": "document_change", "document_path": outside.to_str().unwrap()});
    let error = call_err(&client, "invalidate_cache", document).await;
    assert!(error.starts_with("document_path: "), "{error}");
    let escape = format!("{root}/../elsewhere.md");
    let document = json!({"event": "document_change", "document_path": escape});
    call_err(&client, "invalidate_cache", document).await;
    let workspace = json!({"event": "workspace_change", "workspace_path": "/etc"});
    let error = call_err(&client, "invalidate_cache", workspace).await;
    assert!(error.starts_with("workspace_path: "), "{error}");
    let inside = json!({"event": "document_change", "document_path": format!("{root}/launch.md")});
    call_ok(&client, "invalidate_cache", inside).await;
}

#[tokio::test]
async fn without_an_embedder_nothing_waits_for_embeddings() {
    let workspace = small_workspace();
    let dir = data_dir();
    let args = [
        "--workspace",
        &canonical(workspace.path()),
        "--embedder",
        "none",
    ];
    let client = start_with(dir.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let message = json!({"role": "user", "content": "hello"});
    call_ok(&client, "save_conversation", json!({"messages": [message]})).await;

    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["pending"]["chunks"], 0, "{status}");
    assert_eq!(status["pending"]["messages"], 0, "{status}");
    let health = call_ok(&client, "health", json!({})).await;
    assert_eq!(health["index"]["pending"]["chunks"], 0, "{health}");
}

/// Files enough that the first pass of a debug build takes a while.
const MANY_FILES: usize = 3000;

fn many_files() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for folder in 0..MANY_FILES / 100 {
        let folder_path = root.path().join(format!("part{folder}"));
        fs::create_dir_all(&folder_path).unwrap();
        for file in 0..100 {
            let text = format!("launch checklist item {folder} {file}\nfuel and radio\n");
            fs::write(folder_path.join(format!("note{file}.md")), text).unwrap();
        }
    }
    root
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_during_the_first_pass_say_that_indexing_is_under_way() {
    let workspace = many_files();
    let dir = data_dir();
    let args = [
        "--workspace",
        &canonical(workspace.path()),
        "--watch",
        "true",
    ];
    let client = start_with(dir.path(), &args).await;

    let (mut searched, mut assembled, mut counted) = (false, false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let query = json!({"query": "launch checklist", "mode": "text"});
        let found = call_ok(&client, "search_documents", query).await;
        searched |= found["indexing"] == true;
        let context = json!({"query": "launch checklist", "include": ["documents"]});
        let bundle = call_ok(&client, "get_context", context).await;
        assembled |= bundle["indexing"] == true;
        let status = call_ok(&client, "index_status", json!({})).await;
        counted |= status["indexing"]["files_total"].as_u64().is_some();
        if status.get("indexing").is_none() && status["documents"] == MANY_FILES {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
    }
    assert!(searched, "no search said that indexing was under way");
    assert!(assembled, "no get_context said that indexing was under way");
    assert!(counted, "index_status never counted the walk");
    let query = json!({"query": "launch checklist", "mode": "text"});
    let found = call_ok(&client, "search_documents", query).await;
    assert!(found.get("indexing").is_none(), "{found}");
}
