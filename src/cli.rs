//! The command line: `serve`, `migrate`, `tools-json`, and `index` / `search` for people.

use std::{
    future::Future,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    RunError,
    config::Config,
    engine::{
        CreateBackup, Engine, Health, IndexReport, IndexWorkspace, SearchDocuments, SearchMode,
        SearchResults,
    },
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
    /// Check the data directory: database (with a full integrity check), Redis, index,
    /// embedding model. Exits with 1 when the database is damaged.
    Health {
        /// Print the report as JSON, as the `health` tool returns it.
        #[arg(long)]
        json: bool,
    },
    /// Write a backup of the database now (safe while servers run).
    Backup,
    /// List the complete backups, newest first.
    Backups,
    /// Check a backup (its files against the manifest, then the database's integrity and
    /// counts), or with no BACKUP the live database.
    Verify { backup: Option<PathBuf> },
    /// Replace the database and search index with a backup's. Refuses while a server uses the
    /// data directory (unless --force); the current ones are moved aside, never deleted.
    Restore {
        backup: PathBuf,
        /// Restore even though a server holds the data directory.
        #[arg(long)]
        force: bool,
    },
    /// Import conversations from ChatGPT or Claude data exports (`conversations.json`) or
    /// from this tool's own JSONL export. Importing a file again stores nothing twice.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        format: crate::transfer::SourceFormat,
        /// Owner of what is imported (default: the file's owner for JSONL, else --user-id).
        #[arg(long = "user")]
        user: Option<String>,
        /// Read and check everything, save nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export a user's conversations and preferences as JSONL (to --out or standard output)
    /// or as Markdown files (one per conversation, into the --out folder).
    Export {
        /// Whose (default: --user-id).
        #[arg(long = "user")]
        user: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: crate::transfer::ExportFormat,
        #[arg(long)]
        out: Option<PathBuf>,
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
        Command::Health { json } => health(&config, json).await,
        Command::Backup => backup_now(&config).await,
        Command::Backups => list_backups(&config),
        Command::Verify { backup } => verify(&config, backup).await,
        Command::Restore { backup, force } => {
            let backup = backup_by_name(&config, &backup)?;
            restore(&config, &backup, force).await
        }
        Command::Import {
            files,
            format,
            user,
            dry_run,
        } => {
            let options = crate::transfer::ImportOptions {
                files,
                format,
                user_id: user,
                dry_run,
            };
            import(&config, &options).await
        }
        Command::Export { user, format, out } => export(&config, user, format, out).await,
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
            let dir = from_current_directory(&dir)?;
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

/// `dir` as an absolute path: a relative one is meant from where the command was typed, not
/// from a workspace root.
fn from_current_directory(dir: &Path) -> Result<PathBuf, RunError> {
    std::path::absolute(dir).map_err(|error| {
        RunError::Refused(format!("DIR: cannot resolve {}: {error}", dir.display()))
    })
}

/// The data directory, once it holds a database: commands that only read never create one.
fn existing_database(config: &Config) -> Result<PathBuf, RunError> {
    let data_dir = config.data_dir()?;
    if data_dir.join(crate::store::DATABASE_FILE).exists() {
        return Ok(data_dir);
    }
    Err(RunError::Refused(format!(
        "no database in {}: check --data-dir (`context-store migrate` or `serve` creates one)",
        data_dir.display()
    )))
}

/// A backup named as given, or else by its folder's name in the backup directory, as
/// `backups` lists it.
fn backup_by_name(config: &Config, given: &Path) -> Result<PathBuf, RunError> {
    if given.exists() {
        return Ok(given.to_owned());
    }
    let in_backup_dir = config.backups(&config.data_dir()?).dir.join(given);
    Ok(if in_backup_dir.exists() {
        in_backup_dir
    } else {
        given.to_owned()
    })
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

async fn import(config: &Config, options: &crate::transfer::ImportOptions) -> Result<(), RunError> {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} conversations {per_sec} {elapsed}")
            .expect("a valid template"),
    );
    let shown = bar.clone();
    // The servers embed imported messages in the background; loading the model here would
    // only cost the import its memory and a core.
    let mut config = config.clone();
    config.embedder = Some(crate::config::EmbedderKind::None);
    let summary = with_engine(&config, async |engine| {
        Ok(crate::transfer::import(engine, options, &|done| shown.set_position(done)).await)
    })
    .await?;
    bar.finish_and_clear();
    for refusal in &summary.refused {
        eprintln!(
            "context-store: not imported: {}: {}",
            refusal.position, refusal.reason
        );
    }
    let verb = if options.dry_run {
        "would store"
    } else {
        "stored"
    };
    println!(
        "{} conversations: {verb} {} messages, skipped {} already stored, {} empty messages, \
         {} empty conversations, {} preferences, {} refused",
        summary.conversations,
        summary.messages_stored,
        summary.messages_skipped,
        summary.empty_messages,
        summary.empty_conversations,
        summary.preferences,
        summary.refused.len()
    );
    if summary.succeeded() {
        Ok(())
    } else {
        Err(RunError::Refused(format!(
            "{} entries were not imported (listed above)",
            summary.refused.len()
        )))
    }
}

async fn export(
    config: &Config,
    user: Option<String>,
    format: crate::transfer::ExportFormat,
    out: Option<PathBuf>,
) -> Result<(), RunError> {
    existing_database(config)?;
    let summary = with_engine(config, async |engine| {
        Ok(crate::transfer::export(engine, user.as_deref(), format, out.as_deref()).await?)
    })
    .await?;
    eprintln!(
        "context-store: exported {} conversations, {} messages, {} preferences",
        summary.conversations, summary.messages, summary.preferences
    );
    Ok(())
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
    let (report, queued) = with_engine(&config, async |engine| {
        let report = engine.index_workspace(request, Some(progress)).await?;
        bar.finish_and_clear();
        // The pass indexes what it changed; documents queued before it (by a process that
        // left, or again after an index rebuild) would wait for the next server otherwise.
        let queued = engine.index_queued().await?;
        if embed {
            wait_for_embeddings(engine).await?;
        }
        Ok((report, queued))
    })
    .await?;
    print_report(&report);
    if queued > 0 {
        println!("indexed {queued} documents that were queued before this pass");
    }
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
        "added {}, updated {}, removed {}, unchanged {}, {} passages from {:.1} MB in {} ms",
        report.added,
        report.updated,
        report.removed,
        report.unchanged,
        report.chunks,
        report.bytes as f64 / 1e6,
        report.duration_ms
    );
    for (reason, count) in &report.skipped {
        let _ = writeln!(out, "skipped {count} ({reason})");
    }
}

async fn search(config: Config, request: SearchDocuments) -> Result<(), RunError> {
    existing_database(&config)?;
    let query = request.query.clone();
    let results = with_engine(&config, async |engine| {
        let waited = tokio::time::Instant::now();
        while engine.embedder_status().state == "loading" && waited.elapsed() < MODEL_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A search of an index with documents still queued would miss them.
        engine.index_queued().await?;
        Ok(engine.search_documents(request).await?)
    })
    .await?;
    print_hits(&results, &query);
    Ok(())
}

/// Lines of a hit shown under it.
const SHOWN_LINES: usize = 3;

fn print_hits(results: &SearchResults, query: &str) {
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
        let lines: Vec<&str> = hit.snippet.lines().collect();
        let first = first_matching_line(&lines, query);
        let shown = lines
            .iter()
            .enumerate()
            .skip(first)
            .filter(|(_, line)| !line.trim().is_empty())
            .take(SHOWN_LINES);
        for (index, line) in shown {
            let number = hit.start_line as usize + index;
            let _ = writeln!(out, "  {number:>6}  {}", line.trim_end());
        }
    }
}

/// The first line that holds the query or, failing that, one of its words (case-insensitive),
/// so that a hit shows where it matched; 0 when none does (a match by meaning).
fn first_matching_line(lines: &[&str], query: &str) -> usize {
    let query = query.trim().to_lowercase();
    let words: Vec<&str> = query
        .split(|character: char| !character.is_alphanumeric() && character != '_')
        .filter(|word| word.chars().count() >= 3)
        .collect();
    let lowered: Vec<String> = lines.iter().map(|line| line.to_lowercase()).collect();
    lowered
        .iter()
        .position(|line| line.contains(&query))
        .or_else(|| {
            lowered
                .iter()
                .position(|line| words.iter().any(|word| line.contains(word)))
        })
        .unwrap_or(0)
}

async fn health(config: &Config, json: bool) -> Result<(), RunError> {
    existing_database(config)?;
    let report = with_engine(config, async |engine| {
        let waited = tokio::time::Instant::now();
        while engine.embedder_status().state == "loading" && waited.elapsed() < MODEL_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(error) = engine.check_integrity_now().await {
            tracing::warn!(%error, "the integrity check could not run");
        }
        Ok(engine.health(Default::default()).await)
    })
    .await?;
    if json {
        let text = serde_json::to_string_pretty(&report).expect("health always serialises");
        println!("{text}");
    } else {
        print_health(&report);
    }
    match &report.database.damaged {
        Some(damage) => Err(RunError::Refused(damage.clone())),
        None => Ok(()),
    }
}

fn print_health(report: &Health) {
    let database = &report.database;
    let integrity = database
        .integrity
        .as_ref()
        .map_or("not checked", |check| check.result.as_str());
    let schema = database
        .schema_version
        .map_or_else(|| "unreadable".to_owned(), |version| version.to_string());
    println!("status: {}", report.status);
    println!(
        "database: {} ({:.1} MB, WAL {:.1} MB), schema {schema}, integrity {integrity}",
        database.path,
        database.file_bytes as f64 / 1e6,
        database.wal_bytes as f64 / 1e6,
    );
    if let Some(error) = &database.error {
        println!("  error: {error}");
    }
    let redis = &report.redis;
    match redis.round_trip_us {
        Some(micros) => println!("redis: {} ({micros} µs round trip)", redis.state),
        None => println!("redis: {}", redis.state),
    }
    let index = &report.index;
    println!(
        "index: {} documents, {} passages, {} segments; waiting: {} files, {} passages, {} messages",
        index.documents,
        index.chunks,
        index.segments,
        index.pending.files,
        index.pending.chunks,
        index.pending.messages
    );
    if let Some(reason) = &index.unavailable {
        println!("  unavailable: {reason}");
    }
    let embedder = &report.embedder;
    let detail = embedder
        .id
        .as_deref()
        .or(embedder.reason.as_deref())
        .unwrap_or("");
    println!("embedder: {} {detail}", embedder.state);
}

async fn backup_now(config: &Config) -> Result<(), RunError> {
    let created = with_engine(config, async |engine| {
        Ok(engine.create_backup(CreateBackup::default()).await?)
    })
    .await?;
    let counts = &created.manifest.counts;
    println!(
        "backup written to {} ({} conversations, {} messages, {} documents)",
        created.path, counts.conversations, counts.messages, counts.documents
    );
    for old in &created.rotated_out {
        println!("deleted the older backup {old}");
    }
    Ok(())
}

fn list_backups(config: &Config) -> Result<(), RunError> {
    let settings = config.backups(&config.data_dir()?);
    let listed = crate::backup::list(&settings.dir)?;
    // Backups without a database are what a restore needs, so only an empty listing refuses.
    if listed.is_empty() {
        existing_database(config)?;
    }
    if listed.is_empty() {
        println!("no backups in {}", settings.dir.display());
    }
    for backup in listed {
        let manifest = &backup.manifest;
        println!(
            "{}  {}  schema {}  {} conversations, {} messages, {} documents",
            backup.path.display(),
            manifest
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            manifest.schema_version,
            manifest.counts.conversations,
            manifest.counts.messages,
            manifest.counts.documents,
        );
    }
    Ok(())
}

async fn verify(config: &Config, backup: Option<PathBuf>) -> Result<(), RunError> {
    let Some(backup) = backup else {
        let data_dir = existing_database(config)?;
        let store = Store::open(&data_dir).await?;
        let report = store.inspect().await;
        store.close().await;
        let report = report?;
        if !report.is_ok() {
            return Err(RunError::Refused(format!(
                "the live database is damaged: {}; restore the newest good backup \
                 (`context-store backups`, then `context-store restore PATH`)",
                report.integrity
            )));
        }
        println!(
            "the live database is intact: schema {}, {} conversations, {} messages, {} documents",
            report.schema_version, report.conversations, report.messages, report.documents
        );
        return Ok(());
    };
    let backup = backup_by_name(config, &backup)?;
    let manifest = verified_backup(&backup).await?;
    println!(
        "{} is good: checksums match, integrity ok, {} conversations, {} messages, {} documents",
        backup.display(),
        manifest.counts.conversations,
        manifest.counts.messages,
        manifest.counts.documents
    );
    Ok(())
}

/// The backup's manifest once its files match it and its database is intact and holds the
/// counts the manifest states.
async fn verified_backup(backup: &std::path::Path) -> Result<crate::backup::Manifest, RunError> {
    let manifest = crate::backup::verify_files(backup)?;
    let report = crate::store::inspect_file(&backup.join(crate::store::DATABASE_FILE)).await?;
    let counts = &manifest.counts;
    let stated = (counts.conversations, counts.messages, counts.documents);
    let found = (report.conversations, report.messages, report.documents);
    if !report.is_ok() || stated != found || report.schema_version != manifest.schema_version {
        return Err(RunError::Refused(format!(
            "{} does not hold what its manifest states (integrity: {}; counts {found:?}, \
             manifest {stated:?})",
            backup.display(),
            report.integrity
        )));
    }
    Ok(manifest)
}

async fn restore(config: &Config, backup: &std::path::Path, force: bool) -> Result<(), RunError> {
    let manifest = verified_backup(backup).await?;
    let data_dir = config.data_dir()?;
    let lock = crate::backup::ServeLock::try_exclusive(&data_dir)?;
    if lock.is_none() && !force {
        return Err(RunError::Refused(format!(
            "a context-store server is using {}; stop it first (or pass --force)",
            data_dir.display()
        )));
    }
    let aside = crate::backup::restore_into(backup, &manifest, &data_dir)?;
    let counts = &manifest.counts;
    println!(
        "restored {} into {}: {} conversations, {} messages, {} documents (schema {})",
        backup.display(),
        data_dir.display(),
        counts.conversations,
        counts.messages,
        counts.documents,
        manifest.schema_version
    );
    match aside {
        Some(aside) => println!(
            "the previous database and index are kept in {}",
            aside.display()
        ),
        None => println!("there was no previous database"),
    }
    if manifest.has_index() {
        println!(
            "the search index was restored too; documents that changed after its last commit \
             are indexed again when a server starts"
        );
    } else {
        println!("the search index is rebuilt from the restored documents when a server starts");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::first_matching_line;

    #[test]
    fn a_hit_shows_the_line_that_matched() {
        let lines = [
            "def heappush(heap, item):",
            "    _siftdown(heap, 0)",
            "    return",
        ];
        assert_eq!(first_matching_line(&lines, "SIFTDOWN("), 1);
        // No line holds the whole query: the first line with one of its words.
        assert_eq!(first_matching_line(&lines, "how to return early"), 2);
        // A hit by meaning alone starts at its first line.
        assert_eq!(first_matching_line(&lines, "priority queue"), 0);
    }
}
