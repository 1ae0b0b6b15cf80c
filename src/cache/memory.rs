//! L1: an in-process moka cache, bounded in bytes and in entries, with a TTL per entry.
//!
//! moka bounds one weighted capacity; weighing each entry at least `max_bytes / max_entries`
//! bounds both: the bytes by the capacity, the entries by the floor. Expiry is checked
//! against tokio's clock on every read (so tests can move time), and moka's own expiry
//! frees the memory behind it.

use std::{
    any::Any,
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use moka::{Expiry, future::Cache, notification::RemovalCause};
use rustc_hash::FxBuildHasher;
use tokio::time::Instant;

use super::{key::CacheKey, metrics::Metrics};

/// A value in L1 with what it depends on.
pub struct Entry {
    pub value: Arc<dyn Any + Send + Sync>,
    pub scopes: Box<[String]>,
    pub expires_at: Instant,
    ttl: Duration,
    weight: u32,
}

impl Entry {
    pub fn new(
        value: Arc<dyn Any + Send + Sync>,
        bytes: usize,
        scopes: Box<[String]>,
        ttl: Duration,
    ) -> Self {
        Self {
            value,
            scopes,
            expires_at: Instant::now() + ttl,
            ttl,
            weight: u32::try_from(bytes).unwrap_or(u32::MAX),
        }
    }

    fn is_live(&self) -> bool {
        Instant::now() < self.expires_at
    }
}

struct PerEntryTtl;

impl Expiry<CacheKey, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Keys by scope, so that dropping a scope costs its own entries, not a scan of the cache.
#[derive(Default)]
struct ScopeIndex {
    keys: Mutex<HashMap<String, HashSet<CacheKey>>>,
}

impl ScopeIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<CacheKey>>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(&self, key: &CacheKey, scopes: &[String]) {
        let mut keys = self.lock();
        for scope in scopes {
            keys.entry(scope.clone()).or_default().insert(*key);
        }
    }

    fn remove(&self, key: &CacheKey, scopes: &[String]) {
        let mut keys = self.lock();
        for scope in scopes {
            if let Some(listed) = keys.get_mut(scope) {
                listed.remove(key);
                if listed.is_empty() {
                    keys.remove(scope);
                }
            }
        }
    }

    fn take(&self, scope: &str) -> HashSet<CacheKey> {
        self.lock().remove(scope).unwrap_or_default()
    }
}

pub struct MemoryTier {
    cache: Cache<CacheKey, Arc<Entry>, FxBuildHasher>,
    index: Arc<ScopeIndex>,
}

impl MemoryTier {
    pub fn new(max_bytes: u64, max_entries: u64, metrics: Arc<Metrics>) -> Self {
        let floor = u32::try_from(max_bytes / max_entries.max(1))
            .unwrap_or(u32::MAX)
            .max(1);
        let index = Arc::new(ScopeIndex::default());
        let unindex = index.clone();
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |key: &CacheKey, entry: &Arc<Entry>| {
                (entry.weight.saturating_add(key.as_str().len() as u32)).max(floor)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |key: Arc<CacheKey>, entry: Arc<Entry>, cause| {
                // A replaced entry keeps its key; every other removal leaves the index.
                if cause != RemovalCause::Replaced {
                    unindex.remove(&key, &entry.scopes);
                }
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    Metrics::count(&metrics.l1_evictions);
                }
            })
            // Keys are SHA-256 digests, uniform and not chosen by a client: a fast hash is safe.
            .build_with_hasher(FxBuildHasher);
        Self { cache, index }
    }

    /// A live entry, if there is one; an expired one is removed.
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key).await?;
        if entry.is_live() {
            return Some(entry);
        }
        self.cache.invalidate(key).await;
        None
    }

    /// The entry for `key`, loading it with `init` on a miss; concurrent misses on one key
    /// run `init` once and share its result.
    pub async fn get_or_try_insert<E, F>(
        &self,
        key: CacheKey,
        init: F,
    ) -> Result<Arc<Entry>, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Arc<Entry>, E>>,
    {
        let index = self.index.clone();
        let indexed_key = key;
        // Indexed just before moka stores it. If the scope is dropped in between, the entry
        // still lands, but under the old generation's key, which no up-to-date read asks for.
        self.cache
            .try_get_with(key, async move {
                let entry = init.await?;
                index.add(&indexed_key, &entry.scopes);
                Ok(entry)
            })
            .await
    }

    /// Drops every entry that depends on `scope`; how many it dropped.
    pub async fn drop_scope(&self, scope: &str) -> u64 {
        let mut dropped = 0;
        for key in self.index.take(scope) {
            if self.cache.remove(&key).await.is_some() {
                dropped += 1;
            }
        }
        dropped
    }

    pub async fn entries_and_bytes(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}
