//! Starting the real `context-store` binary and talking to it: through an rmcp client, or
//! line by line as raw JSON-RPC when a test needs to see the bytes.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::TokioChildProcess,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_context-store");
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub type Client = RunningService<RoleClient, ()>;

/// Runs a `context-store` command (not `serve`) on `data_dir` and waits for it.
pub fn cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("CONTEXT_STORE_CONFIG")
        // The shared model folder (under the cache folder) is found only where a test asks.
        .env("XDG_CACHE_HOME", data_dir.join("no-cache"))
        .output()
        .expect("running context-store")
}

/// Where servers' stderr goes: the file named by `CONTEXT_STORE_TEST_LOG` (appended to, for
/// debugging a test), else nowhere.
fn server_log() -> Stdio {
    let Some(path) = std::env::var_os("CONTEXT_STORE_TEST_LOG") else {
        return Stdio::null();
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

/// A temporary data directory, removed when dropped.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temp dir")
}

pub fn server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "RUST_LOG",
            std::env::var("CONTEXT_STORE_TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("CONTEXT_STORE_CONFIG")
        // Tests that count what index_workspace did must not race a watcher; tests of
        // watching pass `--watch`.
        .env("CONTEXT_STORE_WATCH", "false")
        // The model loads only where a test asks for it (`--model-dir`), not from the shared
        // folder under the cache folder.
        .env_remove("CONTEXT_STORE_MODEL_DIR")
        .env("XDG_CACHE_HOME", data_dir.join("no-cache"))
        .env_remove("CONTEXT_STORE_EMBEDDER")
        .env_remove("CONTEXT_STORE_EMBEDDING_URL")
        .kill_on_drop(true);
    command
}

/// Starts a server on `data_dir` and connects an rmcp client to it.
pub async fn start(data_dir: &Path) -> Client {
    start_with(data_dir, &[]).await
}

/// Like [`start`], with extra command-line arguments for `serve`.
pub async fn start_with(data_dir: &Path, args: &[&str]) -> Client {
    let mut command = server_command(data_dir);
    command.args(args);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(server_log())
        .spawn()
        .expect("spawning context-store");
    ().serve(transport)
        .await
        .expect("connecting to context-store")
}

/// Calls a tool and returns its result, whether or not the tool reported an error.
pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("tool arguments must be an object");
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    client
        .call_tool(params)
        .await
        .expect("the tool call reached the server")
}

/// Calls a tool that must succeed and returns its structured content.
pub async fn call_ok(client: &Client, tool: &str, arguments: Value) -> Value {
    let result = call(client, tool, arguments).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "{tool} failed: {}",
        text_of(&result)
    );
    result.structured_content.expect("structured content")
}

/// Calls a tool that must fail and returns its error text.
pub async fn call_err(client: &Client, tool: &str, arguments: Value) -> String {
    let result = call(client, tool, arguments).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} should have failed: {}",
        text_of(&result)
    );
    text_of(&result)
}

pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A server driven line by line; every line it writes is kept for inspection.
pub struct RawServer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every line read from stdout so far.
    pub seen: Vec<String>,
}

impl RawServer {
    pub fn spawn(data_dir: &Path) -> Self {
        Self::spawn_command(server_command(data_dir))
    }

    pub fn spawn_command(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(server_log())
            .spawn()
            .expect("spawning context-store");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("writing to the server");
        stdin.flush().await.expect("flushing to the server");
    }

    /// Sends a message; false when the server is gone.
    pub async fn try_send(&mut self, message: &Value) -> bool {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        stdin.write_all(&line).await.is_ok() && stdin.flush().await.is_ok()
    }

    /// Closes the server's stdin, as a client that leaves does.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    pub async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    /// Reads lines until the response with `id` arrives.
    pub async fn response(&mut self, id: Value) -> Value {
        self.try_response(id)
            .await
            .expect("the server closed stdout early")
    }

    /// Reads lines until the response with `id` arrives; None once stdout ends (the server
    /// died).
    pub async fn try_response(&mut self, id: Value) -> Option<Value> {
        loop {
            let line = tokio::time::timeout(READ_TIMEOUT, self.lines.next_line())
                .await
                .expect("the server answered in time")
                .ok()??;
            self.seen.push(line.clone());
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|error| panic!("stdout line is not JSON ({error}): {line}"));
            if message.get("id") == Some(&id) {
                return Some(message);
            }
        }
    }

    pub async fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.response(json!(id)).await
    }

    /// `initialize` with the given protocol version, then `notifications/initialized`.
    pub async fn initialize(&mut self, protocol_version: &str) -> Value {
        let answer = self
            .request(
                0,
                "initialize",
                json!({
                    "protocolVersion": protocol_version,
                    "capabilities": {},
                    "clientInfo": {"name": "context-store-tests", "version": "0"}
                }),
            )
            .await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        answer
    }

    pub async fn call_tool(&mut self, id: i64, name: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        )
        .await
    }

    /// Closes stdin and reads what is left of stdout until the server exits.
    pub async fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(READ_TIMEOUT, self.lines.next_line()).await
        {
            self.seen.push(line);
        }
        let status = tokio::time::timeout(READ_TIMEOUT, self.child.wait())
            .await
            .expect("the server exited after stdin closed")
            .expect("waiting for the server");
        assert!(status.success(), "server exit status {status}");
        self.seen
    }
}

/// The repository root, for files such as tools.json.
pub fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The model folder from `scripts/fetch-model.sh` (`CONTEXT_STORE_MODEL_DIR`). None skips a
/// test, except under `CI=true`, where a missing model fails it.
pub fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONTEXT_STORE_MODEL_DIR").map(PathBuf::from);
    let present = dir
        .as_ref()
        .is_some_and(|dir| dir.join("model.onnx").is_file());
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no model in CONTEXT_STORE_MODEL_DIR: .ci/run runs scripts/fetch-model.sh"
        );
        eprintln!(
            "skipping: set CONTEXT_STORE_MODEL_DIR to a folder made by scripts/fetch-model.sh"
        );
        return None;
    }
    dir
}

/// The Python standard library folder of the machine's `python3`, as the CPython corpus.
/// None skips a test, except under `CI=true`.
pub fn stdlib_dir() -> Option<PathBuf> {
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|dir| dir.join("heapq.py").is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but python3's standard library was not found"
        );
        eprintln!("skipping: no python3 standard library on this machine");
    }
    found
}

/// Polls `index_status` until nothing waits (files or passages) and the embedder is in
/// `state`, or panics after `timeout`.
pub async fn wait_for_index(client: &Client, embedder_state: &str, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = call_ok(client, "index_status", json!({})).await;
        let settled = status["pending"]["files"] == 0
            && status["embedder"]["state"] == embedder_state
            && (embedder_state != "ready"
                || (status["pending"]["chunks"] == 0 && status["pending"]["messages"] == 0));
        if settled {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index did not settle: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `path` of each hit of a `search_documents` result, in order.
pub fn hit_paths(results: &Value) -> Vec<String> {
    results["hits"]
        .as_array()
        .expect("a search result has hits")
        .iter()
        .map(|hit| hit["path"].as_str().unwrap().to_owned())
        .collect()
}
