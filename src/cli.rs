//! The command line: `serve`, `migrate`, `tools-json`, and `index` / `search` for people.

use std::{future::Future, io::Write, path::PathBuf, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    RunError,
    config::Config,
    engine::{Engine, IndexReport, IndexWorkspace, SearchDocuments, SearchMode, SearchResults},
    store::Store,
};

/// How long `search` waits for the embedding model before searching on words alone.
const MODEL_WAIT: Duration = Duration::from_secs(30);

/// context-store: a fast, reliable storage server for AI clients, spoken to over MCP on stdio.
#[derive(Debug, Parser)]
#[command(name = "context-store", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP server on stdin/stdout (what an MCP client launches). Logs go to stderr.
    Serve,
    /// Create the database if needed, apply pending migrations, and exit.
    Migrate,
    /// Print the tool definitions exactly as `tools/list` returns them (the content of tools.json).
    ToolsJson,
    /// Index a folder (a configured workspace, or with none configured, DIR becomes the
    /// workspace), with a progress bar on a terminal.
    Index {
        dir: PathBuf,
        /// Re-read every file even when unchanged.
        #[arg(long)]
        force: bool,
        /// Wait until every passage is embedded (slow on a CPU: minutes per thousand files).
        #[arg(long)]
        embed: bool,
        /// Only files matching this glob (repeatable), e.g. `**/*.py`.
        #[arg(long)]
        include: Vec<String>,
        /// Leave out files matching this glob (repeatable), e.g. `site-packages`.
        #[arg(long)]
        exclude: Vec<String>,
    },
    /// Search the index and print readable hits.
    Search {
        query: String,
        /// text, substring, semantic or hybrid (default: hybrid when the model is ready).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<SearchMode>,
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Only files whose relative path starts with this.
        #[arg(long)]
        path_prefix: Option<String>,
    },
}

fn parse_mode(text: &str) -> Result<SearchMode, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| "expected text, substring, semantic or hybrid".to_owned())
}

/// Runs the chosen command; `shutdown` ends `serve`.
pub async fn execute(cli: Cli, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let config = cli.config.resolve()?;
    match cli.command {
        Command::Serve => crate::run(config, shutdown).await,
        Command::Migrate => migrate(&config).await,
        Command::ToolsJson => {
            print!("{}", crate::mcp::tools_json());
            Ok(())
        }
        Command::Index {
            dir,
            force,
            embed,
            include,
            exclude,
        } => {
            let request = IndexWorkspace {
                path: Some(dir.to_string_lossy().into_owned()),
                force: Some(force),
                include: Some(include),
                exclude: Some(exclude),
            };
            index(config, dir, request, embed).await
        }
        Command::Search {
            query,
            mode,
            limit,
            path_prefix,
        } => {
            let request = SearchDocuments {
                query,
                limit: Some(limit),
                mode,
                workspace: None,
                path_prefix,
                file_types: None,
                group_by: None,
            };
            search(config, request).await
        }
    }
}

/// Runs `work` on an engine with its background tasks, then shuts them down in order.
async fn with_engine<T>(
    config: &Config,
    work: impl AsyncFnOnce(&Engine) -> Result<T, RunError>,
) -> Result<T, RunError> {
    let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
    let engine = crate::start_engine(config, &cancel, &tasks).await?;
    let outcome = work(&engine).await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    engine.close().await;
    outcome
}

async fn index(
    mut config: Config,
    dir: PathBuf,
    request: IndexWorkspace,
    embed: bool,
) -> Result<(), RunError> {
    if config.workspaces.is_empty() {
        config.workspaces.push(dir.clone());
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}")
            .expect("a valid template"),
    );
    let shown = bar.clone();
    let progress: crate::engine::Progress = Arc::new(move |done, total| {
        shown.set_length(total);
        shown.set_position(done);
    });
    let report = with_engine(&config, async |engine| {
        let report = engine.index_workspace(request, Some(progress)).await?;
        bar.finish_and_clear();
        if embed {
            wait_for_embeddings(engine).await?;
        }
        Ok(report)
    })
    .await?;
    print_report(&report);
    Ok(())
}

/// Waits until no passage waits for a vector (or the model cannot load), with a bar.
async fn wait_for_embeddings(engine: &Engine) -> Result<(), RunError> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} passages embedded {elapsed}")
            .expect("a valid template"),
    );
    let mut total = None;
    loop {
        let status = engine.index_status(Default::default()).await?;
        if matches!(status.embedder.state.as_str(), "disabled" | "failed") {
            bar.finish_and_clear();
            eprintln!(
                "context-store: not embedding: {}",
                status.embedder.reason.unwrap_or_default()
            );
            return Ok(());
        }
        let waiting = status.pending.chunks as u64;
        let all = *total.get_or_insert(waiting);
        bar.set_length(all);
        bar.set_position(all.saturating_sub(waiting));
        if waiting == 0 && status.embedder.state == "ready" {
            bar.finish_and_clear();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_report(report: &IndexReport) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "added {}, updated {}, removed {}, unchanged {}, {} passages in {} ms",
        report.added,
        report.updated,
        report.removed,
        report.unchanged,
        report.chunks,
        report.duration_ms
    );
    for (reason, count) in &report.skipped {
        let _ = writeln!(out, "skipped {count} ({reason})");
    }
}

async fn search(config: Config, request: SearchDocuments) -> Result<(), RunError> {
    let results = with_engine(&config, async |engine| {
        let waited = tokio::time::Instant::now();
        while engine.embedder_status().state == "loading" && waited.elapsed() < MODEL_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(engine.search_documents(request).await?)
    })
    .await?;
    print_hits(&results);
    Ok(())
}

fn print_hits(results: &SearchResults) {
    let mut out = std::io::stdout().lock();
    if let Some(reason) = &results.semantic_unavailable {
        let _ = writeln!(out, "(words only: {reason})");
    }
    if results.hits.is_empty() {
        let _ = writeln!(out, "no matches");
    }
    for (rank, hit) in results.hits.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>2}. {}:{}-{}  (score {:.4})",
            rank + 1,
            hit.path,
            hit.start_line,
            hit.end_line,
            hit.score
        );
        for line in hit
            .snippet
            .lines()
            .filter(|line| !line.trim().is_empty())
            .take(3)
        {
            let _ = writeln!(out, "      {}", line.trim_end());
        }
    }
}

async fn migrate(config: &Config) -> Result<(), RunError> {
    let data_dir = config.data_dir()?;
    let store = Store::open(&data_dir).await?;
    let version = store.schema_version().await;
    store.close().await;
    println!(
        "database {} is at schema version {}",
        data_dir.join(crate::store::DATABASE_FILE).display(),
        version?
    );
    Ok(())
}
