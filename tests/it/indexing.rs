//! Indexing across processes and over time: two processes on one data directory, single
//! documents, progress notifications, recovery after a crash or a lost index, and an
//! OpenAI-compatible embeddings endpoint (a stand-in on 127.0.0.1).

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::support::{
    Client, RawServer, call_err, call_ok, data_dir, hit_paths, server_command, start_with,
    wait_for_index,
};

/// A word only file `i` holds: letters only, so that the code tokenizer keeps it whole.
fn marker(i: usize) -> String {
    let mut word = String::from("zq");
    let mut n = i;
    loop {
        word.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return word;
        }
    }
}

/// `count` Python files over a few folders; file `i` alone holds `marker(i)`.
fn generated(count: usize) -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    for i in 0..count {
        let folder = root.join(format!("pkg{}", i % 5));
        fs::create_dir_all(&folder).unwrap();
        let body: String = (0..40)
            .map(|line| format!("def helper_{line}(value):\n    return value * {line}\n"))
            .collect();
        fs::write(
            folder.join(format!("module_{i}.py")),
            format!(
                "\"\"\"Module {}.\"\"\"\n\ndef entry():\n    pass\n\n{body}",
                marker(i)
            ),
        )
        .unwrap();
    }
    let root = root.canonicalize().unwrap();
    (base, root)
}

/// The paths of a word search's hits.
async fn hits_for(client: &Client, query: &str) -> Vec<String> {
    let results = call_ok(
        client,
        "search_documents",
        json!({"query": query, "mode": "text", "limit": 20}),
    )
    .await;
    hit_paths(&results)
}

fn workspace_args(root: &Path) -> Vec<String> {
    vec!["--workspace".into(), root.to_string_lossy().into_owned()]
}

async fn start_on(data: &Path, args: &[String]) -> Client {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_with(data, &args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_index_one_data_directory_and_every_document_is_indexed_once() {
    let (_base, root) = generated(300);
    let data = data_dir();
    let args = workspace_args(&root);
    let first = start_on(data.path(), &args).await;
    let second = start_on(data.path(), &args).await;
    // Both index everything and a part, at once; only one can hold tantivy's writer.
    let calls = [
        (&first, json!({})),
        (&second, json!({})),
        (
            &first,
            json!({"path": root.join("pkg1").to_str().unwrap(), "force": true}),
        ),
        (
            &second,
            json!({"path": root.join("pkg2").to_str().unwrap(), "force": true}),
        ),
    ];
    let reports = join_all(
        calls
            .iter()
            .map(|(client, arguments)| call_ok(client, "index_workspace", arguments.clone())),
    )
    .await;
    for report in &reports {
        assert_eq!(
            report["pending"], 0,
            "every pass was indexed before it returned: {report}"
        );
    }
    let statuses = [
        wait_for_index(&first, "disabled", Duration::from_secs(30)).await,
        wait_for_index(&second, "disabled", Duration::from_secs(30)).await,
    ];
    for status in &statuses {
        assert_eq!(status["documents"], 300, "{status}");
    }
    let holders: Vec<bool> = statuses
        .iter()
        .map(|status| status["writer"]["this_process"].as_bool().unwrap())
        .collect();
    assert_eq!(
        holders.iter().filter(|held| **held).count(),
        1,
        "{statuses:?}"
    );
    // Every document once: its unique token finds exactly its one passage, from either process.
    for i in [0, 1, 57, 122, 299] {
        for client in [&first, &second] {
            let hits = hits_for(client, &marker(i)).await;
            assert_eq!(hits, [format!("pkg{}/module_{i}.py", i % 5)]);
        }
    }
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn single_documents_are_indexed_and_removed_and_filters_apply() {
    let (_base, root) = generated(6);
    fs::write(
        root.join("notes.md"),
        format!("# Notes\n\n{} in prose\n", marker(3)),
    )
    .unwrap();
    let data = data_dir();
    let client = start_on(data.path(), &workspace_args(&root)).await;
    call_ok(&client, "index_workspace", json!({})).await;

    let file = root.join("pkg0/module_0.py");
    fs::write(&file, "def freshly_edited_function():\n    pass\n").unwrap();
    let report = call_ok(
        &client,
        "index_document",
        json!({"path": file.to_str().unwrap()}),
    )
    .await;
    assert_eq!(
        (report["updated"].as_u64(), report["added"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(hits_for(&client, "freshly_edited_function").await.len(), 1);
    assert!(hits_for(&client, &marker(0)).await.is_empty());

    // Relative to the root works too; a deleted file leaves the index.
    fs::remove_file(&file).unwrap();
    let report = call_ok(
        &client,
        "index_document",
        json!({"path": "pkg0/module_0.py"}),
    )
    .await;
    assert_eq!(report["removed"], 1, "{report}");
    assert!(
        hits_for(&client, "freshly_edited_function")
            .await
            .is_empty()
    );

    let folder = call_err(&client, "index_document", json!({"path": "pkg1"})).await;
    assert!(
        folder.contains("path") && folder.contains("folder"),
        "{folder}"
    );
    let missing = call_err(
        &client,
        "index_document",
        json!({"path": "pkg1/nothing.py"}),
    )
    .await;
    assert!(missing.contains("path"), "{missing}");

    // Filters: by type and by path prefix, on every mode that runs.
    let by_type = call_ok(
        &client,
        "search_documents",
        json!({"query": marker(3), "file_types": ["md"]}),
    )
    .await;
    assert_eq!(hit_paths(&by_type), ["notes.md"]);
    let by_prefix = call_ok(
        &client,
        "search_documents",
        json!({"query": marker(3), "path_prefix": "pkg3/", "mode": "substring"}),
    )
    .await;
    assert_eq!(hit_paths(&by_prefix), ["pkg3/module_3.py"]);
    let escape = call_err(
        &client,
        "search_documents",
        json!({"query": "x", "path_prefix": "../etc"}),
    )
    .await;
    assert!(escape.contains("path_prefix"), "{escape}");

    // A document_change dropped on request takes its workspace's cached searches with it.
    let notes = root.join("notes.md");
    let dropped = call_ok(
        &client,
        "invalidate_cache",
        json!({"event": "document_change", "document_path": notes.to_str().unwrap()}),
    )
    .await;
    assert!(dropped["dropped_l1"].as_u64().unwrap() >= 2, "{dropped}");

    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["documents"], 6, "{status}");
    assert_eq!(status["pending"]["files"], 0);
    assert_eq!(status["embedder"]["state"], "disabled");
    assert!(
        status["embedder"]["reason"]
            .as_str()
            .unwrap()
            .contains("model")
    );
    assert_eq!(status["writer"]["this_process"], true);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn indexing_sends_progress_when_asked() {
    let (_base, root) = generated(600);
    let data = data_dir();
    let mut command = server_command(data.path());
    command.arg("--workspace").arg(&root);
    let mut server = RawServer::spawn_command(command);
    server.initialize("2025-06-18").await;
    server
        .send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "index_workspace", "arguments": {},
                                "_meta": {"progressToken": "walk-1"}}}))
        .await;
    // Indexing never blocks other calls: a call sent after it is answered before it.
    let status = server.call_tool(70, "index_status", json!({})).await;
    assert_eq!(status["result"]["isError"], false, "{status}");
    let response = server.response(json!(7)).await;
    assert_eq!(response["result"]["isError"], false, "{response}");
    let answered: Vec<Value> = server
        .seen
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter_map(|message| message.get("id").cloned())
        .collect();
    assert_eq!(answered[1..], [json!(70), json!(7)], "{answered:?}");
    let progress: Vec<Value> = server
        .seen
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|message| message["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    let values: Vec<f64> = progress
        .iter()
        .map(|message| {
            assert_eq!(message["params"]["progressToken"], "walk-1");
            assert_eq!(message["params"]["total"], 600.0);
            message["params"]["progress"].as_f64().unwrap()
        })
        .collect();
    assert!(
        values.windows(2).all(|pair| pair[0] < pair[1]),
        "{values:?}"
    );
    assert_eq!(*values.last().unwrap(), 600.0);
    // Without a token, no notifications.
    let before = server.seen.len();
    server
        .call_tool(8, "index_workspace", json!({"force": true}))
        .await;
    assert!(
        server.seen[before..]
            .iter()
            .all(|line| !line.contains("notifications/progress"))
    );
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_indexing_or_a_lost_index_is_repaired_from_the_database() {
    let (_base, root) = generated(400);
    let data = data_dir();
    let args = workspace_args(&root);

    // Killed while indexing: what it staged is indexed by the next process.
    let mut command = server_command(data.path());
    command.args(&args);
    let mut victim = RawServer::spawn_command(command);
    victim.initialize("2025-06-18").await;
    victim
        .send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "index_workspace", "arguments": {}}}))
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();

    let client = start_on(data.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let status = wait_for_index(&client, "disabled", Duration::from_secs(30)).await;
    assert_eq!(status["documents"], 400, "{status}");
    for i in [0, 199, 399] {
        assert_eq!(hits_for(&client, &marker(i)).await.len(), 1);
    }
    client.cancel().await.unwrap();

    // The index folder lost: rebuilt from SQLite without re-reading a file.
    fs::remove_dir_all(data.path().join("index")).unwrap();
    let client = start_on(data.path(), &args).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hits_for(&client, &marker(123)).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index was not rebuilt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_index(&client, "disabled", Duration::from_secs(30)).await;
    assert_eq!(hits_for(&client, &marker(7)).await.len(), 1);
    let report = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(report["unchanged"], 400, "{report}");
    client.cancel().await.unwrap();
}

/// What the stand-in embeddings server saw: (path, model) per request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Holds the stand-in's answer to any request with a text containing `word` until `gate`
/// has a permit.
#[derive(Clone)]
struct Hold {
    word: &'static str,
    gate: Arc<tokio::sync::Semaphore>,
}

/// A deterministic 64-dimension embedding: each word adds to the slot its hash picks.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; 64];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        let slot = word.to_lowercase().bytes().fold(7u32, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(u32::from(byte))
        });
        vector[(slot % 64) as usize] += 1.0;
    }
    vector
}

/// Serves `POST /v1/embeddings` (HTTP/1.1, keep-alive) until the test ends.
async fn stand_in_embeddings_server(seen: Seen, hold: Option<Hold>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, hold) = (seen.clone(), hold.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).await.unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
                    seen.lock()
                        .unwrap()
                        .push((path, request["model"].as_str().unwrap().to_owned()));
                    if let Some(hold) = &hold
                        && request["input"].to_string().contains(hold.word)
                    {
                        drop(hold.gate.acquire().await.unwrap());
                    }
                    let data: Vec<Value> = request["input"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .enumerate()
                        .map(|(index, text)| {
                            json!({"object": "embedding", "index": index,
                                   "embedding": bag_of_words(text.as_str().unwrap())})
                        })
                        .collect();
                    let answer = json!({"object": "list", "data": data}).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    write.write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    format!("http://{address}/v1")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_compatible_endpoint_embeds_passages_and_queries() {
    let seen: Seen = Arc::default();
    let url = stand_in_embeddings_server(seen.clone(), None).await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    fs::create_dir_all(&root).unwrap();
    fs::write(
        root.join("fruit.txt"),
        "apples pears plums cherries orchard harvest\n",
    )
    .unwrap();
    fs::write(
        root.join("boats.txt"),
        "sailing harbour anchor keel mast rigging\n",
    )
    .unwrap();
    let data = data_dir();
    let mut args = workspace_args(&root);
    args.extend([
        "--embedding-url".into(),
        url,
        "--embedding-model".into(),
        "stand-in".into(),
    ]);
    let client = start_on(data.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let status = wait_for_index(&client, "ready", Duration::from_secs(30)).await;
    assert_eq!(status["embedder"]["dimension"], 64, "{status}");
    assert_eq!(status["vectors"], 2);
    let results = call_ok(
        &client,
        "search_documents",
        json!({"query": "anchor and mast", "mode": "semantic"}),
    )
    .await;
    assert_eq!(results["hits"][0]["path"], "boats.txt", "{results}");
    assert!(results["hits"][0]["similarity"].as_f64().unwrap() > 0.3);
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.len() >= 3,
        "probe, passages and a query: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|(path, model)| path == "/v1/embeddings" && model == "stand-in")
    );
    client.cancel().await.unwrap();
}

/// New vectors drop what ranks by meaning (hybrid searches), and nothing else: text
/// searches and history pages stay cached while the worker embeds in the background.
#[tokio::test(flavor = "multi_thread")]
async fn new_vectors_drop_only_what_ranks_by_meaning() {
    let hold = Hold {
        word: "zeppelin",
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let url = stand_in_embeddings_server(Seen::default(), Some(hold.clone())).await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("boats.txt"), "harbour sailing anchor keel\n").unwrap();
    let data = data_dir();
    let mut args = workspace_args(&root);
    args.extend(["--embedding-url".into(), url]);
    let client = start_on(data.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    wait_for_index(&client, "ready", Duration::from_secs(30)).await;
    // Their vectors wait for the gate.
    fs::write(root.join("airships.txt"), "zeppelin over the harbour\n").unwrap();
    call_ok(&client, "index_workspace", json!({})).await;
    let message = json!({"role": "user", "content": "a zeppelin ride over the harbour"});
    call_ok(&client, "save_conversation", json!({"messages": [message]})).await;

    let reads = [
        (
            "search_documents",
            json!({"query": "harbour", "mode": "text"}),
        ),
        ("get_conversation_history", json!({})),
        (
            "search_documents",
            json!({"query": "harbour", "mode": "hybrid"}),
        ),
    ];
    let mut before = Vec::new();
    for (tool, arguments) in &reads {
        before.push(call_ok(&client, tool, arguments.clone()).await);
    }
    let loads = |health: Value| health["cache"]["l3_loads"].as_u64().unwrap();
    let loaded = loads(call_ok(&client, "health", json!({})).await);
    let airship = |results: &Value| {
        results["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|hit| hit["path"] == "airships.txt")
            .cloned()
            .unwrap()
    };
    assert!(
        airship(&before[2]).get("similarity").is_none(),
        "{}",
        before[2]
    );

    hold.gate.add_permits(1000);
    let status = wait_for_index(&client, "ready", Duration::from_secs(30)).await;
    assert_eq!(status["vectors"], 2, "{status}");
    let mut after = Vec::new();
    for (tool, arguments) in &reads[..2] {
        after.push(call_ok(&client, tool, arguments.clone()).await);
    }
    assert_eq!(after, before[..2], "text search and history are unchanged");
    assert_eq!(
        loads(call_ok(&client, "health", json!({})).await),
        loaded,
        "text search and history were served from the cache"
    );
    let hybrid = call_ok(&client, reads[2].0, reads[2].1.clone()).await;
    assert!(
        airship(&hybrid)["similarity"].as_f64().unwrap() > 0.0,
        "{hybrid}"
    );
    assert_eq!(
        loads(call_ok(&client, "health", json!({})).await),
        loaded + 1,
        "the hybrid search ran again"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_leaves_search_on_words() {
    // A port nothing listens on: bind one, then let it go.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_base, root) = generated(3);
    let data = data_dir();
    let mut args = workspace_args(&root);
    args.extend([
        "--embedding-url".into(),
        format!("http://127.0.0.1:{port}/v1"),
    ]);
    let client = start_on(data.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let status = wait_for_index(&client, "failed", Duration::from_secs(30)).await;
    assert!(
        status["embedder"]["reason"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{status}"
    );
    let results = call_ok(&client, "search_documents", json!({"query": marker(1)})).await;
    assert_eq!(results["mode"], "text");
    assert!(
        results["semantic_unavailable"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    assert_eq!(results["hits"][0]["path"], "pkg1/module_1.py");
    client.cancel().await.unwrap();
}

/// Polls until `check` holds, or panics with `what` after ten seconds.
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_indexes_the_roots_then_follows_edits_additions_and_deletions() {
    let (_base, root) = generated(5);
    fs::write(root.join(".gitignore"), "build/\n").unwrap();
    let data = data_dir();
    let mut args = workspace_args(&root);
    args.push("--watch".into());
    let client = start_on(data.path(), &args).await;
    // The start indexes the roots without being asked.
    eventually("the first pass", async || {
        call_ok(&client, "index_status", json!({})).await["documents"] == 5
    })
    .await;

    fs::write(
        root.join("pkg0/module_0.py"),
        "def editedbywatcher():\n    pass\n",
    )
    .unwrap();
    fs::write(
        root.join("pkg4/added.py"),
        "def addedbywatcher():\n    pass\n",
    )
    .unwrap();
    fs::remove_file(root.join("pkg1/module_1.py")).unwrap();
    fs::create_dir_all(root.join("build")).unwrap();
    fs::write(
        root.join("build/out.py"),
        "def ignoredoutput():\n    pass\n",
    )
    .unwrap();
    fs::write(root.join(".hidden.py"), "def hiddenhelper():\n    pass\n").unwrap();

    eventually("the edit", async || {
        hits_for(&client, "editedbywatcher").await.len() == 1
    })
    .await;
    eventually("the addition", async || {
        hits_for(&client, "addedbywatcher").await == ["pkg4/added.py"]
    })
    .await;
    eventually("the deletion", async || {
        hits_for(&client, &marker(1)).await.is_empty()
    })
    .await;
    assert!(hits_for(&client, &marker(0)).await.is_empty());
    assert!(hits_for(&client, "ignoredoutput").await.is_empty());
    assert!(hits_for(&client, "hiddenhelper").await.is_empty());
    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["documents"], 5, "{status}");

    // A folder removed at once takes its files out of the index.
    fs::remove_dir_all(root.join("pkg2")).unwrap();
    eventually("the folder removal", async || {
        hits_for(&client, &marker(2)).await.is_empty()
    })
    .await;
    client.cancel().await.unwrap();
}
