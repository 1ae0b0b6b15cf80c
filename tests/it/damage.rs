//! Damaged database files: detected at open, by a query or by the background integrity check;
//! served read-only with clear errors; never recreated, renamed or deleted; restored from a
//! backup with `context-store restore`.

use std::{
    fs::OpenOptions,
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{Client, call, call_ok, cli, data_dir, start, text_of};

const PAGE: u64 = 4096;
const CONVERSATIONS: usize = 40;

/// Saves `count` conversations of 5 messages each through a server, then stops it.
async fn save_conversations(dir: &Path, first: usize, count: usize) {
    let client = start(dir).await;
    for n in first..first + count {
        let messages: Vec<Value> = (0..5)
            .map(|m| json!({"role": "user", "content": format!("conversation {n} message {m} {}", "words ".repeat(30))}))
            .collect();
        call_ok(
            &client,
            "save_conversation",
            json!({"conversation_id": format!("c{n}"), "messages": messages}),
        )
        .await;
    }
    client.cancel().await.unwrap();
}

/// A data directory with [`CONVERSATIONS`] conversations and a backup of them; the WAL is
/// checkpointed into the main file, as after a clean stop.
async fn populated() -> (tempfile::TempDir, PathBuf) {
    let dir = data_dir();
    save_conversations(dir.path(), 0, CONVERSATIONS).await;
    let output = cli(dir.path(), &["backup"]);
    assert!(output.status.success(), "{output:?}");
    let backups: Vec<PathBuf> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(cli(dir.path(), &["verify"]).status.success());
    (dir, backups[0].clone())
}

fn database(dir: &Path) -> PathBuf {
    dir.join("context-store.db")
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// The file without the header's change counter and version-valid-for number, which SQLite
/// itself bumps when a connection opens the file in WAL mode and closes it.
fn without_counters(mut bytes: Vec<u8>) -> Vec<u8> {
    for range in [24..28, 92..96] {
        if bytes.len() >= range.end {
            bytes[range].fill(0);
        }
    }
    bytes
}

async fn health(client: &Client) -> Value {
    call_ok(client, "health", json!({})).await
}

/// Waits until the server reports the damage (at open, or after its background check).
async fn reported_damage(client: &Client) -> Value {
    for _ in 0..150 {
        let report = health(client).await;
        if report["status"] == "damaged" {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the damage was never reported: {:#}", health(client).await);
}

/// The server starts on the damaged file, reports it, refuses writes with a clear error and
/// keeps serving; the file is left exactly as it was; restore brings the backup's rows back.
async fn detected_and_restored(dir: &Path, backup: &Path) {
    let damaged = std::fs::read(database(dir)).unwrap();
    let client = start(dir).await;
    let report = reported_damage(&client).await;
    let detail = report["database"]["damaged"].as_str().unwrap();
    assert!(detail.contains("context-store restore"), "{detail}");

    let save = call(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "after the damage"}]}),
    )
    .await;
    assert_eq!(save.is_error, Some(true));
    let text = text_of(&save);
    assert!(
        text.contains("damaged") && text.contains("context-store restore"),
        "{text}"
    );
    // Reads are still answered (with what can be read, or a clear error), and so is health.
    let read = call(&client, "get_conversation_history", json!({"limit": 5})).await;
    if read.is_error == Some(true) {
        assert!(text_of(&read).contains("damaged"), "{}", text_of(&read));
    }
    health(&client).await;
    client.cancel().await.unwrap();
    assert!(
        without_counters(std::fs::read(database(dir)).unwrap()) == without_counters(damaged),
        "the damaged file is kept as it was"
    );

    let checked = cli(dir, &["health"]);
    assert!(!checked.status.success(), "{checked:?}");
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(stdout.contains("status: damaged"), "{stdout}");
    assert!(String::from_utf8_lossy(&checked.stderr).contains("context-store restore"));

    let output = cli(dir, &["restore", backup.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("kept in"), "{stdout}");
    let client = start(dir).await;
    let report = health(&client).await;
    assert_eq!(report["status"], "ok", "{report:#}");
    let history = call_ok(&client, "get_conversation_history", json!({"limit": 100})).await;
    assert_eq!(
        history["conversations"].as_array().unwrap().len(),
        CONVERSATIONS
    );
    call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "writes work again"}]}),
    )
    .await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_overwritten_header_is_reported_and_restored() {
    let (dir, backup) = populated().await;
    overwrite(&database(dir.path()), 0, &[0x42; 100]);
    detected_and_restored(dir.path(), &backup).await;
}

#[tokio::test]
async fn a_truncated_file_is_reported_and_restored() {
    let (dir, backup) = populated().await;
    let path = database(dir.path());
    let pages = std::fs::metadata(&path).unwrap().len() / PAGE;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(pages / 2 * PAGE)
        .unwrap();
    detected_and_restored(dir.path(), &backup).await;
}

#[tokio::test]
async fn overwritten_pages_are_reported_and_restored() {
    let (dir, backup) = populated().await;
    let path = database(dir.path());
    let pages = std::fs::metadata(&path).unwrap().len() / PAGE;
    overwrite(&path, pages / 2 * PAGE, &vec![0x5a; 3 * PAGE as usize]);
    detected_and_restored(dir.path(), &backup).await;
}

/// A main file copied without its WAL while a checkpoint was half done: the first pages come
/// from the newer state, the rest from the older one (checkpoints write in page order).
#[tokio::test]
async fn a_main_file_copied_mid_checkpoint_without_its_wal_is_reported_and_restored() {
    let (dir, backup) = populated().await;
    let older = std::fs::read(database(dir.path())).unwrap();
    save_conversations(dir.path(), CONVERSATIONS, CONVERSATIONS).await;
    assert!(cli(dir.path(), &["verify"]).status.success());
    let newer = std::fs::read(database(dir.path())).unwrap();
    assert!(newer.len() > older.len());
    let split = older.len() / 2 / PAGE as usize * PAGE as usize;
    let mut copied = newer[..split].to_vec();
    copied.extend_from_slice(&older[split..]);
    std::fs::write(database(dir.path()), &copied).unwrap();
    detected_and_restored(dir.path(), &backup).await;
}
