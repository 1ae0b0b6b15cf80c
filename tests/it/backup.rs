//! Backups end to end: consistent while several processes write, verified, restored exactly,
//! never restored over a running server, and unfinished ones never listed.

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};

use crate::support::{Client, call_ok, cli, data_dir, hit_paths, start, start_with};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// (conversations, messages) from `context-store verify` on a data directory.
fn live_counts(data_dir: &Path) -> (i64, i64) {
    let output = cli(data_dir, &["verify"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let number_before = |word: &str| -> i64 {
        let end = text
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {text}"));
        text[..end]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    (number_before(" conversations"), number_before(" messages"))
}

#[tokio::test]
async fn a_backup_taken_while_four_processes_write_restores_exactly_its_rows() {
    let dir = data_dir();
    let writers: Vec<_> = futures::future::join_all((0..4).map(|_| start(dir.path()))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (writer, client) in writers.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut saved = 0;
            while !stop.load(Ordering::Relaxed) {
                call_ok(
                    &client,
                    "save_conversation",
                    json!({
                        "user_id": format!("writer-{writer}"),
                        "messages": [
                            {"role": "user", "content": format!("question {saved}")},
                            {"role": "assistant", "content": format!("answer {saved}")},
                        ],
                    }),
                )
                .await;
                saved += 1;
            }
            client.cancel().await.unwrap();
            saved
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let backupper = start(dir.path()).await;
    let created = call_ok(&backupper, "create_backup", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut saved = 0;
    for task in tasks {
        saved += task.await.unwrap();
    }
    let manifest = &created["manifest"];
    let backed_up = manifest["counts"]["conversations"].as_i64().unwrap();
    assert!(backed_up > 0 && backed_up < saved, "{backed_up} of {saved}");
    assert_eq!(
        manifest["counts"]["messages"].as_i64().unwrap(),
        backed_up * 2
    );
    assert_eq!(manifest["files"][0]["path"], "context-store.db");
    assert_eq!(manifest["files"][0]["sha256"].as_str().unwrap().len(), 64);
    let path = PathBuf::from(created["path"].as_str().unwrap());
    assert!(path.starts_with(dir.path().join("backups")));

    let listed = call_ok(&backupper, "list_backups", json!({})).await;
    assert_eq!(listed["backups"][0]["path"], created["path"]);
    backupper.cancel().await.unwrap();

    let verified = cli(dir.path(), &["verify", path.to_str().unwrap()]);
    assert!(verified.status.success(), "{verified:?}");
    assert!(stdout(&verified).contains("integrity ok"));

    // Restored into a new data directory, it holds exactly the manifest's rows.
    let restored = data_dir();
    let output = cli(restored.path(), &["restore", path.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(live_counts(restored.path()), (backed_up, backed_up * 2));
}

#[tokio::test]
async fn restore_refuses_a_running_server_and_keeps_what_it_replaces() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let save = |text: &'static str| json!({"conversation_id": text, "messages": [{"role": "user", "content": text}]});
    call_ok(&client, "save_conversation", save("before")).await;
    let created = call_ok(&client, "create_backup", json!({})).await;
    call_ok(&client, "save_conversation", save("after")).await;
    let backup = created["path"].as_str().unwrap().to_owned();

    let refused = cli(dir.path(), &["restore", &backup]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("stop it first"), "{message}");
    client.cancel().await.unwrap();

    // A damaged backup is refused before anything is touched.
    let damaged = data_dir();
    let copy = damaged.path().join("copy");
    copy_dir(Path::new(&backup), &copy);
    let mut bytes = std::fs::read(copy.join("context-store.db")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(copy.join("context-store.db"), bytes).unwrap();
    let output = cli(dir.path(), &["restore", copy.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not match its manifest"));
    assert_eq!(live_counts(dir.path()).0, 2);

    let output = cli(dir.path(), &["restore", &backup]);
    assert!(output.status.success(), "{output:?}");
    let said = stdout(&output);
    assert!(said.contains("kept in"), "{said}");
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("replaced-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].join("context-store.db").is_file());

    let client = start(dir.path()).await;
    let history: Value = call_ok(&client, "get_conversation_history", json!({})).await;
    let ids: Vec<&str> = history["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["before"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unfinished_backups_are_never_listed_and_rotation_keeps_the_newest() {
    let dir = data_dir();
    let client = crate::support::start_with(dir.path(), &["--backup-keep", "2"]).await;
    let mut paths = Vec::new();
    for _ in 0..3 {
        let created = call_ok(&client, "create_backup", json!({})).await;
        paths.push(created["path"].as_str().unwrap().to_owned());
    }
    // What a backup killed midway leaves behind.
    let partial = dir.path().join("backups/.partial-20990101T000000.000Z-1");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("context-store.db"), b"half a file").unwrap();
    let listed = call_ok(&client, "list_backups", json!({})).await;
    let listed: Vec<&str> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|backup| backup["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [paths[2].as_str(), paths[1].as_str()]);
    assert!(!Path::new(&paths[0]).exists());
    client.cancel().await.unwrap();
    let output = cli(dir.path(), &["backups"]);
    assert!(stdout(&output).contains(&paths[2]));
    assert!(!stdout(&output).contains(".partial-"));
}

fn listed_backups(data_dir: &Path) -> Vec<String> {
    let output = cli(data_dir, &["backups"]);
    assert!(output.status.success(), "{output:?}");
    stdout(&output)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|path| path.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_backup_killed_midway_leaves_the_last_good_one_the_newest_good_one() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    // About 16 MB, so that a backup takes long enough to be killed in the middle.
    for n in 0..100 {
        let messages: Vec<Value> = (0..20)
            .map(
                |m| json!({"role": "user", "content": format!("{n}.{m} {}", "text ".repeat(1600))}),
            )
            .collect();
        call_ok(&client, "save_conversation", json!({"messages": messages})).await;
    }
    let good = call_ok(&client, "create_backup", json!({})).await["path"]
        .as_str()
        .unwrap()
        .to_owned();
    for delay_ms in [20, 60, 120, 250, 400] {
        let mut backup = std::process::Command::new(crate::support::BIN)
            .args(["backup", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = backup.kill();
        backup.wait().unwrap();
        let listed = listed_backups(dir.path());
        assert!(listed.contains(&good), "{listed:?}");
        // Whatever is listed is complete and verifies: a killed backup is never among them.
        for path in &listed {
            let verified = cli(dir.path(), &["verify", path]);
            assert!(verified.status.success(), "{path}: {verified:?}");
        }
    }
    let drafts = || {
        std::fs::read_dir(dir.path().join("backups"))
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(".partial-")
            })
            .count()
    };
    let abandoned = drafts();
    eprintln!("5 backups killed: {abandoned} left unfinished drafts, none listed");
    assert!(abandoned > 0, "no kill landed in the middle of a backup");
    // The next backup clears what the killed ones left.
    call_ok(&client, "create_backup", json!({})).await;
    assert_eq!(drafts(), 0);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn backup_interval_writes_backups_while_serving_and_rotates_them() {
    let dir = data_dir();
    let client = crate::support::start_with(
        dir.path(),
        &["--backup-interval", "1s", "--backup-keep", "2"],
    )
    .await;
    call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "kept by the periodic backup"}]}),
    )
    .await;
    // Watch until five backups have appeared. Rotation runs after each new backup is
    // published, so a listing may catch the new one beside the two kept: three at most.
    // Five seen while never more than three listed means the oldest were deleted.
    let mut seen = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "saw only {seen:?}");
        let listed = call_ok(&client, "list_backups", json!({})).await;
        let backups = listed["backups"].as_array().unwrap();
        assert!(backups.len() <= 3, "rotation keeps two: {listed:#}");
        for backup in backups {
            assert_eq!(backup["manifest"]["counts"]["messages"], 1);
            seen.insert(backup["path"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    client.cancel().await.unwrap();
}

/// Paths of a word search's hits.
async fn words(client: &Client, query: &str) -> Vec<String> {
    let results = call_ok(
        client,
        "search_documents",
        json!({"query": query, "mode": "text"}),
    )
    .await;
    hit_paths(&results)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_index_searches_at_once_and_a_copy_from_another_moment_is_made_exact() {
    let workspace = tempfile::tempdir().unwrap();
    let root = workspace.path().canonicalize().unwrap();
    let root_arg = root.to_str().unwrap().to_owned();
    std::fs::write(root.join("notes.txt"), "the lighthouse keeper\n").unwrap();
    std::fs::write(root.join("tides.txt"), "spring tides and neap tides\n").unwrap();
    let dir = data_dir();
    let serving = ["--workspace", root_arg.as_str(), "--embedder", "none"];
    let client = start_with(dir.path(), &serving).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let first = call_ok(&client, "create_backup", json!({})).await;
    let manifest = &first["manifest"];
    assert!(
        manifest["index"].as_str().unwrap().starts_with("copied"),
        "{manifest}"
    );
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"index/meta.json"), "{files:?}");
    assert!(
        files
            .iter()
            .all(|file| !file.ends_with(".lock") && !file.ends_with("writer.pid"))
    );

    std::fs::write(root.join("notes.txt"), "the signalman's box\n").unwrap();
    call_ok(&client, "index_workspace", json!({})).await;
    let second = call_ok(&client, "create_backup", json!({})).await;
    client.cancel().await.unwrap();
    let first = PathBuf::from(first["path"].as_str().unwrap());
    let second = PathBuf::from(second["path"].as_str().unwrap());
    let verified = cli(dir.path(), &["verify", second.to_str().unwrap()]);
    assert!(verified.status.success(), "{verified:?}");

    // Restored whole: the first search finds the backup's passages, with nothing reindexed
    // from the files (the restored server does not watch or walk them).
    let quiet = [
        "--workspace",
        root_arg.as_str(),
        "--embedder",
        "none",
        "--watch",
        "false",
    ];
    std::fs::remove_file(root.join("tides.txt")).unwrap();
    let restored = data_dir();
    let output = cli(restored.path(), &["restore", second.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("search index was restored"),
        "{output:?}"
    );
    let client = start_with(restored.path(), &quiet).await;
    assert_eq!(words(&client, "neap tides").await, ["tides.txt"]);
    assert_eq!(words(&client, "signalman").await, ["notes.txt"]);
    client.cancel().await.unwrap();

    // The second backup's database with the first backup's index, as if the index had been
    // copied at another moment: the document whose version differs is indexed again.
    let mixed = data_dir();
    let output = cli(mixed.path(), &["restore", second.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    std::fs::remove_dir_all(mixed.path().join("index")).unwrap();
    copy_dir(&first.join("index"), &mixed.path().join("index"));
    let client = start_with(mixed.path(), &quiet).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !words(&client, "lighthouse").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stale passage stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(words(&client, "signalman").await, ["notes.txt"]);
    assert_eq!(words(&client, "neap tides").await, ["tides.txt"]);
    client.cancel().await.unwrap();
}
