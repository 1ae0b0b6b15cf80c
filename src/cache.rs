//! The tiered cache: L1 in process (moka), L2 in Redis (optional), L3 is the store, which
//! the engine's loaders read.
//!
//! Reads go L1 → L2 → loader and fill the tiers above on the way back. Keys fold in the
//! generation of every scope an entry depends on, so a bump (an invalidation, recorded in
//! SQLite by the engine) makes old entries unreachable in every process that has seen it;
//! the entries themselves are also dropped, from L1 here and from Redis once by the process
//! that raised the event. A Redis failure is a miss, never an error.

mod breaker;
mod codec;
mod key;
mod memory;
mod metrics;
mod owner;
mod remote;
mod scope;
mod seal;

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::codec::{packed_len, packed_size, unpack};
pub use self::{
    codec::{CodecError, decode, encode},
    key::{CacheKey, normalize},
    metrics::{CacheStats, RemoteStats, TierStats},
    scope::{InvalidationEvent, Scope},
};
use self::{
    memory::{Entry, MemoryTier},
    metrics::{Metrics, read},
    remote::RemoteTier,
};
use crate::model::{ScopeGeneration, StoreIdentity};

/// How long entries of each class live, in every tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlClass {
    /// Assembled contexts (`get_context`).
    Context,
    /// Document embeddings.
    Embedding,
    /// Search results.
    Search,
    /// Conversation history pages and preferences read from SQLite.
    Records,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub l1_max_bytes: u64,
    pub l1_max_entries: u64,
    pub context_ttl: Duration,
    pub embedding_ttl: Duration,
    pub search_ttl: Duration,
    pub records_ttl: Duration,
    /// Prefix of every Redis key, before the store's id.
    pub namespace: String,
    pub redis_url: Option<String>,
    /// The store whose data is cached: its id goes into every Redis key and its secret seals
    /// every Redis value. Redis is used only with it.
    pub store: Option<StoreIdentity>,
    /// The largest msgpack size of a value read from or written to Redis; larger values are
    /// misses (near the response cap: no tool answer needs more).
    pub max_value_bytes: usize,
}

impl CacheConfig {
    fn ttl(&self, class: TtlClass) -> Duration {
        match class {
            TtlClass::Context => self.context_ttl,
            TtlClass::Embedding => self.embedding_ttl,
            TtlClass::Search => self.search_ttl,
            TtlClass::Records => self.records_ttl,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the Redis URL is not valid")]
    RedisUrl(#[source] redis::RedisError),
}

/// One cacheable read: the operation, its parameters with defaults filled in, its TTL class,
/// and the scopes whose change makes it stale.
#[derive(Debug)]
pub struct Lookup {
    pub operation: &'static str,
    pub params: Value,
    pub class: TtlClass,
    pub scopes: Vec<Scope>,
}

/// Which tier answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// This process's memory (also when another call's load of the same key was awaited).
    L1,
    L2,
    /// Loaded from the store.
    Miss,
}

impl Tier {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Tier::L2,
            2 => Tier::Miss,
            _ => Tier::L1,
        }
    }
}

/// How many entries an invalidation dropped, per tier (None: Redis absent or failing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub l1: u64,
    pub l2: Option<u64>,
}

/// Handle to the tiers; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    config: CacheConfig,
    memory: MemoryTier,
    remote: Option<Arc<RemoteTier>>,
    /// The generation of each scope this process has seen; absent means 0.
    generations: RwLock<HashMap<String, i64>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    /// Builds the tiers; with a Redis URL, starts the background probe on `cancel`'s lifetime.
    /// Nothing waits for Redis here.
    pub fn start(
        config: CacheConfig,
        cancel: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Self, CacheError> {
        let metrics = Arc::new(Metrics::default());
        let memory = MemoryTier::new(config.l1_max_bytes, config.l1_max_entries, metrics.clone());
        let remote = match (&config.redis_url, &config.store) {
            (Some(_), None) => {
                tracing::warn!("the store's identity is unknown: Redis is not used");
                None
            }
            (Some(url), Some(store)) => {
                let tier = RemoteTier::new(
                    url,
                    &config.namespace,
                    store,
                    config.max_value_bytes,
                    metrics.clone(),
                )
                .map_err(CacheError::RedisUrl)?;
                let tier = Arc::new(tier);
                tasks.spawn(tier.clone().run_probes(cancel.clone()));
                Some(tier)
            }
            (None, _) => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                memory,
                remote,
                generations: RwLock::default(),
                metrics,
            }),
        })
    }

    /// The value for `lookup`, from the first tier that has it, else from `load`, which
    /// then fills the tiers. Concurrent misses of one key run `load` once.
    pub async fn get_or_load<T, E, F>(&self, lookup: Lookup, load: F) -> Result<Arc<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        Ok(self.get_or_load_traced(lookup, load).await?.0)
    }

    /// As `get_or_load`, also saying which tier answered.
    pub async fn get_or_load_traced<T, E, F>(
        &self,
        lookup: Lookup,
        load: F,
    ) -> Result<(Arc<T>, Tier), Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        let key = self.key_for(&lookup);
        if let Some(value) = self.l1_hit::<T>(&key).await {
            Metrics::count(&self.inner.metrics.l1_hits);
            return Ok((value, Tier::L1));
        }
        Metrics::count(&self.inner.metrics.l1_misses);
        let served = AtomicU8::new(0);
        let entry = self
            .inner
            .memory
            .get_or_try_insert(key, self.fill::<T, E, F>(key, lookup, load, &served))
            .await?;
        let value = entry
            .value
            .clone()
            .downcast::<T>()
            .expect("a key names one operation, hence one type");
        Ok((value, Tier::from_u8(served.load(Ordering::Relaxed))))
    }

    async fn l1_hit<T: Send + Sync + 'static>(&self, key: &CacheKey) -> Option<Arc<T>> {
        let entry = self.inner.memory.get(key).await?;
        entry.value.clone().downcast::<T>().ok()
    }

    /// The miss path: L2, then the loader; fills L2 behind the caller's back.
    async fn fill<T, E, F>(
        &self,
        key: CacheKey,
        lookup: Lookup,
        load: F,
        served: &AtomicU8,
    ) -> Result<Arc<Entry>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        let ttl = self.inner.config.ttl(lookup.class);
        let scopes: Box<[String]> = lookup.scopes.iter().map(Scope::name).collect();
        if let Some(remote) = &self.inner.remote
            && let Some(bytes) = remote.get(&key).await
            && let Some(value) = self.accept_remote::<T>(&lookup, &bytes)
        {
            served.store(1, Ordering::Relaxed);
            return Ok(Arc::new(Entry::new(
                Arc::new(value),
                packed_len(&bytes),
                scopes,
                ttl,
            )));
        }
        let value = load.await?;
        served.store(2, Ordering::Relaxed);
        Metrics::count(&self.inner.metrics.l3_loads);
        let size = packed_size(&value).unwrap_or_else(|error| {
            tracing::warn!(%error, operation = lookup.operation, "cannot weigh a cache value");
            0
        });
        // Encoded (and compressed) only for Redis: without it the L1 entry is the value itself.
        if let Some(remote) = self.inner.remote.clone() {
            match encode(&value) {
                Ok(bytes) => {
                    let scopes = scopes.clone();
                    tokio::spawn(async move { remote.put(&key, bytes, ttl, &scopes).await });
                }
                Err(error) => {
                    tracing::warn!(%error, operation = lookup.operation, "cannot encode a cache value");
                }
            }
        }
        Ok(Arc::new(Entry::new(Arc::new(value), size, scopes, ttl)))
    }

    /// A value read from Redis, decoded within the size cap, unless it names a user other
    /// than the one `lookup` asks for. Refused values are counted and read as misses.
    fn accept_remote<T: DeserializeOwned>(&self, lookup: &Lookup, bytes: &[u8]) -> Option<T> {
        let accepted = unpack(bytes, self.inner.config.max_value_bytes)
            .ok()
            .filter(|packed| owner::matches(&lookup.params, packed))
            .and_then(|packed| rmp_serde::from_slice::<T>(&packed).ok());
        if accepted.is_none() {
            Metrics::count(&self.inner.metrics.l2_rejected);
        }
        accepted
    }

    /// The key of `lookup` at the scope generations this process knows.
    pub fn key_for(&self, lookup: &Lookup) -> CacheKey {
        let folded: Vec<(String, i64)> = {
            let generations = self
                .inner
                .generations
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            lookup
                .scopes
                .iter()
                .map(|scope| {
                    let name = scope.name();
                    let generation = generations.get(&name).copied().unwrap_or(0);
                    (name, generation)
                })
                .collect()
        };
        CacheKey::with_generations(lookup.operation, &lookup.params, &folded)
    }

    /// Applies generations this process bumped itself: drops the scopes in L1 and in Redis.
    pub async fn apply_own(&self, bumped: &[ScopeGeneration]) -> Dropped {
        let mut dropped = Dropped {
            l1: 0,
            l2: self.inner.remote.as_ref().map(|_| 0),
        };
        for generation in bumped {
            self.advance(generation);
            dropped.l1 += self.inner.memory.drop_scope(&generation.scope).await;
            if let Some(remote) = &self.inner.remote {
                let removed = remote.drop_scope(&generation.scope).await;
                dropped.l2 = dropped.l2.zip(removed).map(|(sum, n)| sum + n);
            }
        }
        dropped
    }

    /// Applies generations another process bumped (it already cleared Redis): drops the
    /// scopes from L1 where they are newer than what this process knew.
    pub async fn apply_foreign(&self, bumped: &[ScopeGeneration]) {
        for generation in bumped {
            if self.advance(generation) {
                self.inner.memory.drop_scope(&generation.scope).await;
            }
        }
    }

    /// Raises the known generation of a scope; true if it was newer.
    fn advance(&self, bumped: &ScopeGeneration) -> bool {
        let mut generations = self
            .inner
            .generations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = generations.entry(bumped.scope.clone()).or_insert(0);
        if bumped.generation <= *known {
            return false;
        }
        *known = bumped.generation;
        Metrics::count(&self.inner.metrics.invalidations);
        true
    }

    /// Batch read of raw values from Redis (the design's `mget_embeddings`); misses and
    /// failures are None.
    pub async fn mget_remote(&self, keys: &[CacheKey]) -> Vec<Option<Vec<u8>>> {
        match &self.inner.remote {
            Some(remote) => remote.mget(keys).await,
            None => vec![None; keys.len()],
        }
    }

    /// Stores a raw value in Redis (used with `mget_remote`).
    pub async fn put_remote(
        &self,
        key: &CacheKey,
        bytes: Vec<u8>,
        class: TtlClass,
        scopes: &[Scope],
    ) {
        if let Some(remote) = &self.inner.remote {
            let scopes: Vec<String> = scopes.iter().map(Scope::name).collect();
            remote
                .put(key, bytes, self.inner.config.ttl(class), &scopes)
                .await;
        }
    }

    /// Redis as health reports it: None when none is configured, else a PING's round trip
    /// (None when it failed or the circuit is open) and the circuit's state.
    pub async fn probe_remote(&self) -> Option<(Option<Duration>, &'static str)> {
        let remote = self.inner.remote.as_ref()?;
        let round_trip = remote.round_trip().await;
        Some((round_trip, remote.circuit()))
    }

    pub async fn stats(&self) -> CacheStats {
        let metrics = &self.inner.metrics;
        let (entries, weighted_bytes) = self.inner.memory.entries_and_bytes().await;
        CacheStats {
            l1: TierStats {
                hits: read(&metrics.l1_hits),
                misses: read(&metrics.l1_misses),
                evictions: read(&metrics.l1_evictions),
                entries,
                weighted_bytes,
            },
            l2: self.inner.remote.as_ref().map(|remote| RemoteStats {
                hits: read(&metrics.l2_hits),
                misses: read(&metrics.l2_misses),
                errors: read(&metrics.l2_errors),
                timeouts: read(&metrics.l2_timeouts),
                skipped: read(&metrics.l2_skipped),
                rejected: read(&metrics.l2_rejected),
                circuit: remote.circuit().to_owned(),
            }),
            l3_loads: read(&metrics.l3_loads),
            invalidations: read(&metrics.invalidations),
        }
    }
}
