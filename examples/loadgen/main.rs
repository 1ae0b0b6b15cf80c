//! End-to-end load run: starts the release server over stdio as a client would, fills a
//! store, and measures each tool call from the client's side.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example loadgen -- --calls 2000
//! cargo run --release --example loadgen -- --calls 2000 --json > run.json
//! # get_context on a realistic store: 1,000 conversations of 20 messages, CPython indexed
//! cargo run --release --example loadgen -- --workspace "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
//!     --model-dir ~/.cache/context-store/models/all-MiniLM-L6-v2
//! ```
//! Reports p50, p99, max and calls per second per tool, the time from spawn to the
//! `initialize` answer (cold start), and the servers' idle and peak RSS. With `--workspace`
//! the folder's `**/*.py` (without `site-packages`) is indexed (timed: MB/s and chunks per
//! minute, then again with nothing changed), `search_documents` is measured in each mode and
//! `get_context` cached (one query again and again) and uncached (a new query each call, so
//! the query's embedding is made each time too).
//!
//! `--processes N` starts N servers on one data directory, each with its own client
//! connection (stdio serves one client per process), and spreads every measured tool's calls
//! over all of them; `--concurrency C` keeps C calls in flight on each connection.
//!
//! Every tool is measured through rmcp's client. Cached and uncached `get_context` and
//! uncached `search_documents` are also measured through a lean Rust client (`lean.rs`:
//! JSON-RPC lines, answers parsed into the fields it checks), so that the generic client's
//! own share shows.

mod lean;

use std::{
    ffi::OsString,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use futures::future::join_all;
use rmcp::{
    RoleClient, ServiceExt,
    model::CallToolRequestParams,
    service::{Peer, RunningService},
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// The server binary; default: target/release/context-store next to this example.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Measured calls per tool.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Calls in flight at once on each connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Server processes on one data directory, one client connection each.
    #[arg(long, alias = "connections", default_value_t = 1)]
    processes: usize,
    /// Conversations saved before measuring reads.
    #[arg(long, default_value_t = 1000)]
    fill_conversations: usize,
    /// Messages per filled conversation.
    #[arg(long, default_value_t = 20)]
    fill_messages: usize,
    /// Cold starts to time (median reported).
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Redis for the server's L2 cache (a dead address measures the circuit-open path).
    #[arg(long)]
    redis_url: Option<String>,
    /// A folder to index; get_context is measured over it.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// The embedding model (default: none, text ranking only).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// How long to wait for the filled messages to be embedded before measuring get_context.
    #[arg(long, default_value_t = 1800)]
    embed_wait_secs: u64,
    /// The server's log filter (its log goes to this process's stderr).
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// Topics the filled conversations are about, so that relevance has something to find.
const TOPICS: &[&str] = &[
    "parse optional arguments with argparse and keep the defaults readable",
    "sort a list of dictionaries by one key and then another",
    "read a large CSV file row by row without loading it all",
    "compress and decompress data with zlib and gzip",
    "schedule tasks with asyncio and cancel them on shutdown",
    "match dates in log lines with a regular expression",
    "serialise dataclasses to JSON and back",
    "walk a directory tree and skip hidden folders",
    "measure a function's speed with timeit",
    "share state between threads safely with a lock",
    "send an HTTP request with urllib and handle timeouts",
    "parse XML with ElementTree and find nested elements",
    "generate random passwords with the secrets module",
    "store small records in sqlite3 with transactions",
    "format numbers and dates for a report",
    "debug a recursion error in a tree traversal",
];

#[derive(Debug, Serialize)]
struct ToolFigures {
    tool: String,
    calls: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    calls_per_sec: f64,
    /// Mean time inside the servers per call (from `health` before and after), so that the
    /// client's and the transport's share shows.
    server_mean_us: f64,
}

impl ToolFigures {
    /// Summarises one measurement: its latencies, its wall time, and the servers' (calls,
    /// total µs) for the tool before and after it.
    fn new(
        label: &str,
        latencies: &mut [Duration],
        wall: Duration,
        (before, after): ((u64, u64), (u64, u64)),
    ) -> Self {
        latencies.sort();
        let at = |q: f64| micros(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
        Self {
            tool: label.to_owned(),
            calls: latencies.len(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: at(1.0),
            calls_per_sec: latencies.len() as f64 / wall.as_secs_f64(),
            server_mean_us: (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64,
        }
    }
}

/// Identifiers and fragments for substring search (all occur in CPython's standard library).
const SUBSTRINGS: &[&str] = &[
    "siftdown",
    "parse_known",
    "SequenceMatcher",
    "urlsplit",
    "iterencode",
    "get_close_matches",
    "ThreadPoolExecutor",
    "_make_key",
    "fromisoformat",
    "shutil.rmtree",
    "namedtuple",
    "getaddrinfo",
    "TemporaryDirectory",
    "dataclass_transform",
    "run_until_complete",
    "ElementTree",
];

#[derive(Debug, Serialize)]
struct IndexFigures {
    /// Files and bytes the full pass indexed.
    files: u64,
    megabytes: f64,
    chunks: u64,
    /// The full pass, as the client saw it.
    full_secs: f64,
    mb_per_sec: f64,
    chunks_per_min: f64,
    /// The same call again, with nothing changed.
    unchanged_files: u64,
    unchanged_secs: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cold_start_ms_median: f64,
    cold_start_ms_max: f64,
    /// The first server, after connecting.
    idle_rss_kib: u64,
    /// The highest of the servers.
    peak_rss_kib: u64,
    concurrency: usize,
    processes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    indexing: Option<IndexFigures>,
    tools: Vec<ToolFigures>,
}

type Client = RunningService<RoleClient, ()>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.server.clone().unwrap_or_else(default_server);
    if !binary.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            binary.display()
        );
    }
    let data_dir = tempfile::tempdir()?;
    let (cold_start_ms_median, cold_start_ms_max) = cold_starts(&binary, &data_dir, &args).await?;

    let mut clients = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..args.processes.max(1) {
        let (client, pid) = connect(&binary, &data_dir, &args).await?;
        clients.push(client);
        pids.push(pid);
    }
    let idle_rss_kib = rss_kib(pids[0], "VmRSS")?;
    let client = &clients[..];
    let mut tools = Vec::new();
    let fill = args.fill_conversations;
    let fill_messages = args.fill_messages;
    tools.push(
        measure(
            client,
            "save_conversation (fill)",
            fill,
            args.concurrency,
            move |n| {
                (
                    "save_conversation",
                    save_arguments(&format!("fill-{n}"), fill_messages),
                )
            },
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "save_conversation (10 messages)",
            args.calls,
            args.concurrency,
            |n| {
                (
                    "save_conversation",
                    save_arguments(&format!("bench-{n}"), 10),
                )
            },
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "get_conversation_history (limit 10, cached)",
            args.calls,
            args.concurrency,
            |_| ("get_conversation_history", json!({"limit": 10})),
        )
        .await?,
    );
    tools.push(
        // A cursor past every conversation reads the same first page under a new key each call.
        measure(
            client,
            "get_conversation_history (limit 10, uncached)",
            args.calls,
            args.concurrency,
            |n| {
                let cursor = format!("h1.{}.x{n}", i64::MAX);
                (
                    "get_conversation_history",
                    json!({"limit": 10, "cursor": cursor}),
                )
            },
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "get_conversation_history (default 50)",
            args.calls / 10 + 1,
            args.concurrency,
            |_| ("get_conversation_history", json!({})),
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "get_conversation (100 messages max)",
            args.calls,
            args.concurrency,
            move |n| {
                (
                    "get_conversation",
                    json!({"conversation_id": format!("fill-{}", n % fill.max(1))}),
                )
            },
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "set_preference",
            args.calls,
            args.concurrency,
            |n| {
                (
                    "set_preference",
                    json!({"key": format!("k{}", n % 50), "value": {"n": n}}),
                )
            },
        )
        .await?,
    );
    tools.push(
        measure(
            client,
            "get_preferences",
            args.calls,
            args.concurrency,
            |_| ("get_preferences", json!({})),
        )
        .await?,
    );
    let mut indexing = None;
    if args.workspace.is_some() {
        indexing = Some(index_workspace(&client[0]).await?);
        tools.extend(measure_searches(client, &args).await?);
        tools.extend(measure_context(client, &args).await?);
        tools.extend(measure_lean(&binary, data_dir.path(), &args).await?);
    }
    let mut peak_rss_kib = 0;
    for pid in &pids {
        peak_rss_kib = peak_rss_kib.max(rss_kib(*pid, "VmHWM")?);
    }
    for client in clients {
        client.cancel().await?;
    }

    let report = Report {
        cold_start_ms_median,
        cold_start_ms_max,
        idle_rss_kib,
        peak_rss_kib,
        concurrency: args.concurrency,
        processes: args.processes.max(1),
        indexing,
        tools,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn default_server() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("context-store")))
        .unwrap_or_else(|| "target/release/context-store".into())
}

async fn connect(
    binary: &PathBuf,
    data_dir: &tempfile::TempDir,
    args: &Args,
) -> anyhow::Result<(Client, u32)> {
    let command = tokio::process::Command::new(binary).configure(|command| {
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--watch", "false"])
            .args(server_arguments(args))
            .env("RUST_LOG", &args.server_log);
    });
    let transport = TokioChildProcess::new(command)?;
    let pid = transport.id().context("server pid")?;
    let client = ().serve(transport).await?;
    Ok((client, pid))
}

/// The server options every measured server gets, after `serve --data-dir DIR`.
fn server_arguments(args: &Args) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = Vec::new();
    if let Some(url) = &args.redis_url {
        arguments.extend(["--redis-url".into(), url.into()]);
    }
    if let Some(root) = &args.workspace {
        arguments.extend(["--workspace".into(), root.into()]);
    }
    match &args.model_dir {
        Some(dir) => arguments.extend(["--model-dir".into(), dir.into()]),
        None => arguments.extend(["--embedder".into(), "none".into()]),
    }
    arguments
}

/// Spawn to `initialize` answer, on an existing data directory (the usual case).
async fn cold_starts(
    binary: &PathBuf,
    data_dir: &tempfile::TempDir,
    args: &Args,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(args.starts);
    for _ in 0..args.starts.max(1) {
        let started = Instant::now();
        let (client, _) = connect(binary, data_dir, args).await?;
        times.push(started.elapsed());
        client.cancel().await?;
    }
    times.sort();
    Ok((
        millis(times[times.len() / 2]),
        millis(*times.last().unwrap()),
    ))
}

fn save_arguments(conversation_id: &str, messages: usize) -> Value {
    let messages: Vec<Value> = (0..messages)
        .map(|n| {
            json!({
                "message_id": format!("m{n}"),
                "role": if n % 2 == 0 { "user" } else { "assistant" },
                "content": message_text(conversation_id, n),
            })
        })
        .collect();
    json!({"conversation_id": conversation_id, "session_id": "loadgen", "messages": messages})
}

/// A message on one of the conversation's topics, phrased by its position.
fn message_text(conversation_id: &str, n: usize) -> String {
    let seed: usize = conversation_id.bytes().map(usize::from).sum();
    let topic = TOPICS[(seed + n / 4) % TOPICS.len()];
    match n % 4 {
        0 => format!("How do I {topic} in Python?"),
        1 => format!("To {topic}, start from the standard library; here is a short example."),
        2 => format!("That worked, thanks. What breaks if I {topic} on a huge input?"),
        _ => format!("On huge inputs, {topic} in chunks and measure memory as you go."),
    }
}

/// What `index_workspace` indexes: the `.py` files without `site-packages`.
fn index_scope() -> Value {
    json!({"include": ["**/*.py"], "exclude": ["site-packages/**"]})
}

/// A full pass over the workspace, then the same pass with nothing changed.
async fn index_workspace(client: &Client) -> anyhow::Result<IndexFigures> {
    let started = Instant::now();
    let full = call(client, "index_workspace", index_scope()).await?;
    let full_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = call(client, "index_workspace", index_scope()).await?;
    let unchanged_secs = started.elapsed().as_secs_f64();
    let number = |report: &Value, field: &str| report[field].as_u64().unwrap_or(0);
    let megabytes = number(&full, "bytes") as f64 / 1e6;
    let chunks = number(&full, "chunks");
    Ok(IndexFigures {
        files: number(&full, "added") + number(&full, "updated"),
        megabytes,
        chunks,
        full_secs,
        mb_per_sec: megabytes / full_secs,
        chunks_per_min: chunks as f64 / full_secs * 60.0,
        unchanged_files: number(&again, "unchanged"),
        unchanged_secs,
    })
}

/// `search_documents` in each mode: a repeated query (served from the cache) and new queries
/// (every call a different cache key; semantic and hybrid embed each query).
async fn measure_searches(client: &[Client], args: &Args) -> anyhow::Result<Vec<ToolFigures>> {
    // Let tantivy's background merges settle before timing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let calls = args.calls;
    let mut figures = vec![
        measure(
            client,
            "search_documents text (cached)",
            calls,
            args.concurrency,
            |_| {
                (
                    "search_documents",
                    json!({"query": "parse optional arguments", "mode": "text"}),
                )
            },
        )
        .await?,
        measure(
            client,
            "search_documents text",
            calls,
            args.concurrency,
            |n| {
                // Each measurement words its queries its own way, so that none finds the
                // query embeddings of another in the cache.
                let query = format!("{} (text case {n})", TOPICS[n % TOPICS.len()]);
                ("search_documents", json!({"query": query, "mode": "text"}))
            },
        )
        .await?,
        measure(
            client,
            "search_documents substring",
            calls,
            args.concurrency,
            |n| {
                // A new limit per round of substrings makes every call a new cache key.
                let query = SUBSTRINGS[n % SUBSTRINGS.len()];
                let limit = 1 + (n / SUBSTRINGS.len()) % 100;
                (
                    "search_documents",
                    json!({"query": query, "mode": "substring", "limit": limit}),
                )
            },
        )
        .await?,
    ];
    if args.model_dir.is_some() {
        wait_for_model(client, args).await?;
        for mode in ["semantic", "hybrid"] {
            let label = format!("search_documents {mode}");
            figures.push(
                measure(client, &label, calls / 5 + 1, args.concurrency, move |n| {
                    let query = format!("{} ({mode} case {n})", TOPICS[n % TOPICS.len()]);
                    ("search_documents", json!({"query": query, "mode": mode}))
                })
                .await?,
            );
        }
    }
    Ok(figures)
}

/// Waits for the model to load and the filled messages to be embedded (passages may still be
/// embedding in the background).
async fn wait_for_model(client: &[Client], args: &Args) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.embed_wait_secs);
    loop {
        let status = call(&client[0], "index_status", json!({})).await?;
        let ready = status["embedder"]["state"] == "ready";
        if ready && status["pending"]["messages"] == 0 {
            eprintln!(
                "model ready, messages embedded; {} passage vectors, {} passages waiting",
                status["vectors"], status["pending"]["chunks"]
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!("stopped waiting for embeddings: {}", status["pending"]);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Times get_context once the filled messages have vectors.
async fn measure_context(client: &[Client], args: &Args) -> anyhow::Result<Vec<ToolFigures>> {
    if args.model_dir.is_some() {
        wait_for_model(client, args).await?;
    }

    let calls = args.calls;
    let cached = measure(
        client,
        "get_context (cached)",
        calls,
        args.concurrency,
        |_| ("get_context", cached_context_arguments()),
    )
    .await?;
    let uncached = measure(
        client,
        "get_context (uncached, new query)",
        calls / 5 + 1,
        args.concurrency,
        |n| {
            let topic = TOPICS[n % TOPICS.len()];
            let query = format!("{topic} (context case {n})");
            (
                "get_context",
                json!({"query": query, "session_id": "loadgen"}),
            )
        },
    )
    .await?;
    Ok(vec![cached, uncached])
}

/// The one `get_context` request the cached measurements repeat.
fn cached_context_arguments() -> Value {
    json!({"query": "how do I parse optional arguments with argparse", "session_id": "loadgen"})
}

/// Pings, cached `get_context`, and new queries of `search_documents` (text, and hybrid with
/// a model) and of `get_context`, through the lean client on a server of its own (same data
/// directory and options). Its first cached call fills that server's L1; every later one
/// must say `l1`.
async fn measure_lean(
    binary: &std::path::Path,
    data_dir: &std::path::Path,
    args: &Args,
) -> anyhow::Result<Vec<ToolFigures>> {
    #[derive(serde::Deserialize)]
    struct Status {
        embedder: EmbedderState,
    }
    #[derive(serde::Deserialize)]
    struct EmbedderState {
        state: String,
    }
    let mut command = lean::server_command(binary, data_dir, &server_arguments(args));
    command.env("RUST_LOG", &args.server_log);
    let (calls, with_model) = (args.calls, args.model_dir.is_some());
    tokio::task::spawn_blocking(move || {
        let mut client = lean::LeanClient::start(command)?;
        // With a model, bundles made before it loads differ from those after: wait for it.
        if with_model {
            loop {
                let status: Status = client.call("index_status", &json!({}))?;
                if status.embedder.state == "ready" {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let started = Instant::now();
        let mut pings = client.time_pings(calls)?;
        let wall = started.elapsed();
        let mut figures = vec![
            // The floor under every call: no tool, an answer of a few bytes.
            ToolFigures::new(
                "ping (lean Rust client)",
                &mut pings,
                wall,
                ((0, 0), (0, 0)),
            ),
            lean_cached_context(&mut client, calls, with_model)?,
        ];
        let modes: &[&str] = if with_model {
            &["text", "hybrid"]
        } else {
            &["text"]
        };
        for &mode in modes {
            let searches = if mode == "text" { calls } else { calls / 5 + 1 };
            figures.push(lean_timed(
                &mut client,
                &format!("search_documents {mode} (lean Rust client)"),
                searches,
                "search_documents",
                |n| {
                    let query = format!("{} (lean {mode} case {n})", TOPICS[n % TOPICS.len()]);
                    json!({"query": query, "mode": mode})
                },
                |_: &Value| Ok(()),
            )?);
        }
        figures.push(lean_timed(
            &mut client,
            "get_context (uncached, new query, lean Rust client)",
            calls / 5 + 1,
            "get_context",
            |n| {
                let query = format!("{} (lean context case {n})", TOPICS[n % TOPICS.len()]);
                json!({"query": query, "session_id": "loadgen"})
            },
            |bundle: &LeanBundle| match bundle.cache.as_str() {
                "miss" => Ok(()),
                other => bail!("a new get_context query came from {other}"),
            },
        )?);
        Ok(figures)
    })
    .await?
}

#[derive(serde::Deserialize)]
struct LeanBundle {
    cache: String,
    total_tokens: u64,
}

/// One `get_context` request again and again; every answer after the first from L1.
fn lean_cached_context(
    client: &mut lean::LeanClient,
    calls: usize,
    with_model: bool,
) -> anyhow::Result<ToolFigures> {
    let arguments = cached_context_arguments();
    let first: LeanBundle = client.call("get_context", &arguments)?;
    if first.total_tokens == 0 {
        bail!("get_context returned an empty bundle");
    }
    // With a model, passage vectors still arriving in the background invalidate the
    // bundle now and then (its semantic ranking changed): counted, not an error.
    let mut assembled_again = 0;
    let figures = lean_timed(
        client,
        "get_context (cached, lean Rust client)",
        calls,
        "get_context",
        |_| arguments.clone(),
        |bundle: &LeanBundle| match bundle.cache.as_str() {
            "l1" => Ok(()),
            "miss" if with_model => {
                assembled_again += 1;
                Ok(())
            }
            other => bail!("a repeated get_context came from {other}, not l1"),
        },
    )?;
    if assembled_again > 0 {
        eprintln!(
            "cached get_context (lean client): {assembled_again} of {calls} calls assembled \
             the bundle again after new passage vectors invalidated it"
        );
    }
    Ok(figures)
}

/// Times `calls` calls of `tool` through the lean client, with the server's own time for
/// them from `health`.
fn lean_timed<T: serde::de::DeserializeOwned>(
    client: &mut lean::LeanClient,
    label: &str,
    calls: usize,
    tool: &str,
    arguments: impl FnMut(usize) -> Value,
    check: impl FnMut(&T) -> anyhow::Result<()>,
) -> anyhow::Result<ToolFigures> {
    #[derive(serde::Deserialize)]
    struct Health {
        tools: Vec<ToolTime>,
    }
    #[derive(serde::Deserialize)]
    struct ToolTime {
        name: String,
        calls: u64,
        total_us: u64,
    }
    let server_time = |client: &mut lean::LeanClient| -> anyhow::Result<(u64, u64)> {
        let health: Health = client.call("health", &json!({}))?;
        let found = health.tools.into_iter().find(|time| time.name == tool);
        Ok(found.map_or((0, 0), |time| (time.calls, time.total_us)))
    };
    let before = server_time(client)?;
    let started = Instant::now();
    let mut latencies = client.time(calls, tool, arguments, check)?;
    let wall = started.elapsed();
    let after = server_time(client)?;
    Ok(ToolFigures::new(
        label,
        &mut latencies,
        wall,
        (before, after),
    ))
}

/// One call that must succeed; its structured content.
async fn call(client: &Client, tool: &str, arguments: Value) -> anyhow::Result<Value> {
    let Value::Object(arguments) = arguments else {
        bail!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    let result = client.call_tool(params).await?;
    if result.is_error == Some(true) {
        bail!("{tool} failed: {:?}", result.content);
    }
    result.structured_content.context("structured content")
}

/// Runs `calls` calls spread over the connections, `concurrency` at a time on each, and
/// summarises their latencies.
async fn measure<F>(
    clients: &[Client],
    label: &str,
    calls: usize,
    concurrency: usize,
    make: F,
) -> anyhow::Result<ToolFigures>
where
    F: Fn(usize) -> (&'static str, Value) + Send + Sync + 'static,
{
    let tool = make(0).0;
    let before = server_time(clients, tool).await?;
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let peers = clients
        .iter()
        .flat_map(|client| std::iter::repeat_n(client.peer().clone(), concurrency.max(1)));
    let workers = peers.map(|peer| {
        let make = make.clone();
        let next = next.clone();
        tokio::spawn(async move { worker(peer, calls, next, make).await })
    });
    let mut latencies = Vec::with_capacity(calls);
    for result in join_all(workers).await {
        latencies.extend(result??);
    }
    let wall = started.elapsed();
    let after = server_time(clients, tool).await?;
    Ok(ToolFigures::new(
        label,
        &mut latencies,
        wall,
        (before, after),
    ))
}

/// (calls, total µs) of `tool` inside all the servers so far, from their `health`.
async fn server_time(clients: &[Client], tool: &str) -> anyhow::Result<(u64, u64)> {
    let mut sum = (0, 0);
    for client in clients {
        let health = call(client, "health", json!({})).await?;
        let figures = health["tools"]
            .as_array()
            .and_then(|tools| tools.iter().find(|figures| figures["name"] == tool));
        if let Some(figures) = figures {
            sum.0 += figures["calls"].as_u64().unwrap_or(0);
            sum.1 += figures["total_us"].as_u64().unwrap_or(0);
        }
    }
    Ok(sum)
}

async fn worker<F>(
    peer: Peer<RoleClient>,
    calls: usize,
    next: Arc<std::sync::atomic::AtomicUsize>,
    make: Arc<F>,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> (&'static str, Value),
{
    let mut latencies = Vec::new();
    loop {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n >= calls {
            return Ok(latencies);
        }
        let (tool, arguments) = make(n);
        let Value::Object(arguments) = arguments else {
            bail!("arguments must be an object")
        };
        let params = CallToolRequestParams::new(tool).with_arguments(arguments);
        let started = Instant::now();
        let result = peer.call_tool(params).await?;
        latencies.push(started.elapsed());
        if result.is_error == Some(true) {
            bail!("{tool} failed: {:?}", result.content);
        }
    }
}

/// A field of /proc/<pid>/status in KiB (Linux).
fn rss_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("a number")?
        .parse()?;
    Ok(kib)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn print_table(report: &Report) {
    println!(
        "cold start (spawn to initialize answer): median {:.1} ms, max {:.1} ms",
        report.cold_start_ms_median, report.cold_start_ms_max
    );
    println!(
        "server RSS: idle {} KiB, peak {} KiB",
        report.idle_rss_kib, report.peak_rss_kib
    );
    println!(
        "connections: {} server processes on one data directory, {} call(s) in flight on each",
        report.processes, report.concurrency
    );
    if let Some(indexing) = &report.indexing {
        println!(
            "index_workspace: {} files, {:.1} MB, {} chunks in {:.2} s ({:.1} MB/s, {:.0} chunks/min); \
             again with nothing changed: {} files unchanged in {:.3} s",
            indexing.files,
            indexing.megabytes,
            indexing.chunks,
            indexing.full_secs,
            indexing.mb_per_sec,
            indexing.chunks_per_min,
            indexing.unchanged_files,
            indexing.unchanged_secs
        );
    }
    println!(
        "{:<46} {:>7} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "tool", "calls", "p50 µs", "p99 µs", "max µs", "calls/s", "server mean µs"
    );
    for tool in &report.tools {
        println!(
            "{:<46} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>14.0}",
            tool.tool,
            tool.calls,
            tool.p50_us,
            tool.p99_us,
            tool.max_us,
            tool.calls_per_sec,
            tool.server_mean_us
        );
    }
}
