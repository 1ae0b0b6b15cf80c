//! Indexing a workspace and searching it, end to end over stdio.

use std::{fs, path::Path};

use serde_json::json;

use crate::support::{call_err, call_ok, data_dir, hit_paths, start_with};

/// A small workspace with the cases the walk must handle, and a canary outside it.
fn workspace() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    fs::create_dir_all(root.join("lib/sub")).unwrap();
    fs::create_dir_all(root.join("build")).unwrap();
    fs::write(
        root.join("lib/heapq.py"),
        "import sys\n\ndef _siftdown_max(heap, startpos, pos):\n    newitem = heap[pos]\n",
    )
    .unwrap();
    fs::write(
        root.join("lib/difflib.py"),
        "class SequenceMatcher:\n    \"\"\"Compare pairs of sequences.\"\"\"\n",
    )
    .unwrap();
    fs::write(
        root.join("lib/sub/argparse.py"),
        "class ArgumentParser:\n    def _parse_optional(self, arg_string):\n        return None\n",
    )
    .unwrap();
    fs::write(root.join("lib/image.bin"), [0u8, 1, 2, 3]).unwrap();
    fs::write(root.join("lib/huge.txt"), "x".repeat(10_000)).unwrap();
    fs::write(
        root.join("build/generated.py"),
        "def generated_code(): pass\n",
    )
    .unwrap();
    fs::write(root.join(".gitignore"), "build/\n").unwrap();
    fs::write(base.path().join("canary.txt"), "canary_secret_value\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.path().join("canary.txt"), root.join("lib/link.txt")).unwrap();
    base
}

fn root_of(base: &tempfile::TempDir) -> String {
    base.path()
        .join("ws")
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn indexes_a_workspace_and_finds_words_identifiers_and_substrings() {
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let client = start_with(
        dir.path(),
        &["--workspace", &root, "--max-file-bytes", "4096"],
    )
    .await;

    let report = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(report["added"], 3, "{report}");
    assert_eq!(report["skipped"]["binary"], 1, "{report}");
    assert_eq!(report["skipped"]["too_large"], 1, "{report}");
    #[cfg(unix)]
    assert_eq!(report["skipped"]["outside_root"], 1, "{report}");
    assert!(report["chunks"].as_u64().unwrap() >= 3);

    let words = call_ok(
        &client,
        "search_documents",
        json!({"query": "parse_optional", "mode": "text"}),
    )
    .await;
    assert_eq!(hit_paths(&words), ["lib/sub/argparse.py"]);
    let hit = &words["hits"][0];
    assert_eq!(
        (hit["start_line"].as_u64(), hit["end_line"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(hit["workspace"], root.as_str());
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .contains("def _parse_optional")
    );

    let parts = call_ok(
        &client,
        "search_documents",
        json!({"query": "sequence matcher"}),
    )
    .await;
    assert_eq!(hit_paths(&parts), ["lib/difflib.py"]);
    assert_eq!(parts["mode"], "text");
    assert!(
        parts["semantic_unavailable"].is_string(),
        "says why semantic did not run"
    );

    let substring = call_ok(
        &client,
        "search_documents",
        json!({"query": "siftdown_ma", "mode": "substring"}),
    )
    .await;
    assert_eq!(hit_paths(&substring), ["lib/heapq.py"]);
    assert!(substring.get("semantic_unavailable").is_none());
    let none = call_ok(
        &client,
        "search_documents",
        json!({"query": "siftup_max", "mode": "substring"}),
    )
    .await;
    assert!(hit_paths(&none).is_empty());

    for query in ["canary_secret_value", "generated_code"] {
        let hidden = call_ok(&client, "search_documents", json!({"query": query})).await;
        assert!(hit_paths(&hidden).is_empty(), "{query} must not be indexed");
    }
    let error = call_err(
        &client,
        "search_documents",
        json!({"query": "ab", "mode": "substring"}),
    )
    .await;
    assert!(
        error.starts_with("query: substring search needs at least 3"),
        "{error}"
    );
    // Four characters, but white space folds to one: two once folded, so no gram to find.
    let error = call_err(
        &client,
        "search_documents",
        json!({"query": " \t\nx", "mode": "substring"}),
    )
    .await;
    assert!(
        error.contains("a run of white space counts as one"),
        "{error}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn re_indexing_sees_exactly_the_edits_additions_and_deletions() {
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let client = start_with(
        dir.path(),
        &["--workspace", &root, "--max-file-bytes", "4096"],
    )
    .await;
    call_ok(&client, "index_workspace", json!({})).await;

    let again = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(
        (
            again["added"].as_u64(),
            again["updated"].as_u64(),
            again["removed"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(again["unchanged"], 3);
    assert_eq!(again["chunks"], 0, "nothing re-read");

    let before = call_ok(&client, "search_documents", json!({"query": "newitem"})).await;
    assert_eq!(hit_paths(&before), ["lib/heapq.py"]);

    let lib = Path::new(&root).join("lib");
    fs::write(
        lib.join("heapq.py"),
        "def heappush(heap, item):\n    heap.append(item)\n    freshly_added_line = 1\n",
    )
    .unwrap();
    fs::write(
        lib.join("new_module.py"),
        "def brand_new_function():\n    pass\n",
    )
    .unwrap();
    fs::remove_file(lib.join("difflib.py")).unwrap();

    let changed = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(
        (
            changed["added"].as_u64(),
            changed["updated"].as_u64(),
            changed["removed"].as_u64(),
            changed["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(1)),
        "{changed}"
    );
    // The cached search for the old content is dropped with the workspace's change.
    assert!(
        hit_paths(&call_ok(&client, "search_documents", json!({"query": "newitem"})).await)
            .is_empty()
    );
    assert_eq!(
        hit_paths(
            &call_ok(
                &client,
                "search_documents",
                json!({"query": "freshly_added_line"})
            )
            .await
        ),
        ["lib/heapq.py"]
    );
    assert_eq!(
        hit_paths(
            &call_ok(
                &client,
                "search_documents",
                json!({"query": "brand_new_function"})
            )
            .await
        ),
        ["lib/new_module.py"]
    );
    assert!(
        hit_paths(
            &call_ok(
                &client,
                "search_documents",
                json!({"query": "SequenceMatcher"})
            )
            .await
        )
        .is_empty()
    );

    // A subfolder pass touches only that subfolder.
    let sub = call_ok(&client, "index_workspace", json!({"path": "lib/sub"})).await;
    assert_eq!(
        (sub["unchanged"].as_u64(), sub["removed"].as_u64()),
        (Some(1), Some(0)),
        "{sub}"
    );

    // A rename is the old path leaving and the new one arriving, with the same passages.
    fs::rename(lib.join("sub/argparse.py"), lib.join("sub/cli_parser.py")).unwrap();
    let renamed = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(
        (
            renamed["added"].as_u64(),
            renamed["removed"].as_u64(),
            renamed["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{renamed}"
    );
    assert_eq!(
        hit_paths(
            &call_ok(
                &client,
                "search_documents",
                json!({"query": "_parse_optional"})
            )
            .await
        ),
        ["lib/sub/cli_parser.py"]
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn paths_outside_the_roots_are_refused_by_name() {
    let base = workspace();
    let root = root_of(&base);
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", &root]).await;
    for path in ["../canary.txt", "/etc", "lib/../../canary.txt"] {
        let error = call_err(&client, "index_workspace", json!({"path": path})).await;
        assert!(error.starts_with("path:"), "{path}: {error}");
    }
    let sibling = format!("{root}_evil");
    fs::create_dir_all(&sibling).unwrap();
    let error = call_err(&client, "index_workspace", json!({"path": sibling})).await;
    assert!(
        error.contains("outside the configured workspace roots"),
        "{error}"
    );
    let error = call_err(
        &client,
        "search_documents",
        json!({"query": "x", "workspace": format!("{root}/lib")}),
    )
    .await;
    assert!(
        error.starts_with("workspace: must name a configured workspace root"),
        "{error}"
    );
    client.cancel().await.unwrap();

    let bare = start_with(dir.path(), &[]).await;
    let error = call_err(&bare, "index_workspace", json!({})).await;
    assert!(
        error.starts_with("path: no workspace roots are configured"),
        "{error}"
    );
    bare.cancel().await.unwrap();
}

/// Passages in the last commit of the data directory's search index (0 when it has none).
fn passages_committed(data: &Path) -> u64 {
    let Ok(meta) = fs::read(data.join("index/meta.json")) else {
        return 0;
    };
    let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|segment| segment["max_doc"].as_u64().unwrap())
        .sum()
}

/// Runs the command line with `args` on the data directory; its stdout.
fn command_line(data: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(crate::support::BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(["--embedder", "none"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An index folder lost (or of an older layout) is rebuilt from SQLite: the `index` command
/// indexes the documents again before it exits even when no file changed, and `search` does
/// the same before it searches, rather than answering from an empty index.
#[test]
fn the_command_line_rebuilds_a_lost_index_before_it_answers() {
    let ws = workspace();
    let root = ws.path().join("ws");
    let root = root.to_str().unwrap();
    let data = data_dir();
    let first = command_line(data.path(), &["index", root]);
    assert!(first.starts_with("added 4,"), "{first}");
    let passages = passages_committed(data.path());
    assert!(passages >= 4, "{passages} passages");
    let search = ["search", "siftdown_ma", "--mode", "substring"];
    assert!(command_line(data.path(), &search).contains("lib/heapq.py"));

    fs::remove_dir_all(data.path().join("index")).unwrap();
    let again = command_line(data.path(), &["index", root]);
    assert!(again.contains("unchanged 4"), "{again}");
    assert_eq!(passages_committed(data.path()), passages, "{again}");
    assert!(command_line(data.path(), &search).contains("lib/heapq.py"));

    fs::remove_dir_all(data.path().join("index")).unwrap();
    let found = command_line(data.path(), &search);
    assert!(found.contains("lib/heapq.py"), "{found}");
}
