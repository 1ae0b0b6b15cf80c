//! Hostile input: malformed JSON-RPC, every tool field with the wrong type, odd Unicode.
//! The process survives each one, answers with the right error where the protocol allows an
//! answer, and gives stored text back byte for byte.

use serde_json::{Map, Value, json};

use crate::support::{RawServer, call_ok, data_dir, repo_file, start};

/// Sends `line` as is, then a ping; returns the lines the server wrote before the ping's answer.
async fn answers_to(server: &mut RawServer, line: &[u8], ping_id: i64) -> Vec<Value> {
    let before = server.seen.len();
    server.send_raw(line).await;
    server
        .send(json!({"jsonrpc": "2.0", "id": ping_id, "method": "ping"}))
        .await;
    server.response(json!(ping_id)).await;
    let lines = &server.seen[before..server.seen.len() - 1];
    lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn malformed_json_rpc_gets_the_right_codes_and_the_session_survives() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    // (what, line, the error code of the one answer, or None for a line with nothing to
    // answer)
    // Answers with an id may come after the ping's (calls run concurrently): those cases
    // name their id and are waited for.
    let cases: Vec<(&str, &[u8], Option<i64>)> = vec![
        ("garbage", b"this is not json\n", Some(-32700)),
        (
            "truncated JSON",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/li\n",
            Some(-32700),
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xff\xfeng\"}\n",
            Some(-32700),
        ),
        ("an empty line", b"\n", None),
        (
            "jsonrpc 1.0",
            b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"tools/list\"}\n",
            Some(-32600),
        ),
        (
            "no jsonrpc",
            b"{\"id\":1,\"method\":\"tools/list\"}\n",
            Some(-32600),
        ),
        (
            "a null id",
            b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/list\"}\n",
            Some(-32600),
        ),
        (
            "a float id",
            b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"tools/list\"}\n",
            Some(-32600),
        ),
        (
            "an object id",
            b"{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}\n",
            Some(-32600),
        ),
        (
            "a batch",
            b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]\n",
            Some(-32600),
        ),
        (
            "params not an object",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":\"x\"}\n",
            Some(-32602),
        ),
    ];
    for (n, (what, line, code)) in cases.into_iter().enumerate() {
        let answers = answers_to(&mut server, line, 1000 + n as i64).await;
        match code {
            None => assert!(answers.is_empty(), "{what}: {answers:?}"),
            Some(code) => {
                assert_eq!(answers.len(), 1, "{what}: {answers:?}");
                assert_eq!(answers[0]["error"]["code"], code, "{what}: {answers:?}");
            }
        }
    }
    let unknown_method = server.request(41, "no/such", json!({})).await;
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");
    let unknown_tool = server
        .request(42, "tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    assert_eq!(unknown_tool["error"]["code"], -32602, "{unknown_tool}");
    // CRLF line ends, a byte-order mark and a string id are all understood.
    for (id, line) in [
        (
            "crlf",
            &b"{\"jsonrpc\":\"2.0\",\"id\":\"crlf\",\"method\":\"ping\"}\r\n"[..],
        ),
        (
            "bom",
            &b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":\"bom\",\"method\":\"ping\"}\n"[..],
        ),
    ] {
        server.send_raw(line).await;
        let answer = server.response(json!(id)).await;
        assert!(answer["result"].is_object(), "{answer}");
    }
    // A lone surrogate escape makes the line invalid for serde_json, id and all: the server's
    // guard answers it with a tool error naming the field; a paired one is a character.
    let save_raw = |id: &str, content: &str| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":\"{id}\",\"method\":\"tools/call\",\"params\":\
             {{\"name\":\"save_conversation\",\"arguments\":{{\"messages\":\
             [{{\"role\":\"user\",\"content\":\"{content}\"}}]}}}}}}\n"
        )
    };
    server
        .send_raw(save_raw("lone", r"cut \ud83e here").as_bytes())
        .await;
    let answer = server.response(json!("lone")).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("params.arguments.messages[0].content holds a lone UTF-16 surrogate"),
        "{text}"
    );
    server
        .send_raw(save_raw("paired", r"crab \ud83e\udd80").as_bytes())
        .await;
    let answer = server.response(json!("paired")).await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let saved = server
        .call_tool(
            3000,
            "save_conversation",
            json!({"messages": [{"role": "user", "content": "still here"}]}),
        )
        .await;
    assert_eq!(saved["result"]["isError"], false);
    server.finish().await;
}

#[tokio::test]
async fn a_request_before_initialize_is_refused_and_a_client_leaving_early_is_a_clean_exit() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    let answer = server.request(1, "tools/list", json!({})).await;
    assert!(answer["error"]["code"].is_i64(), "{answer}");
    let lines = server.finish().await;
    assert_eq!(lines.len(), 1);
}

/// A value of the wrong JSON type for a property of this schema.
fn wrong_value(property: &Value) -> Value {
    match json_type(property) {
        Some("string") => json!(12345),
        Some("integer" | "number") => json!("not a number"),
        Some("boolean") => json!("yes"),
        Some("array") => json!("not a list"),
        // A union of every type but null, such as a preference's value.
        _ if property["anyOf"].is_array() => Value::Null,
        _ => json!(7),
    }
}

/// The property's JSON type, leaving out the `null` of an optional one.
fn json_type(property: &Value) -> Option<&str> {
    match &property["type"] {
        Value::String(one) => Some(one.as_str()),
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    }
}

/// A valid value for each required argument, so that only the field under test is wrong.
fn valid_required(name: &str) -> Value {
    match name {
        "messages" => json!([{"role": "user", "content": "x"}]),
        "event" => json!("preference_update"),
        "value" => json!(1),
        _ => json!("x"),
    }
}

#[tokio::test]
async fn every_field_of_every_tool_with_a_wrong_value_gets_an_error_naming_it() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let tools: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("tools.json")).unwrap()).unwrap();
    let mut checked = 0;
    for tool in tools.as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let schema = &tool["inputSchema"];
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        for (field, property) in properties {
            let any_json = ["type", "$ref", "enum", "anyOf", "oneOf"]
                .iter()
                .all(|key| property.get(*key).is_none());
            if any_json {
                continue; // such as set_preference's value: every JSON value is right
            }
            let mut wrong_values = vec![wrong_value(property)];
            if json_type(property) == Some("integer") {
                // Out of range: negative for every integer, one past the stated maximum.
                wrong_values.push(json!(-1));
                if let Some(maximum) = property["maximum"].as_u64() {
                    wrong_values.push(json!(maximum + 1));
                }
            }
            for wrong in wrong_values {
                let mut arguments: Map<String, Value> = required
                    .iter()
                    .map(|name| ((*name).to_owned(), valid_required(name)))
                    .collect();
                arguments.insert(field.clone(), wrong.clone());
                let result = crate::support::call(&client, name, Value::Object(arguments)).await;
                let text = crate::support::text_of(&result);
                assert_eq!(
                    result.is_error,
                    Some(true),
                    "{name}.{field} = {wrong}: {text}"
                );
                assert!(
                    text.contains(field.as_str()),
                    "{name}.{field} = {wrong}: {text}"
                );
                checked += 1;
            }
        }
    }
    eprintln!("{checked} wrong values, each refused with an error naming its field");
    assert!(checked >= 50, "every tool field was tried");
    call_ok(&client, "get_preferences", json!({})).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn odd_unicode_comes_back_byte_for_byte() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let texts = [
        "nul \u{0} inside".to_owned(),
        "right-to-left \u{202e}override\u{202c} and \u{200f}marks".to_owned(),
        "caf\u{e9} (NFC) and cafe\u{301} (NFD) stay distinct".to_owned(),
        "four-byte emoji 🦀🧪👩🏽‍🔬 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢".to_owned(),
        format!("a{}", "\u{301}".repeat(500_000)),
        "line\r\nends\rand\ttabs\u{2028}separators".to_owned(),
    ];
    let messages: Vec<Value> = texts
        .iter()
        .map(|text| json!({"role": "user", "content": text}))
        .collect();
    let saved = call_ok(&client, "save_conversation", json!({"messages": messages})).await;
    // The megabyte message is over the response cap: it comes alone, one page after another.
    let mut back: Vec<String> = Vec::new();
    let mut offset = json!(0);
    while !offset.is_null() {
        let page = call_ok(
            &client,
            "get_conversation",
            json!({"conversation_id": saved["conversation_id"], "message_offset": offset}),
        )
        .await;
        for message in page["messages"].as_array().unwrap() {
            back.push(message["content"].as_str().unwrap().to_owned());
        }
        offset = page["next_message_offset"].clone();
    }
    assert_eq!(back.len(), texts.len());
    for (sent, got) in texts.iter().zip(back) {
        assert!(
            sent.as_bytes() == got.as_bytes(),
            "changed: {:?}",
            &sent[..sent.len().min(40)]
        );
    }
    client.cancel().await.unwrap();
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    status_mib(pid, "VmHWM:")
}

/// A memory figure of `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in MiB.
fn status_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test]
async fn lines_over_the_16_mib_frame_limit_are_dropped_with_memory_bounded() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let pid = server.child.id().unwrap();
    for (n, mebibytes) in [(1, 17usize), (2, 100)] {
        let content = "x".repeat(mebibytes << 20);
        let request = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "save_conversation",
                       "arguments": {"messages": [{"role": "user", "content": content}]}}});
        // rmcp discards a line over 16 MiB without answering it (see RELIABILITY.md).
        let answers = answers_to(
            &mut server,
            &(request.to_string() + "\n").into_bytes(),
            100 + n,
        )
        .await;
        assert!(answers.is_empty(), "{answers:?}");
    }
    let peak = peak_rss_mib(pid);
    eprintln!("a 17 MiB and a 100 MiB line: dropped, peak RSS {peak} MiB");
    assert!(peak < 300, "peak RSS {peak} MiB");
    let saved = server
        .call_tool(
            7,
            "save_conversation",
            json!({"messages": [{"role": "user", "content": "after the flood"}]}),
        )
        .await;
    assert_eq!(saved["result"]["isError"], false);
    server.finish().await;
}

#[tokio::test]
async fn binary_huge_and_one_line_files_are_skipped_or_bounded_and_the_rest_indexed() {
    let workspace = tempfile::tempdir().unwrap();
    let root = workspace.path();
    std::fs::write(
        root.join("tides.py"),
        "def tide_table():\n    return 'high'\n",
    )
    .unwrap();
    std::fs::write(root.join("blob.bin"), [0x7f, b'E', b'L', b'F', 0, 0, 1, 2]).unwrap();
    std::fs::write(root.join("latin1.txt"), [b'c', b'a', b'f', 0xe9]).unwrap();
    // 1 GiB without using the disk: skipped by its size, never read.
    let huge = std::fs::File::create(root.join("huge.log")).unwrap();
    huge.set_len(1 << 30).unwrap();
    // One line of 1.5 MB, under the 2 MiB cap: cut into passages of bounded size.
    let line: String = (0..150_000)
        .map(|n| format!("w{n:05} "))
        .collect::<String>();
    std::fs::write(root.join("one_line.txt"), &line).unwrap();

    let dir = data_dir();
    let client =
        crate::support::start_with(dir.path(), &["--workspace", root.to_str().unwrap()]).await;
    let report = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(report["added"], 2, "{report:#}");
    for reason in ["too_large", "binary", "not_utf8"] {
        assert_eq!(report["skipped"][reason], 1, "{reason}: {report:#}");
    }
    let hits = call_ok(&client, "search_documents", json!({"query": "tide_table"})).await;
    assert_eq!(hits["hits"][0]["path"], "tides.py", "{hits:#}");
    let deep = call_ok(
        &client,
        "search_documents",
        json!({"query": "w149999", "mode": "substring"}),
    )
    .await;
    assert_eq!(deep["hits"][0]["path"], "one_line.txt", "{deep:#}");
    assert!(deep["hits"][0]["snippet"].as_str().unwrap().len() < 64 * 1024);

    let health = call_ok(&client, "health", json!({})).await;
    let pid = health["pid"].as_u64().unwrap() as u32;
    let peak = peak_rss_mib(pid);
    eprintln!("1 GiB, binary, non-UTF-8 and a 1.5 MB line: peak RSS {peak} MiB");
    assert!(peak < 300, "peak RSS {peak} MiB");
    client.cancel().await.unwrap();
}

/// Calls of the mixed run; `scripts/chaos.sh` makes it 10,000.
fn mixed_calls() -> usize {
    std::env::var("CONTEXT_STORE_MIXED_CALLS")
        .ok()
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(2_000)
}

#[tokio::test]
async fn memory_stays_flat_over_thousands_of_mixed_calls() {
    let workspace = tempfile::tempdir().unwrap();
    for n in 0..50 {
        let text = format!("# Note {n}\nThe tide table for harbour {n} lists high water.\n");
        std::fs::write(workspace.path().join(format!("note{n}.md")), text).unwrap();
    }
    let dir = data_dir();
    let root = workspace.path().to_str().unwrap();
    // A small L1, so that a full cache is reached early and its size is not mistaken for a leak.
    let args = ["--workspace", root, "--cache-max-bytes", "4194304"];
    let client = crate::support::start_with(dir.path(), &args).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let pid = call_ok(&client, "health", json!({})).await["pid"]
        .as_u64()
        .unwrap() as u32;
    let total = mixed_calls();
    let warm_up = total / 5;
    let mut after_warm_up = 0;
    for n in 0..total {
        let (tool, arguments) = match n % 6 {
            0 => (
                "save_conversation",
                json!({"session_id": format!("s{}", n % 40),
                "messages": [{"role": "user", "content": format!("harbour {n} tide question")}]}),
            ),
            1 => ("get_conversation_history", json!({"limit": 5})),
            2 => (
                "set_preference",
                json!({"key": format!("k{}", n % 30), "value": n}),
            ),
            3 => ("get_preferences", json!({})),
            4 => (
                "search_documents",
                json!({"query": format!("harbour {}", n % 50)}),
            ),
            _ => (
                "get_context",
                json!({"query": format!("tide {}", n % 70), "max_tokens": 800}),
            ),
        };
        call_ok(&client, tool, arguments).await;
        if n + 1 == warm_up {
            after_warm_up = status_mib(pid, "VmRSS:");
        }
    }
    let at_end = status_mib(pid, "VmRSS:");
    eprintln!(
        "{total} mixed calls: RSS {after_warm_up} MiB after {warm_up}, {at_end} MiB at the end"
    );
    assert!(
        at_end <= after_warm_up + 16,
        "RSS grew from {after_warm_up} to {at_end} MiB"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn no_path_trick_reaches_a_canary_outside_the_root() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::write(root.join("lib/ok.md"), "harbour tide table\n").unwrap();
    let canary = base.path().join("canary.txt");
    std::fs::write(&canary, "canary_secret_value\n").unwrap();
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    link(&canary, "to_canary.txt");
    link(std::path::Path::new("/etc/passwd"), "passwd");
    link(std::path::Path::new("/"), "slash");
    link(&root.join("loop_b"), "loop_a");
    link(&root.join("loop_a"), "loop_b");
    // A hard link is the canary itself under a name inside the root.
    std::fs::hard_link(&canary, root.join("lib/hard.txt")).unwrap();
    let root = root.canonicalize().unwrap();
    let root_text = root.to_str().unwrap();

    let dir = data_dir();
    let client = crate::support::start_with(dir.path(), &["--workspace", root_text]).await;
    let report = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(report["added"], 1, "{report:#}");
    assert_eq!(report["skipped"]["hard_link"], 1, "{report:#}");
    let tricks = [
        "../canary.txt".to_owned(),
        canary.to_str().unwrap().to_owned(),
        "lib/../../canary.txt".to_owned(),
        "lib\\..\\..\\canary.txt".to_owned(),
        "%2e%2e/canary.txt".to_owned(),
        "..%2fcanary.txt".to_owned(),
        "to_canary.txt".to_owned(),
        "passwd".to_owned(),
        "slash/etc/passwd".to_owned(),
        "loop_a".to_owned(),
        "lib/hard.txt".to_owned(),
        format!("{root_text}_evil/x"),
    ];
    let mut refused = 0;
    for path in &tricks {
        let result = crate::support::call(&client, "index_document", json!({"path": path})).await;
        let text = crate::support::text_of(&result);
        let indexed_nothing = result.is_error == Some(true)
            || (result.structured_content.as_ref().unwrap()["added"] == 0);
        assert!(indexed_nothing, "{path}: {text}");
        refused += 1;
    }
    for (query, mode) in [
        ("canary_secret_value", "text"),
        ("canary_secret", "substring"),
        ("root:x:0", "substring"),
    ] {
        let hits = call_ok(
            &client,
            "search_documents",
            json!({"query": query, "mode": mode}),
        )
        .await;
        assert_eq!(hits["hits"], json!([]), "{query}: {hits:#}");
    }
    let context = call_ok(
        &client,
        "get_context",
        json!({"query": "canary_secret_value"}),
    )
    .await;
    assert!(
        !context.to_string().contains("canary_secret_value\\n"),
        "{context:#}"
    );
    eprintln!("{refused} path tricks and 5 links: 0 escapes, the canary in no index or bundle");
    client.cancel().await.unwrap();
}
