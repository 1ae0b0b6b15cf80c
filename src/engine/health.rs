//! `health`: what each part of this process is doing, with per-tool call figures.
//!
//! Every part is reported even when another fails: a damaged database still gets a report
//! that says so, with Redis, the index and the embedder beside it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EmbedderStatus, Engine, Pending, WriterStatus};
use crate::{
    cache::CacheStats,
    metrics::ToolFigures,
    store::{Checkpoint, IntegrityCheck},
};

/// Arguments of `health` (none).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthRequest {}

/// Result of `health`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok`; `degraded` when a part is unavailable (Redis down, search index, its writer or
    /// embedding model failed) and the rest serves; `damaged` when writes are refused: the database
    /// file is damaged, or is no longer the file at its path.
    pub status: String,
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub database: DatabaseHealth,
    pub redis: RedisHealth,
    pub index: IndexHealth,
    pub embedder: EmbedderStatus,
    pub cache: CacheStats,
    /// Calls of each tool since this process started.
    pub tools: Vec<ToolFigures>,
    /// The tools this server offers (`--tools`, `--read-only`); absent outside `serve`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served: Option<ServedTools>,
}

/// The tools a server offers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServedTools {
    /// Names of the tools listed and callable.
    pub tools: Vec<String>,
    /// Only tools that read are served.
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseHealth {
    pub path: String,
    /// A query reached the file.
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// The newest schema this binary knows.
    pub known_schema_version: i64,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<Checkpoint>,
    /// The last full integrity check (run in the background after start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityCheck>,
    /// Damage found, with how to recover; writes are refused while it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// Why writes are refused on an undamaged file: it was deleted, moved or replaced at
    /// its path while this process had it open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_refused: Option<String>,
    /// Why a query failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RedisHealth {
    pub configured: bool,
    /// `up`, `down` or `not configured`.
    pub state: String,
    /// closed (in use), open (skipped, probing) or half_open; absent without Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<String>,
    /// Round trip of a PING just now, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IndexHealth {
    pub documents: i64,
    pub chunks: i64,
    /// Segments of the full-text index (0 when it is unavailable).
    pub segments: usize,
    pub pending: Pending,
    pub writer: WriterStatus,
    /// Why full-text search, or the counts, are unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Why the index writer failed, until a commit succeeds again (indexing is degraded;
    /// searches answer from the last commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_failed: Option<String>,
    /// Configured workspace roots that do not exist yet; each is used once it appears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roots: Vec<String>,
}

impl Engine {
    pub async fn health(&self, _request: HealthRequest) -> Health {
        // The cache figures are read after the Redis probe, so that both name the circuit
        // state the probe left.
        let redis_and_cache = async {
            let redis = self.redis_health().await;
            (redis, self.cache().stats().await)
        };
        let (database, (redis, cache), index) =
            tokio::join!(self.database_health(), redis_and_cache, self.index_health());
        let embedder = self.embedder_status();
        let status = overall_status(&database, &redis, &index, &embedder);
        Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.inner.started.elapsed().as_secs(),
            database,
            redis,
            index,
            embedder,
            cache,
            tools: self.inner.calls.snapshot(),
            served: None,
        }
    }

    /// `health` in Prometheus text format.
    pub async fn prometheus_metrics(&self) -> String {
        super::prometheus::render(&self.health(HealthRequest::default()).await)
    }

    /// Records one tool call for `health`.
    pub fn record_call(&self, tool: &str, elapsed: Duration, failed: bool) {
        self.inner.calls.record(tool, elapsed, failed);
    }

    async fn database_health(&self) -> DatabaseHealth {
        let store = self.store();
        let version = store.schema_version().await;
        let (file_bytes, wal_bytes) = store.file_sizes();
        let damage = store.damage();
        DatabaseHealth {
            path: store.path().display().to_string(),
            reachable: version.is_ok(),
            schema_version: version.as_ref().ok().copied(),
            known_schema_version: crate::store::latest_known_version(),
            file_bytes,
            wal_bytes,
            last_checkpoint: store.last_checkpoint(),
            integrity: store.last_integrity_check(),
            damaged: damage.map(|damage| {
                crate::store::StoreError::Damaged {
                    detail: damage.detail,
                }
                .to_string()
            }),
            writes_refused: store.detached().map(|error| error.to_string()),
            error: version.err().map(|error| crate::error_chain(&error)),
        }
    }

    async fn redis_health(&self) -> RedisHealth {
        match self.cache().probe_remote().await {
            None => RedisHealth {
                configured: false,
                state: "not configured".to_owned(),
                circuit: None,
                round_trip_us: None,
            },
            Some((round_trip, circuit)) => RedisHealth {
                configured: true,
                state: if round_trip.is_some() { "up" } else { "down" }.to_owned(),
                circuit: Some(circuit.to_owned()),
                round_trip_us: round_trip.map(|took| took.as_micros() as u64),
            },
        }
    }

    async fn index_health(&self) -> IndexHealth {
        let segments = self.text_index().map_or(0, |index| index.segments());
        match self.index_status(Default::default()).await {
            Ok(status) => IndexHealth {
                documents: status.documents,
                chunks: status.chunks,
                segments,
                pending: status.pending,
                writer: status.writer,
                unavailable: status.index_unavailable,
                writer_failed: status.writer_failed,
                missing_roots: status.missing_roots,
            },
            Err(error) => IndexHealth {
                documents: 0,
                chunks: 0,
                segments,
                pending: Pending::default(),
                writer: WriterStatus {
                    this_process: false,
                    pid: None,
                },
                unavailable: Some(format!("counts unavailable: {error}")),
                writer_failed: self
                    .text_index()
                    .ok()
                    .and_then(|index| index.writer_fault()),
                missing_roots: self.missing_roots(),
            },
        }
    }
}

fn overall_status(
    database: &DatabaseHealth,
    redis: &RedisHealth,
    index: &IndexHealth,
    embedder: &EmbedderStatus,
) -> &'static str {
    if database.damaged.is_some() || database.writes_refused.is_some() {
        "damaged"
    } else if !database.reachable
        || redis.state == "down"
        || index.unavailable.is_some()
        || index.writer_failed.is_some()
        || !index.missing_roots.is_empty()
        || embedder.state == "failed"
    {
        "degraded"
    } else {
        "ok"
    }
}
