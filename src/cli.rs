//! The command line: `serve`, `migrate`, `tools-json`.

use std::future::Future;

use clap::{Parser, Subcommand};

use crate::{RunError, config::Config, store::Store};

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
