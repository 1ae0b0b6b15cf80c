//! The `context-store` binary: parse the command line, log to stderr, run.

use std::{io::Write, process::ExitCode};

use clap::Parser;
use context_store::{
    cli::{Cli, execute},
    error_chain,
    stderr_log::LossyStderr,
};
use tracing_subscriber::EnvFilter;

const DEFAULT_LOG_FILTER: &str = "context_store=info,warn";

/// Worker stacks: unoptimised builds keep nested futures whole on the stack, and 2 MiB (tokio's
/// default) has proved too little for the deepest tool calls there.
const WORKER_STACK_BYTES: usize = 8 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            say(&format!("cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    // Boxed: the command's future is large, and main's stack holds whatever block_on gets.
    let outcome = runtime.block_on(Box::pin(execute(cli, shutdown_signal())));
    // Work a cancelled call left on a blocking thread (a walk of a large tree, a tantivy
    // write) is abandoned after a grace period: whatever it staged is in SQLite and queued.
    // Dropping the runtime instead would wait for it, and a stopped server would linger.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    if let Some(log) = log {
        log.flush();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // stderr, not a log line: this is the message a person starting the binary reads.
            say(&error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// A message for the person who started the binary. A broken stderr loses it: `eprintln!`
/// would panic instead.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "context-store: {message}");
}

/// How long a stopping process waits for blocking work that nothing awaits any more.
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Logs go to stderr without colour (stdout carries only JSON-RPC), through a queue that
/// drops lines rather than block or fail the code that logs. None when no thread could be
/// started for it: the process then runs without logs.
fn init_tracing() -> Option<LossyStderr> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let writer = LossyStderr::start().ok()?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(false)
        .init();
    Some(writer)
}

/// Resolves on Ctrl-C, SIGTERM, or when the process that started this one is gone.
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
            () = parent_gone() => {
                tracing::info!("the client process is gone; shutting down");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// How often the parent is looked for.
#[cfg(unix)]
const PARENT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Resolves once this process has been re-parented, i.e. the client that launched it died.
/// A client killed while a grandchild still holds our stdin never closes the pipe; without
/// this the server would linger (peer servers leave such orphans of 1 GB each).
#[cfg(unix)]
async fn parent_gone() {
    let parent = std::os::unix::process::parent_id();
    if parent == 1 {
        // Started by init or a supervisor as PID 1: nothing to watch.
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(PARENT_POLL).await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
