//! Counters kept by the cache, read by the `health` report.

use std::sync::atomic::{AtomicU64, Ordering};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct Metrics {
    pub l1_hits: AtomicU64,
    pub l1_misses: AtomicU64,
    pub l2_hits: AtomicU64,
    pub l2_misses: AtomicU64,
    pub l2_errors: AtomicU64,
    pub l2_timeouts: AtomicU64,
    pub l2_skipped: AtomicU64,
    pub l2_rejected: AtomicU64,
    pub l3_loads: AtomicU64,
    pub l1_evictions: AtomicU64,
    pub invalidations: AtomicU64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the cache's counters and sizes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CacheStats {
    pub l1: TierStats,
    /// Absent when no Redis is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<RemoteStats>,
    /// Reads that went to SQLite because no cache tier had the entry.
    pub l3_loads: u64,
    /// Invalidations applied by this process (its own and those of other processes).
    pub invalidations: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries removed for space or age.
    pub evictions: u64,
    pub entries: u64,
    /// Weighted size of the entries (bytes, each entry counted at least at the per-entry floor).
    pub weighted_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RemoteStats {
    pub hits: u64,
    pub misses: u64,
    /// Failed Redis operations (each counted as a miss by the caller).
    pub errors: u64,
    pub timeouts: u64,
    /// Operations skipped because the circuit breaker was open.
    pub skipped: u64,
    /// Values Redis returned that were refused (no valid seal for their key, over the size
    /// cap, undecodable, or naming another user); each such read went on to SQLite.
    #[serde(default)]
    pub rejected: u64,
    /// `closed` (Redis in use), `open` (skipped, probing in the background) or `half_open`.
    pub circuit: String,
}

pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
