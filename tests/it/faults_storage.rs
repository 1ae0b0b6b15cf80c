//! Storage and indexing faults: odd file names, a database file replaced while serving, a data
//! directory that was read-only for a while, a full disk under the index, a watched root
//! deleted and recreated, and a log file inside a watched root.

use std::{os::unix::ffi::OsStrExt, path::Path};

use serde_json::json;
use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};

use crate::support::{call, call_err, call_ok, data_dir, hit_paths, start_with, text_of};

/// Writes `name` (raw bytes, not necessarily UTF-8) with `text` under `root`.
fn write_raw_name(root: &Path, name: &[u8], text: &str) {
    let name = std::ffi::OsStr::from_bytes(name);
    std::fs::write(root.join(name), text).unwrap();
}

#[tokio::test]
async fn names_that_are_not_utf8_are_skipped_and_the_rest_is_indexed() {
    let dir = data_dir();
    let workspace = tempfile::tempdir().unwrap();
    // Both names read as "\u{FFFD}.txt" when decoded lossily.
    write_raw_name(workspace.path(), b"\xff.txt", "first odd name");
    write_raw_name(workspace.path(), b"\xfe.txt", "second odd name");
    std::fs::write(workspace.path().join("plain.txt"), "an ordinary file").unwrap();
    let root = workspace.path().to_str().unwrap();
    let client = start_with(dir.path(), &["--workspace", root]).await;

    let report = call_ok(&client, "index_workspace", json!({})).await;

    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(report["skipped"]["not_utf8_name"], 2, "{report}");
    client.cancel().await.unwrap();
}

/// Runs `sql` on the database of `data_dir` beside the server.
async fn execute_beside(data_dir: &Path, sql: &'static str) {
    let mut connection = SqliteConnectOptions::new()
        .filename(data_dir.join("context-store.db"))
        .connect()
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut connection).await.unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_file_whose_rows_the_database_refuses_leaves_the_rest_of_the_pass_indexed() {
    let dir = data_dir();
    let workspace = tempfile::tempdir().unwrap();
    for name in ["a.txt", "refused.txt", "c.txt"] {
        std::fs::write(workspace.path().join(name), format!("the text of {name}")).unwrap();
    }
    let root = workspace.path().to_str().unwrap();
    let client = start_with(dir.path(), &["--workspace", root]).await;
    execute_beside(
        dir.path(),
        "CREATE TRIGGER refuse_one BEFORE INSERT ON documents WHEN NEW.path = 'refused.txt' \
         BEGIN SELECT RAISE(ABORT, 'refused on purpose'); END",
    )
    .await;

    let report = call_ok(&client, "index_workspace", json!({})).await;

    assert_eq!(report["added"], 2, "{report}");
    assert_eq!(report["skipped"]["unstorable"], 1, "{report}");
    let found = call_ok(
        &client,
        "search_documents",
        json!({"query": "text", "mode": "text"}),
    )
    .await;
    let mut paths = hit_paths(&found);
    paths.sort();
    assert_eq!(paths, ["a.txt", "c.txt"], "{found}");
    client.cancel().await.unwrap();
}

fn one_message(text: &str) -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

/// Saves once, lets `detach` act on the database file, and returns the next save's answer
/// and `health` after it.
async fn save_after(detach: impl FnOnce(&Path)) -> (tempfile::TempDir, String, serde_json::Value) {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    call_ok(&client, "save_conversation", one_message("before")).await;
    detach(&dir.path().join("context-store.db"));
    let refused = call_err(&client, "save_conversation", one_message("after")).await;
    let health = call_ok(&client, "health", json!({})).await;
    client.cancel().await.unwrap();
    (dir, refused, health)
}

#[tokio::test]
async fn a_save_into_an_unlinked_database_file_is_refused_and_health_says_why() {
    let (_dir, refused, health) = save_after(|file| std::fs::remove_file(file).unwrap()).await;

    assert!(refused.contains("deleted, moved or replaced"), "{refused}");
    assert_eq!(health["status"], "damaged", "{health}");
    let reason = health["database"]["writes_refused"].as_str().unwrap();
    assert!(reason.contains("deleted, moved or replaced"), "{health}");
}

#[tokio::test]
async fn a_save_into_a_database_file_replaced_at_its_path_is_refused() {
    let (_dir, refused, health) = save_after(|file| {
        let aside = file.with_extension("aside");
        std::fs::rename(file, &aside).unwrap();
        std::fs::copy(&aside, file).unwrap();
    })
    .await;

    assert!(refused.contains("another file is at its path"), "{refused}");
    assert_eq!(health["status"], "damaged", "{health}");
}

/// A read-only bind mount of a folder over itself, undone when dropped.
struct ReadOnlyMount {
    path: std::path::PathBuf,
}

impl ReadOnlyMount {
    /// Makes `path` read-only for new opens (files already open stay writable), as a
    /// remount does; None where mounting is not allowed (needs root).
    fn over(path: &Path) -> Option<Self> {
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .arg(path)
                .arg(path)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if !run(&["--bind"]) {
            return None;
        }
        let mount = Self {
            path: path.to_owned(),
        };
        run(&["-o", "remount,ro,bind"]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        // Lazily: the server still holds files it opened through the mount.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Saves and history reads at once, so that the pool opens connections while the data
/// directory is read-only; the error texts of the calls that failed.
async fn burst(client: &crate::support::Client, calls: usize) -> Vec<String> {
    let results = futures::future::join_all((0..calls).map(|n| async move {
        match n % 2 {
            0 => {
                call(
                    client,
                    "save_conversation",
                    one_message(&format!("burst {n}")),
                )
                .await
            }
            _ => call(client, "get_conversation_history", json!({"limit": 5})).await,
        }
    }))
    .await;
    results
        .iter()
        .filter(|result| result.is_error == Some(true))
        .map(text_of)
        .collect()
}

#[tokio::test]
async fn a_data_directory_read_only_for_a_while_takes_every_save_again_once_writable() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    call_ok(&client, "save_conversation", one_message("before")).await;
    let Some(read_only) = ReadOnlyMount::over(dir.path()) else {
        eprintln!("SKIPPED: a read-only bind mount is not allowed here (needs root)");
        return;
    };
    let refused = burst(&client, 20).await;
    drop(read_only);

    let mut failed = Vec::new();
    for n in 0..60 {
        let result = call(
            &client,
            "save_conversation",
            one_message(&format!("after {n}")),
        )
        .await;
        if result.is_error == Some(true) {
            failed.push(text_of(&result));
        }
    }
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "refused while read-only: {refused:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_save_refused_while_the_data_directory_is_read_only_says_so_and_is_retryable() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    call_ok(&client, "save_conversation", one_message("before")).await;
    let Some(read_only) = ReadOnlyMount::over(dir.path()) else {
        eprintln!("SKIPPED: a read-only bind mount is not allowed here (needs root)");
        return;
    };
    let refused = burst(&client, 20).await;
    drop(read_only);

    assert!(!refused.is_empty(), "no call met a read-only connection");
    for text in &refused {
        assert!(
            text.contains("data directory is not writable") && text.contains("(retryable)"),
            "{text}"
        );
    }
    client.cancel().await.unwrap();
}

/// A small tmpfs mounted at `path` (created), unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u32) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Self {
            path: path.to_owned(),
        })
    }

    /// Writes a file until the disk refuses more; its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// A file of distinct words that tantivy needs room to write.
fn wordy_file(path: &Path, word: &str) {
    let lines: Vec<String> = (0..4000)
        .map(|n| format!("{word} line {n} holds token{n} and more{n}"))
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

/// A server whose index folder sits on its own 4 MiB disk, with one file indexed, then the
/// disk filled and a second file indexed; returns the server, the filler, the disk, the
/// workspace and the data directory.
async fn index_on_a_full_disk() -> Option<(
    crate::support::Client,
    std::path::PathBuf,
    SmallDisk,
    tempfile::TempDir,
    tempfile::TempDir,
)> {
    let dir = data_dir();
    let Some(disk) = SmallDisk::mount(&dir.path().join("index"), 4) else {
        eprintln!("SKIPPED: mounting a tmpfs is not allowed here (needs root)");
        return None;
    };
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("first.txt"), "alpha is indexed").unwrap();
    let root = workspace.path().to_str().unwrap();
    let client = start_with(dir.path(), &["--workspace", root]).await;
    call_ok(&client, "index_workspace", json!({})).await;
    let filler = disk.fill();
    wordy_file(&workspace.path().join("second.txt"), "bravo");
    call(&client, "index_workspace", json!({})).await;
    Some((client, filler, disk, workspace, dir))
}

/// Asks again every 100 ms, for up to 20 s, until an answer passes.
struct Poll<F> {
    ask: F,
}

fn poll<F>(ask: F) -> Poll<F> {
    Poll { ask }
}

impl<F, Fut, T> Poll<F>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    async fn until(self, passes: impl Fn(&T) -> bool) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let answer = (self.ask)().await;
            if passes(&answer) || std::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

async fn text_hits(client: &crate::support::Client, query: &str) -> Vec<String> {
    let found = call_ok(
        client,
        "search_documents",
        json!({"query": query, "mode": "text"}),
    )
    .await;
    let mut paths = hit_paths(&found);
    paths.dedup();
    paths
}

#[tokio::test]
async fn a_full_disk_under_the_index_shows_in_health_until_space_is_freed() {
    let Some((client, filler, _disk, _workspace, _dir)) = index_on_a_full_disk().await else {
        return;
    };

    let health = call_ok(&client, "health", json!({})).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["index"]["writer_failed"].is_string(), "{health}");
    assert_eq!(text_hits(&client, "alpha").await, ["first.txt"]);

    std::fs::remove_file(filler).unwrap();
    let health = poll(|| async { call_ok(&client, "health", json!({})).await })
        .until(|health| health["status"] == "ok")
        .await;
    assert_eq!(health["status"], "ok", "{health}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn indexing_works_again_once_space_under_the_index_is_freed() {
    let Some((client, filler, _disk, _workspace, _dir)) = index_on_a_full_disk().await else {
        return;
    };

    std::fs::remove_file(filler).unwrap();
    let hits = poll(|| text_hits(&client, "bravo"))
        .until(|hits| !hits.is_empty())
        .await;

    assert_eq!(hits, ["second.txt"]);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_root_deleted_and_made_again_is_watched_again() {
    let dir = data_dir();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("first.txt"), "alpha before").unwrap();
    let client = start_with(
        dir.path(),
        &["--watch", "--workspace", root.to_str().unwrap()],
    )
    .await;
    let first = poll(|| text_hits(&client, "alpha"))
        .until(|hits| !hits.is_empty())
        .await;
    assert_eq!(first, ["first.txt"]);

    // At once: the new folder may well get the old one's inode number.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("second.txt"), "bravo after").unwrap();
    let second = poll(|| text_hits(&client, "bravo"))
        .until(|hits| !hits.is_empty())
        .await;

    assert_eq!(second, ["second.txt"]);
    client.cancel().await.unwrap();
}

/// A watching server whose stderr (at info level) is `log`, a file inside `root`.
async fn start_logging_into(data: &Path, root: &Path, log: &Path) -> crate::support::Client {
    use rmcp::{ServiceExt, transport::TokioChildProcess};
    let mut command = crate::support::server_command(data);
    command
        .args(["--watch", "--workspace", root.to_str().unwrap()])
        .env("RUST_LOG", "info");
    let log = std::fs::File::create(log).unwrap();
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

/// A watching server logging into its root, once its first pass indexed `notes.txt`.
async fn logging_into_its_root() -> (
    crate::support::Client,
    std::path::PathBuf,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let dir = data_dir();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("notes.txt"), "charlie notes").unwrap();
    let log = workspace.path().join("server.log");
    let client = start_logging_into(dir.path(), workspace.path(), &log).await;
    let hits = poll(|| text_hits(&client, "charlie"))
        .until(|hits| !hits.is_empty())
        .await;
    assert_eq!(hits, ["notes.txt"]);
    (client, log, workspace, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_own_log_inside_a_watched_root_is_not_indexed() {
    let (client, log, _workspace, _dir) = logging_into_its_root().await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    assert!(std::fs::metadata(&log).unwrap().len() > 0, "nothing logged");
    let status = call_ok(&client, "index_status", json!({})).await;
    assert_eq!(status["documents"], 1, "{status}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_own_log_inside_a_watched_root_starts_no_passes() {
    let (client, log, _workspace, _dir) = logging_into_its_root().await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let settled = std::fs::metadata(&log).unwrap().len();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let later = std::fs::metadata(&log).unwrap().len();
    assert_eq!(later, settled, "{}", std::fs::read_to_string(&log).unwrap());
    client.cancel().await.unwrap();
}
