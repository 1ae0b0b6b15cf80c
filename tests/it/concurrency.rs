//! Several server processes on one data directory.

use futures::future::join_all;
use serde_json::json;
use sqlx::{Connection, SqliteConnection};

use crate::support::{RawServer, call, data_dir, start, text_of};

const PROCESSES: usize = 4;
/// Saves per process; `scripts/chaos.sh` makes it 1,000.
fn saves_per_process() -> usize {
    env_number("CONTEXT_STORE_SAVES_PER_PROCESS", 250)
}

/// Rounds of simultaneous starts; `scripts/chaos.sh` makes it 50.
fn start_rounds() -> usize {
    env_number("CONTEXT_STORE_START_ROUNDS", 1)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
/// Calls each client keeps in flight, so that the processes really overlap.
const IN_FLIGHT: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_saving_at_once_keep_every_conversation() {
    let dir = data_dir();
    let clients = join_all((0..PROCESSES).map(|_| start(dir.path()))).await;
    let saves = saves_per_process();
    let runs = clients.iter().enumerate().map(|(process, client)| async move {
        let mut failures = Vec::new();
        for chunk in (0..saves).collect::<Vec<_>>().chunks(IN_FLIGHT) {
            let calls = chunk.iter().map(|n| {
                let arguments = json!({
                    "conversation_id": format!("p{process}-c{n}"),
                    "messages": [
                        {"message_id": "q", "role": "user", "content": format!("question {n} from {process}")},
                        {"message_id": "a", "role": "assistant", "content": "answer"}
                    ]
                });
                call(client, "save_conversation", arguments)
            });
            for result in join_all(calls).await {
                if result.is_error == Some(true) {
                    failures.push(text_of(&result));
                }
            }
        }
        failures
    });
    let failures: Vec<String> = join_all(runs).await.into_iter().flatten().collect();
    let failures_seen = failures.len();
    assert!(
        failures.is_empty(),
        "{} saves failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    for client in clients {
        client.cancel().await.unwrap();
    }

    let url = format!("sqlite://{}", dir.path().join("context-store.db").display());
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let conversations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut db)
        .await
        .unwrap();
    eprintln!(
        "{PROCESSES} processes x {saves} saves: {conversations} conversations, {} failures",
        failures_seen
    );
    assert_eq!(conversations, (PROCESSES * saves) as i64);
    assert_eq!(messages, 2 * conversations);
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_processes_started_at_once_on_an_empty_directory_all_answer() {
    let rounds = start_rounds();
    for _ in 0..rounds {
        six_start_at_once().await;
    }
    eprintln!("6 processes started at once, {rounds} rounds: all answered");
}

async fn six_start_at_once() {
    let dir = data_dir();
    let fresh = dir.path().join("not-yet-created");
    let mut servers: Vec<RawServer> = (0..6).map(|_| RawServer::spawn(&fresh)).collect();
    let answers = join_all(
        servers
            .iter_mut()
            .map(|server| server.initialize("2025-11-25")),
    )
    .await;
    for answer in &answers {
        assert_eq!(
            answer["result"]["serverInfo"]["name"], "context-store",
            "{answer}"
        );
    }
    // Each can also write right away.
    let writes = join_all(servers.iter_mut().enumerate().map(|(n, server)| {
        server.call_tool(
            1,
            "set_preference",
            json!({"key": format!("k{n}"), "value": n}),
        )
    }))
    .await;
    for write in writes {
        assert_eq!(write["result"]["isError"], false, "{write}");
    }
    // Each also opened the search index that they all raced to create.
    let searches = join_all(
        servers
            .iter_mut()
            .map(|server| server.call_tool(2, "search_documents", json!({"query": "anything"}))),
    )
    .await;
    for search in searches {
        assert_eq!(search["result"]["isError"], false, "{search}");
    }
    for server in servers {
        server.finish().await;
    }
}
