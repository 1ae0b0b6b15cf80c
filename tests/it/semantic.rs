//! Semantic and hybrid search with the real model, over a slice of the CPython standard
//! library and the labelled query set in `tests/queries/cpython.json`.

use std::{fs, path::Path, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    Client, call_ok, data_dir, model_dir, start_with, stdlib_dir, wait_for_index,
};

const QUERIES: &str = include_str!("../queries/cpython.json");
const MODES: [&str; 3] = ["text", "semantic", "hybrid"];

/// Copies the labelled files into `<base>/ws`, keeping their relative paths.
fn corpus(stdlib: &Path, files: &[Value]) -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    for file in files {
        let relative = file.as_str().unwrap();
        let target = base.path().join("ws").join(relative);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(stdlib.join(relative), target).unwrap();
    }
    base
}

/// The 1-based rank of `file` among the distinct files of a search, if in the top 10.
async fn rank_of(client: &Client, query: &str, mode: &str, file: &str) -> Option<usize> {
    let results = call_ok(
        client,
        "search_documents",
        json!({"query": query, "mode": mode, "limit": 10, "group_by": "document"}),
    )
    .await;
    assert_eq!(results["mode"], mode, "{results}");
    results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .position(|hit| hit["path"] == file)
        .map(|index| index + 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_queries_hybrid_ranks_at_least_as_well_as_either_mode() {
    let (Some(model), Some(stdlib)) = (model_dir(), stdlib_dir()) else {
        return;
    };
    let set: Value = serde_json::from_str(QUERIES).unwrap();
    let files = set["files"].as_array().unwrap();
    let base = corpus(&stdlib, files);
    let root = base.path().join("ws");
    let data = data_dir();
    let args = [
        "--workspace",
        root.to_str().unwrap(),
        "--model-dir",
        model.to_str().unwrap(),
    ];
    let client = start_with(data.path(), &args).await;
    let report = call_ok(&client, "index_workspace", json!({})).await;
    assert_eq!(report["added"], files.len(), "{report}");
    let status = wait_for_index(&client, "ready", Duration::from_secs(900)).await;
    assert_eq!(status["vectors"], status["chunks"], "{status}");
    assert!(
        status["embedder"]["id"]
            .as_str()
            .unwrap()
            .starts_with("all-MiniLM-L6-v2:onnx:")
    );

    let queries = set["queries"].as_array().unwrap();
    let mut reciprocal = [0.0f64; 3];
    let mut ranked = 0;
    let mut hybrid_misses = Vec::new();
    for entry in queries.iter().filter(|entry| entry["kind"] != "substring") {
        let (query, file) = (
            entry["query"].as_str().unwrap(),
            entry["file"].as_str().unwrap(),
        );
        ranked += 1;
        for (slot, mode) in MODES.iter().enumerate() {
            let rank = rank_of(&client, query, mode, file).await;
            reciprocal[slot] += rank.map_or(0.0, |rank| 1.0 / rank as f64);
            if *mode == "hybrid" && rank.is_none() {
                hybrid_misses.push(query);
            }
        }
    }
    let mrr: Vec<f64> = reciprocal.iter().map(|sum| sum / ranked as f64).collect();
    eprintln!(
        "MRR@10 over {ranked} queries: text {:.3}, semantic {:.3}, hybrid {:.3}",
        mrr[0], mrr[1], mrr[2]
    );
    assert!(
        hybrid_misses.is_empty(),
        "not in hybrid's top 10: {hybrid_misses:?}"
    );
    assert!(mrr[2] >= mrr[0] && mrr[2] >= mrr[1], "MRR@10 {mrr:?}");
    assert!(
        mrr[1] > 0.5,
        "semantic search ranks by meaning: MRR@10 {mrr:?}"
    );

    for entry in queries.iter().filter(|entry| entry["kind"] == "substring") {
        let (query, file) = (
            entry["query"].as_str().unwrap(),
            entry["file"].as_str().unwrap(),
        );
        let rank = rank_of(&client, query, "substring", file).await;
        assert!(rank.is_some(), "substring {query} did not find {file}");
    }

    // Default mode is hybrid once the model is ready; hits carry both rankings' scores.
    let results = call_ok(
        &client,
        "search_documents",
        json!({"query": "priority queue with a binary heap heappush"}),
    )
    .await;
    assert_eq!(results["mode"], "hybrid");
    assert!(results.get("semantic_unavailable").is_none());
    let top = &results["hits"][0];
    assert_eq!(top["path"], "heapq.py", "{results}");
    assert!(top["similarity"].as_f64().unwrap() > 0.2, "{top}");
    assert!(top["text_rank"].as_u64().is_some() && top["semantic_rank"].as_u64().is_some());
    assert_eq!(top["document"]["file_type"], "py");

    // Filters apply to the semantic side too.
    let filtered = call_ok(
        &client,
        "search_documents",
        json!({"query": "parse a JSON document", "mode": "semantic", "path_prefix": "json/"}),
    )
    .await;
    let hits = filtered["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|hit| hit["path"] == "json/decoder.py"),
        "{filtered}"
    );

    // A second process on the same data directory loads the stored vectors, not re-embeds.
    let second = start_with(data.path(), &args).await;
    let status = wait_for_index(&second, "ready", Duration::from_secs(60)).await;
    assert_eq!(status["vectors"], status["chunks"], "{status}");
    assert_eq!(
        rank_of(
            &second,
            "topological order of a graph",
            "semantic",
            "graphlib.py"
        )
        .await,
        Some(1)
    );
    second.cancel().await.unwrap();
    client.cancel().await.unwrap();
}
