//! The edges of the stdio transport: JSON-RPC lines rmcp would drop or answer without their
//! id, cancellation, the session's end (stdin closed, stdout closed, SIGTERM) during an
//! indexing pass, and a stderr that is broken or never read.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::support::{RawServer, data_dir, server_command};

/// Files in the generated workspace: a pass over them takes seconds in a debug build.
const WORKSPACE_FILES: usize = 3000;
/// What a stopping server may take (README's promise).
const EXIT_WITHIN: Duration = Duration::from_secs(2);

fn initialize_params() -> Value {
    json!({
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "context-store-tests", "version": "0"}
    })
}

// --- JSON-RPC edges ---

#[tokio::test]
async fn a_line_that_is_not_json_gets_a_parse_error_with_a_null_id() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    server.send_raw(b"this is not json\n").await;
    let answer = server.response(Value::Null).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let ping = server.request(1, "ping", json!({})).await;
    assert!(ping["result"].is_object(), "still serving: {ping}");
    server.finish().await;
}

#[tokio::test]
async fn an_invalid_request_keeps_its_id() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    server
        .send(json!({"jsonrpc": "1.0", "id": 5, "method": "ping"}))
        .await;
    let answer = server.response(json!(5)).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    server.finish().await;
}

#[tokio::test]
async fn tool_arguments_that_are_not_an_object_are_invalid_params() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let answer = server.call_tool(2, "health", json!(7)).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("params.arguments"), "{message}");
    server.finish().await;
}

#[tokio::test]
async fn an_unknown_tool_is_named_in_its_error() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let answer = server.call_tool(3, "no_such_tool", json!({})).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"no_such_tool\""), "{message}");
    server.finish().await;
}

#[tokio::test]
async fn an_unknown_prompt_is_named_in_its_error() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let answer = server
        .request(4, "prompts/get", json!({"name": "no_such_prompt"}))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"no_such_prompt\""), "{message}");
    server.finish().await;
}

#[tokio::test]
async fn a_second_initialize_is_refused_and_the_session_goes_on() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    let again = server.request(6, "initialize", initialize_params()).await;
    assert_eq!(again["error"]["code"], -32600, "{again}");
    let message = again["error"]["message"].as_str().unwrap();
    assert!(message.contains("already initialized"), "{message}");
    let tools = server.request(7, "tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array(), "{tools}");
    server.finish().await;
}

#[tokio::test]
async fn a_line_with_millions_of_keys_is_refused_naming_the_limit() {
    let dir = data_dir();
    let mut server = RawServer::spawn(dir.path());
    server.initialize("2025-11-25").await;
    // 1.3 million small keys, 13.8 MiB: under the line limit, far over the element limit.
    let mut line = String::from(
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"set_preference","arguments":{"key":"k","value":{"#,
    );
    for key in 0..1_300_000 {
        if key > 0 {
            line.push(',');
        }
        line.push_str(&format!("\"{key}\":0"));
    }
    line.push_str("}}}}\n");
    server.send_raw(line.as_bytes()).await;
    let answer = server.response(json!(9)).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("200000"), "{message}");
    let ping = server.request(10, "ping", json!({})).await;
    assert!(ping["result"].is_object(), "still serving: {ping}");
    server.finish().await;
}

// --- Cancellation and the session's end during an indexing pass ---

/// A workspace of `count` small files in a temp dir (the dir, and the root inside it).
fn workspace(count: usize) -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("ws");
    for index in 0..count {
        let folder = root.join(format!("d{}", index / 100));
        std::fs::create_dir_all(&folder).unwrap();
        let text = format!("# note {index}\nword{index} shared text about item {index}\n");
        std::fs::write(folder.join(format!("f{index}.md")), text).unwrap();
    }
    (base, root)
}

/// A server driven line by line, its stderr kept in a file for inspection.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl Session {
    fn spawn(mut command: Command, stderr: Stdio, stderr_path: &Path) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning context-store");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            stderr: stderr_path.to_owned(),
        }
    }

    /// A server on `data` indexing `root`, logging at info level to a file in `data`.
    fn indexing(data: &Path, root: &Path) -> Self {
        let stderr_path = data.join("stderr.log");
        let mut command = server_command(data);
        command.arg("--workspace").arg(root).env("RUST_LOG", "info");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        Self::spawn(command, Stdio::from(stderr), &stderr_path)
    }

    async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&line).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next stdout line as JSON; None at its end or after `wait` without a line.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        Some(serde_json::from_str(&line).unwrap())
    }

    /// Reads until the answer to `id`, returning it and the progress notifications seen.
    async fn answer(&mut self, id: i64) -> (Value, usize) {
        let mut progress = 0;
        loop {
            let message = self
                .next(Duration::from_secs(30))
                .await
                .expect("an answer in time");
            if message["id"] == id {
                return (message, progress);
            }
            if message["method"] == "notifications/progress" {
                progress += 1;
            }
        }
    }

    async fn initialize(&mut self) {
        self.send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": initialize_params()}))
            .await;
        self.answer(0).await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    /// Starts `index_workspace` (id 1) with a progress token and returns once the first
    /// progress notification arrives: the pass is under way.
    async fn start_pass(&mut self) {
        self.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": "index_workspace", "arguments": {"force": true},
                                    "_meta": {"progressToken": "pass"}}}))
            .await;
        loop {
            let message = self
                .next(Duration::from_secs(30))
                .await
                .expect("progress in time");
            assert_ne!(
                message["id"], 1,
                "the pass ended before it could be stopped"
            );
            if message["method"] == "notifications/progress" {
                return;
            }
        }
    }

    /// `index_status`'s document count, and the progress notifications read before it.
    async fn documents(&mut self, id: i64) -> (i64, usize) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": "index_status", "arguments": {}}}))
            .await;
        let (answer, progress) = self.answer(id).await;
        let documents = answer["result"]["structuredContent"]["documents"]
            .as_i64()
            .unwrap_or_else(|| panic!("{answer}"));
        (documents, progress)
    }

    /// Waits for the process to exit; its status and how long that took.
    async fn exit(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exited")
            .unwrap();
        (status, started.elapsed())
    }

    fn error_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_pass_stops_its_work_and_its_progress() {
    let (_base, root) = workspace(WORKSPACE_FILES);
    let data = data_dir();
    let mut session = Session::indexing(data.path(), &root);
    session.initialize().await;
    session.start_pass().await;
    session
        .send(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": 1, "reason": "test"}}),
        )
        .await;
    // Notifications already on their way may still arrive; after a settling pause, none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (settled, _) = session.documents(2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (later, progress_after) = session.documents(3).await;
    assert_eq!(progress_after, 0, "progress went on after the cancellation");
    assert_eq!(settled, later, "the pass went on after its cancellation");
    assert!(
        (later as usize) < WORKSPACE_FILES,
        "the pass ran to its end: {later} documents"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_stdin_mid_pass_exits_within_two_seconds_without_errors() {
    let (_base, root) = workspace(WORKSPACE_FILES);
    let data = data_dir();
    let mut session = Session::indexing(data.path(), &root);
    session.initialize().await;
    session.start_pass().await;
    drop(session.stdin.take());
    let (status, took) = session.exit().await;
    assert!(status.success(), "exit status {status}");
    assert!(took < EXIT_WITHIN, "took {took:?}");
    assert_eq!(session.error_lines(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_pass_exits_within_two_seconds_without_errors() {
    let (_base, root) = workspace(WORKSPACE_FILES);
    let data = data_dir();
    let mut session = Session::indexing(data.path(), &root);
    session.initialize().await;
    session.start_pass().await;
    let pid = session.child.id().unwrap() as libc::pid_t;
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (status, took) = session.exit().await;
    assert!(status.success(), "exit status {status}");
    assert!(took < EXIT_WITHIN, "took {took:?}");
    assert_eq!(session.error_lines(), Vec::<String>::new());
}

// --- A client that closes the server's stdout ---

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_session_like_a_closed_stdin() {
    let data = data_dir();
    let stderr_path = data.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut session = Session::spawn(
        server_command(data.path()),
        Stdio::from(stderr),
        &stderr_path,
    );
    session.initialize().await;
    // The client stops reading but keeps stdin open; the next answer cannot be written.
    let Session { lines, .. } = &mut session;
    drop(std::mem::replace(lines, closed_lines().await));
    session
        .send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "get_preferences", "arguments": {}}}))
        .await;
    let (status, took) = session.exit().await;
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // serve.lock is free: a restore could take the data directory now.
    let lock = std::fs::File::open(data.path().join("serve.lock")).unwrap();
    assert!(lock.try_lock().is_ok(), "serve.lock is still held");
}

/// Lines of a stdout that has already ended, to stand in for the one dropped.
async fn closed_lines() -> Lines<BufReader<ChildStdout>> {
    let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    child.wait().await.unwrap();
    BufReader::new(stdout).lines()
}

// --- A broken or unread stderr ---

/// Calls answered by a server logging at debug level to `stderr`; exits cleanly after.
async fn answers_with_stderr(stderr: Stdio, calls: i64) {
    let data = data_dir();
    let mut command = server_command(data.path());
    command.env("RUST_LOG", "debug");
    let mut session = Session::spawn(command, stderr, &data.path().join("unused"));
    session.initialize().await;
    for id in 1..=calls {
        session
            .send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": "set_preference",
                                    "arguments": {"key": format!("k{id}"), "value": id}}}))
            .await;
        let (answer, _) = session.answer(id).await;
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    drop(session.stdin.take());
    let (status, _) = session.exit().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stderr_pipe_closed_by_the_client_loses_only_log_lines() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    answers_with_stderr(Stdio::from(writer), 50).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stderr_pipe_nobody_reads_never_stops_the_answers() {
    let (reader, writer) = std::io::pipe().unwrap();
    // Held open and never read: the pipe's 64 KiB fill after a few hundred debug lines.
    answers_with_stderr(Stdio::from(writer), 600).await;
    drop(reader);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stderr_on_a_full_disk_loses_only_log_lines() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    answers_with_stderr(Stdio::from(full), 50).await;
}
