//! Faults on purpose: `kill -9` during saves, another process holding the write lock, a full
//! disk, a client that dies without closing the pipe. Nothing acknowledged is ever lost.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{BIN, RawServer, call, call_ok, cli, data_dir, start, text_of};

/// Cycles of the kill test; `scripts/chaos.sh` raises it with `CONTEXT_STORE_KILL_CYCLES`.
fn kill_cycles() -> usize {
    std::env::var("CONTEXT_STORE_KILL_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(20)
}
const MESSAGES_PER_SAVE: usize = 10;

/// Deterministic pseudo-random delays (no rand crate for one number).
fn delay_ms(cycle: usize) -> u64 {
    let mixed = (cycle as u64 + 1).wrapping_mul(6364136223846793005) >> 33;
    50 + mixed % 350
}

fn save_request(id: i64, conversation: &str) -> Value {
    let messages: Vec<Value> = (0..MESSAGES_PER_SAVE)
        .map(|n| json!({"role": "user", "content": format!("{conversation} message {n}")}))
        .collect();
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "save_conversation",
                   "arguments": {"conversation_id": conversation, "messages": messages}}
    })
}

/// Saves one batch after another until the server dies; the conversations acknowledged.
async fn save_until_killed(server: &mut RawServer, cycle: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for n in 1.. {
        let conversation = format!("k{cycle}-{n}");
        if !server.try_send(&save_request(n, &conversation)).await {
            break;
        }
        match server.try_response(json!(n)).await {
            Some(answer) if answer["result"]["isError"] == false => acknowledged.push(conversation),
            Some(answer) => panic!("a save failed: {answer}"),
            None => break,
        }
    }
    acknowledged
}

/// Messages per conversation, read from the file itself.
async fn stored_batches(data_dir: &Path) -> HashMap<String, i64> {
    let mut connection = SqliteConnectOptions::new()
        .filename(data_dir.join("context-store.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT conversation_id, COUNT(*) FROM messages GROUP BY conversation_id")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    connection.close().await.unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn kill_9_during_saves_again_and_again_loses_no_acknowledged_save() {
    let dir = data_dir();
    let mut acknowledged = HashSet::new();
    let cycles = kill_cycles();
    for cycle in 0..cycles {
        let mut server = RawServer::spawn(dir.path());
        server.initialize("2025-11-25").await;
        let pid = server.child.id().unwrap() as i32;
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms(cycle))).await;
            // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        acknowledged.extend(save_until_killed(&mut server, cycle).await);
        killer.await.unwrap();
        server.child.wait().await.unwrap();
    }
    let stored = stored_batches(dir.path()).await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| stored.get(*id) != Some(&(MESSAGES_PER_SAVE as i64)))
        .collect();
    let partial: Vec<(&String, &i64)> = stored
        .iter()
        .filter(|(_, count)| **count != MESSAGES_PER_SAVE as i64)
        .collect();
    eprintln!(
        "kill -9 x{cycles}: {} saves acknowledged, {} stored, {} lost, {} partial",
        acknowledged.len(),
        stored.len(),
        lost.len(),
        partial.len()
    );
    assert!(acknowledged.len() > cycles, "saves ran between the kills");
    assert!(lost.is_empty(), "acknowledged but missing: {lost:?}");
    assert!(partial.is_empty(), "partial batches: {partial:?}");
    let verify = cli(dir.path(), &["verify"]);
    assert!(
        verify.status.success(),
        "integrity after the kills: {verify:?}"
    );
}

/// Holds SQLite's write lock from outside the server, as another program would.
async fn lock_writes(data_dir: &Path) -> sqlx::SqliteConnection {
    let mut connection = SqliteConnectOptions::new()
        .filename(data_dir.join("context-store.db"))
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

async fn release(mut connection: sqlx::SqliteConnection) {
    sqlx::query("COMMIT")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

fn one_message(content: &str) -> Value {
    json!({"messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn a_held_write_lock_is_waited_for_then_reported_as_retryable_and_nothing_is_lost() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    call_ok(&client, "save_conversation", one_message("before")).await;

    // A lock released after a second: the save waits for it and succeeds.
    let lock = lock_writes(dir.path()).await;
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        release(lock).await;
    });
    let started = Instant::now();
    call_ok(&client, "save_conversation", one_message("waited")).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    releaser.await.unwrap();

    // A lock held throughout: a clear retryable error after bounded retries.
    let lock = lock_writes(dir.path()).await;
    let started = Instant::now();
    let refused = call(&client, "save_conversation", one_message("refused")).await;
    let waited = started.elapsed();
    assert_eq!(refused.is_error, Some(true));
    let text = text_of(&refused);
    assert!(text.contains("busy") && text.contains("retry"), "{text}");
    assert!(waited < Duration::from_secs(20), "gave up after {waited:?}");
    eprintln!("write lock held: retryable error after {waited:?}");
    release(lock).await;

    call_ok(&client, "save_conversation", one_message("after")).await;
    let history = call_ok(&client, "get_conversation_history", json!({"limit": 10})).await;
    let contents: Vec<&str> = history["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["messages"][0]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 3, "{contents:?}");
    for kept in ["before", "waited", "after"] {
        assert!(contents.contains(&kept), "{kept} in {contents:?}");
    }
    client.cancel().await.unwrap();
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<Self> {
        let mount = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(mount.path())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { mount })
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Writes a file until the disk refuses more.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_write_clearly_keeps_the_data_and_recovers_without_restart() {
    let Some(disk) = SmallDisk::mount(16) else {
        eprintln!("SKIPPED: mounting a tmpfs is not allowed here (needs root)");
        return;
    };
    let data = disk.path().join("data");
    let client = start(&data).await;
    for n in 0..5 {
        call_ok(
            &client,
            "save_conversation",
            one_message(&format!("kept {n}")),
        )
        .await;
    }
    let filler = disk.fill();

    let big: Vec<Value> = (0..50)
        .map(|n| json!({"role": "user", "content": format!("{n} {}", "x".repeat(8000))}))
        .collect();
    let refused = call(
        &client,
        "save_conversation",
        json!({"messages": big.clone()}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true), "{}", text_of(&refused));
    let text = text_of(&refused);
    assert!(
        text.contains("disk is full") && text.contains("retryable"),
        "{text}"
    );
    let history = call_ok(&client, "get_conversation_history", json!({"limit": 10})).await;
    assert_eq!(history["conversations"].as_array().unwrap().len(), 5);
    call_ok(&client, "health", json!({})).await;

    std::fs::remove_file(filler).unwrap();
    call_ok(&client, "save_conversation", json!({"messages": big})).await;
    client.cancel().await.unwrap();
    let verify = cli(&data, &["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(stdout.contains("6 conversations, 55 messages"), "{stdout}");
}

/// Whether `pid` has exited (gone, or a zombie nobody has reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status.lines().any(|line| line.starts_with("State:\tZ")),
        Err(_) => true,
    }
}

#[tokio::test]
async fn a_server_whose_client_died_exits_even_though_its_stdin_stays_open() {
    let dir = data_dir();
    // The client (sh) starts the server on a pipe that this test keeps open, then dies.
    let script = format!(
        "exec 3<&0; '{BIN}' serve --data-dir '{}' <&3 & echo $!; sleep 1",
        dir.path().display()
    );
    let mut client = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("CONTEXT_STORE_WATCH", "false")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _open_pipe = client.stdin.take().unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let pid: u32 = lines
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    client.wait().await.unwrap();
    let orphaned = Instant::now();
    while !exited(pid) && orphaned.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited(pid), "the orphaned server is still running");
    // Exiting at all is the behaviour under test; how soon is a figure (the parent is looked
    // for every 500 ms), printed rather than asserted on a loaded machine.
    eprintln!(
        "orphaned server exited {:?} after its client",
        orphaned.elapsed()
    );
}

fn wal_bytes(data_dir: &Path) -> u64 {
    std::fs::metadata(data_dir.join("context-store.db-wal")).map_or(0, |meta| meta.len())
}

/// How long the reader holds its snapshot; `scripts/chaos.sh` makes it a minute.
fn reader_seconds() -> u64 {
    std::env::var("CONTEXT_STORE_READER_SECS")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(8)
}

#[tokio::test]
async fn a_reader_holding_a_snapshot_lets_the_wal_grow_only_with_the_writes_then_it_shrinks() {
    let dir = data_dir();
    let client = crate::support::start_with(dir.path(), &["--checkpoint-interval", "1s"]).await;
    call_ok(&client, "save_conversation", one_message("first")).await;
    let mut reader = SqliteConnectOptions::new()
        .filename(dir.path().join("context-store.db"))
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let held = Instant::now();
    let (mut saves, mut largest) = (0, 0);
    let text = "w".repeat(4000);
    while held.elapsed() < Duration::from_secs(reader_seconds()) {
        let messages: Vec<Value> = (0..10)
            .map(|n| json!({"role": "user", "content": format!("{n} {text}")}))
            .collect();
        call_ok(&client, "save_conversation", json!({"messages": messages})).await;
        saves += 1;
        largest = largest.max(wal_bytes(dir.path()));
    }
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    let released = Instant::now();
    while wal_bytes(dir.path()) > 1 << 20 && released.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = wal_bytes(dir.path());
    eprintln!(
        "reader held {} s over {saves} saves ({} MB written): WAL peaked at {:.1} MB, {:.1} MB \
         {:.1} s after release",
        reader_seconds(),
        saves * 10 * 4 / 1000,
        largest as f64 / 1e6,
        after as f64 / 1e6,
        released.elapsed().as_secs_f64()
    );
    // While the snapshot is held nothing can be checkpointed past it: the WAL holds every
    // page each commit changed (about 5 times the text here: b-tree and FTS5 pages are
    // written again by each commit), growing with the writes and nothing else.
    let written = saves as u64 * 10 * 4_000;
    assert!(
        largest > written,
        "WAL {largest} for {written} bytes written"
    );
    assert!(largest < written * 10 + (1 << 20), "WAL grew to {largest}");
    assert!(
        after <= 1 << 20,
        "the WAL stayed at {after} bytes after the reader left"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn work_queued_while_another_process_holds_the_index_writer_is_drained_later() {
    let workspace = tempfile::tempdir().unwrap();
    let root = workspace.path();
    std::fs::write(root.join("first.md"), "The harbour tide table.\n").unwrap();
    let dir = data_dir();
    let args = ["--workspace", root.to_str().unwrap()];
    let holder = crate::support::start_with(dir.path(), &args).await;
    call_ok(&holder, "index_workspace", json!({})).await;
    let status = call_ok(&holder, "index_status", json!({})).await;
    assert_eq!(status["writer"]["this_process"], true, "{status:#}");
    let holder_pid = call_ok(&holder, "health", json!({})).await["pid"]
        .as_u64()
        .unwrap() as i32;
    let other = crate::support::start_with(dir.path(), &args).await;

    // The holder freezes with the writer; the other process stages a new file meanwhile.
    // SAFETY: kill(2) on the pid of a server this test started.
    unsafe { libc::kill(holder_pid, libc::SIGSTOP) };
    std::fs::write(root.join("second.md"), "A lighthouse keeper's logbook.\n").unwrap();
    let path = root.join("second.md").to_str().unwrap().to_owned();
    let other = std::sync::Arc::new(other);
    let indexing = {
        let other = other.clone();
        tokio::spawn(async move { call_ok(&other, "index_document", json!({"path": path})).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Searches keep working from the committed index while the work waits.
    let hits = call_ok(&other, "search_documents", json!({"query": "harbour"})).await;
    assert_eq!(hits["hits"][0]["path"], "first.md", "{hits:#}");
    assert!(
        !indexing.is_finished(),
        "the staged file waits for the writer"
    );

    unsafe { libc::kill(holder_pid, libc::SIGCONT) };
    let report = tokio::time::timeout(Duration::from_secs(30), indexing)
        .await
        .expect("drained once the holder runs again")
        .unwrap();
    assert_eq!(report["pending"], 0, "{report:#}");
    let hits = call_ok(&other, "search_documents", json!({"query": "lighthouse"})).await;
    assert_eq!(hits["hits"][0]["path"], "second.md", "{hits:#}");
    holder.cancel().await.unwrap();
}
