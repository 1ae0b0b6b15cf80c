//! The `context-store` binary: parse the command line, log to stderr, run.

use std::process::ExitCode;

use clap::Parser;
use context_store::{
    cli::{Cli, execute},
    error_chain,
};
use tracing_subscriber::EnvFilter;

const DEFAULT_LOG_FILTER: &str = "context_store=info,warn";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match execute(cli, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // stderr, not a log line: this is the message a person starting the binary reads.
            eprintln!("context-store: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr without colour: stdout carries only JSON-RPC.
fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
