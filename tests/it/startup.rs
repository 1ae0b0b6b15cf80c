//! Starting up: configuration precedence, refusing databases it must not touch, shutdown.

use std::process::{Command, Output};

use serde_json::json;
use sqlx::{Connection, SqliteConnection};

use crate::support::{BIN, RawServer, call_ok, data_dir, server_command, start};

fn migrate(data_dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("migrate")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CONTEXT_STORE_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = data_dir();
    let file = dir.path().join("context-store.toml");
    std::fs::write(
        &file,
        "user-id = \"from-file\"\nmax-messages-per-call = 2\n",
    )
    .unwrap();
    let store = dir.path().join("data");

    let run = |env_user: Option<&str>, flag_user: Option<&str>| {
        let mut command = server_command(&store);
        command.arg("--config").arg(&file);
        if let Some(user) = env_user {
            command.env("CONTEXT_STORE_USER_ID", user);
        }
        if let Some(user) = flag_user {
            command.arg("--user-id").arg(user);
        }
        command
    };
    for (env_user, flag_user, expected) in [
        (None, None, "from-file"),
        (Some("from-env"), None, "from-env"),
        (Some("from-env"), Some("from-flag"), "from-flag"),
    ] {
        let mut server = RawServer::spawn_command(run(env_user, flag_user));
        server.initialize("2025-11-25").await;
        let page = server.call_tool(1, "get_preferences", json!({})).await;
        assert_eq!(page["result"]["structuredContent"]["user_id"], expected);
        // The file's limit applies where nothing overrides it.
        let three = json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": "c"}]});
        let refused = server.call_tool(2, "save_conversation", three).await;
        assert!(
            refused["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("the limit is 2")
        );
        server.finish().await;
    }
}

#[tokio::test]
async fn migrate_creates_the_database_and_reports_its_version() {
    let dir = data_dir();
    let output = migrate(dir.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let newest = std::fs::read_dir(crate::support::repo_file("migrations"))
        .unwrap()
        .filter_map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_str()?
                .split('_')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("schema version {newest}")),
        "{stdout}"
    );
    assert!(dir.path().join("context-store.db").exists());
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_as_it_is() {
    let dir = data_dir();
    assert!(migrate(dir.path()).status.success());
    let path = dir.path().join("context-store.db");
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999999999999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();

    let output = migrate(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("schema is at version 99999999999999, newer than this binary knows"),
        "{stderr}"
    );
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 99999999999999")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_never_replaced() {
    let dir = data_dir();
    let path = dir.path().join("context-store.db");
    let garbage = b"this is not an SQLite database, and it must survive".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let output = migrate(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("damaged"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file is untouched"
    );
}

/// The WAL was checkpointed on the way out: empty or gone.
fn assert_wal_empty(data_dir: &std::path::Path) {
    let wal = data_dir.join("context-store.db-wal");
    let bytes = std::fs::metadata(&wal).map_or(0, |meta| meta.len());
    assert_eq!(bytes, 0, "the WAL still holds {bytes} bytes");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_keeps_acknowledged_writes() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let saved = server
        .call_tool(
            1,
            "save_conversation",
            json!({"conversation_id": "kept", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(saved["result"]["isError"], false);
    let pid = server.child.id().unwrap();
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(2), server.child.wait())
        .await
        .expect("the server exits within 2 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_wal_empty(dir.path());

    let client = start(dir.path()).await;
    let conversation = call_ok(
        &client,
        "get_conversation",
        json!({"conversation_id": "kept"}),
    )
    .await;
    assert_eq!(conversation["total_messages"], 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn closing_stdin_stops_the_server_within_2_s_with_the_wal_checkpointed() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    for id in 1..=20 {
        let saved = server
            .call_tool(
                id,
                "save_conversation",
                json!({"messages": [{"role": "user", "content": format!("saved {id}")}]}),
            )
            .await;
        assert_eq!(saved["result"]["isError"], false);
    }
    server.close_stdin();
    let status = tokio::time::timeout(std::time::Duration::from_secs(2), server.child.wait())
        .await
        .expect("the server exits within 2 s of its stdin closing")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_wal_empty(dir.path());
}

/// Sizes of the big-store test; `scripts/chaos.sh` raises them toward 2 GB and 100k files.
fn big_store() -> (u64, usize) {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    (
        number("CONTEXT_STORE_BIG_DB_MB", 60),
        number("CONTEXT_STORE_BIG_FILES", 5_000) as usize,
    )
}

/// Fills a migrated database with about `megabytes` of messages, straight through SQL.
async fn fill_database(data_dir: &std::path::Path, megabytes: u64) {
    use sqlx::{ConnectOptions, Connection};
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("context-store.db"))
        .connect()
        .await
        .unwrap();
    let messages = megabytes * 1_000_000 / 4_000;
    sqlx::query("INSERT INTO conversations (id, user_id, created_at, updated_at) VALUES ('big', 'default', 0, 0)")
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
         INSERT INTO messages (conversation_id, id, seq, role, content, created_at)
         SELECT 'big', 'm' || i, i, 'user', hex(randomblob(2000)), i FROM n",
    )
    .bind(messages as i64)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_big_store_answers_initialize_first_and_does_the_heavy_work_after() {
    let (megabytes, files) = big_store();
    let dir = data_dir();
    assert!(migrate(dir.path()).status.success());
    fill_database(dir.path(), megabytes).await;
    let workspace = tempfile::tempdir().unwrap();
    for n in 0..files {
        let folder = workspace.path().join(format!("d{}", n / 1000));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("f{n}.md")),
            format!("file {n} about tides\n"),
        )
        .unwrap();
    }
    let mut command = crate::support::server_command(dir.path());
    command
        .args(["--workspace", workspace.path().to_str().unwrap()])
        .env("CONTEXT_STORE_WATCH", "true");
    let started = std::time::Instant::now();
    let mut server = RawServer::spawn_command(command);
    server.initialize("2025-11-25").await;
    let answered = started.elapsed();
    let health = server.call_tool(1, "health", json!({})).await;
    let report = &health["result"]["structuredContent"];
    let database_bytes = report["database"]["file_bytes"].as_u64().unwrap();
    eprintln!(
        "{} MB database, {files} files: initialize answered in {answered:?}; then {} documents \
         indexed, integrity check {}",
        database_bytes / 1_000_000,
        report["index"]["documents"],
        if report["database"]["integrity"].is_object() {
            "done"
        } else {
            "not yet run"
        },
    );
    // The heavy work had not happened when initialize was answered: the integrity check
    // waits a second, and indexing the roots has barely begun.
    assert!(report["database"].get("integrity").is_none(), "{report:#}");
    assert!(report["index"]["documents"].as_u64().unwrap() < files as u64);
    assert!(database_bytes > megabytes * 900_000);
    server.finish().await;
}
