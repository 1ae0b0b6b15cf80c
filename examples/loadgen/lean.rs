//! A lean Rust client: JSON-RPC lines over the server's pipes, each answer parsed into only
//! the fields it checks (serde still reads and validates the whole line). It shows what a
//! call costs the server and the transport, without the generic client's own share (rmcp
//! buffers every message through serde's `Content` before typing it).

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub struct LeanClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: Vec<u8>,
}

#[derive(Deserialize)]
struct Answer<T> {
    id: u64,
    result: Option<T>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ToolResult<T> {
    #[serde(rename = "structuredContent")]
    structured: Option<T>,
    #[serde(rename = "isError", default)]
    is_error: bool,
}

impl LeanClient {
    /// Starts `command` (a configured server) and completes the MCP handshake.
    pub fn start(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server for the lean client")?;
        let stdin = child.stdin.take().context("server stdin")?;
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().context("stdout")?);
        let mut client = Self {
            child,
            stdin,
            stdout,
            next_id: 0,
            line: Vec::with_capacity(1 << 16),
        };
        let initialize = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "loadgen-lean", "version": "1"},
        });
        client.request::<Value>("initialize", &initialize)?;
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(client)
    }

    /// Calls `tool` and returns its structured content typed as `T` (a tool error fails).
    pub fn call<T: DeserializeOwned>(
        &mut self,
        tool: &str,
        arguments: &Value,
    ) -> anyhow::Result<T> {
        let params = json!({"name": tool, "arguments": arguments});
        let result: ToolResult<T> = self.request("tools/call", &params)?;
        if result.is_error {
            bail!("{tool} answered with a tool error");
        }
        result.structured.context("structured content")
    }

    /// Times `calls` pings: the round trip through both processes' pipes with no work.
    pub fn time_pings(&mut self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            self.request::<Value>("ping", &json!({}))?;
            latencies.push(started.elapsed());
        }
        Ok(latencies)
    }

    /// Times `calls` calls of `tool`, the n-th with `arguments(n)`; `check` sees each answer.
    pub fn time<T: DeserializeOwned>(
        &mut self,
        calls: usize,
        tool: &str,
        mut arguments: impl FnMut(usize) -> Value,
        mut check: impl FnMut(&T) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(calls);
        for n in 0..calls {
            let arguments = arguments(n);
            let started = Instant::now();
            let answer: T = self.call(tool, &arguments)?;
            latencies.push(started.elapsed());
            check(&answer)?;
        }
        Ok(latencies)
    }

    fn request<T: DeserializeOwned>(&mut self, method: &str, params: &Value) -> anyhow::Result<T> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            self.line.clear();
            if self.stdout.read_until(b'\n', &mut self.line)? == 0 {
                bail!("the server closed its output");
            }
            let answer = match serde_json::from_slice::<Answer<T>>(&self.line) {
                Ok(answer) => answer,
                // Notifications (logging, progress) carry no id; skip them.
                Err(_) if !has_id(&self.line) => continue,
                Err(error) => bail!("the answer to {method} does not parse: {error}"),
            };
            if answer.id != id {
                bail!("answer {} to request {id}", answer.id);
            }
            if let Some(error) = answer.error {
                bail!("{method} failed: {error}");
            }
            return answer.result.context("a result");
        }
    }

    fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(message)?;
        bytes.push(b'\n');
        self.stdin.write_all(&bytes)?;
        self.stdin.flush()?;
        Ok(())
    }
}

fn has_id(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    serde_json::from_slice::<Id>(line).is_ok_and(|message| message.id.is_some())
}

impl Drop for LeanClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server command the lean client runs: `serve` on `data_dir` with `extra` arguments.
pub fn server_command(binary: &Path, data_dir: &Path, extra: &[std::ffi::OsString]) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--watch", "false"])
        .args(extra)
        .stderr(Stdio::inherit());
    command
}
