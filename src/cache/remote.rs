//! L2: Redis, optional and never in the way.
//!
//! One multiplexed connection (pipelined, so one connection serves every concurrent call;
//! well inside the design's bound of ten) that connects lazily and reconnects with
//! exponential backoff. Every operation is bounded by a 100 ms timeout; a failure is a miss,
//! counted and logged at a bounded rate; repeated failures open the circuit breaker.
//!
//! Every key starts with the namespace and the store's random id, so deployments sharing one
//! Redis never meet, and every value is sealed (`seal.rs`) for its key: a value that fails the
//! check, or whose size is over the cap, is counted as rejected and read as a miss.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands, RedisResult, aio::ConnectionManager, aio::ConnectionManagerConfig};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{breaker::Breaker, codec::packed_len, key::CacheKey, metrics::Metrics, seal::Seal};
use crate::model::StoreIdentity;

const OPERATION_TIMEOUT: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// How often the background task looks at the breaker.
const PROBE_TICK: Duration = Duration::from_millis(100);
/// At most one Redis error line per this period; the rest are counted.
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);
/// Keys per MGET: a failed chunk loses only its own keys.
const MGET_CHUNK: usize = 100;
/// Scope sets outlive every entry they list (the longest TTL class is a day).
const SCOPE_SET_TTL: Duration = Duration::from_secs(48 * 3600);

pub struct RemoteTier {
    connection: ConnectionManager,
    /// `<namespace>:<store id>`, in front of every key.
    prefix: String,
    seal: Seal,
    /// The largest msgpack size of a value stored or accepted.
    max_value_bytes: usize,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    errors: ErrorLog,
}

impl RemoteTier {
    /// Prepares the connection without waiting for Redis: a server that is down at launch
    /// delays nothing.
    pub fn new(
        url: &str,
        namespace: &str,
        store: &StoreIdentity,
        max_value_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_exponent_base(2.0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            prefix: format!("{namespace}:{}", store.store_id),
            seal: Seal::new(&store.cache_secret),
            max_value_bytes,
            breaker: Breaker::default(),
            metrics,
            errors: ErrorLog::default(),
        })
    }

    fn data_key(&self, key: &CacheKey) -> String {
        format!("{}:v2:{key}", self.prefix)
    }

    fn scope_key(&self, scope: &str) -> String {
        format!("{}:scope:{scope}", self.prefix)
    }

    /// The value read under `data_key` when its seal holds and its size is within the cap.
    fn accept(&self, data_key: &str, sealed: Vec<u8>) -> Option<Vec<u8>> {
        let accepted = self
            .seal
            .open(data_key, &sealed)
            .filter(|value| packed_len(value) <= self.max_value_bytes);
        if accepted.is_none() {
            Metrics::count(&self.metrics.l2_rejected);
        }
        accepted.map(<[u8]>::to_vec)
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let mut connection = self.connection.clone();
        let data_key = self.data_key(key);
        let read_key = data_key.clone();
        let found: Option<Vec<u8>> = self
            .run("GET", async move { connection.get(read_key).await })
            .await?;
        let found = found.and_then(|sealed| self.accept(&data_key, sealed));
        let counter = match found {
            Some(_) => &self.metrics.l2_hits,
            None => &self.metrics.l2_misses,
        };
        Metrics::count(counter);
        found
    }

    /// Batch read, as the design's `mget_embeddings`: one MGET per chunk of keys; a chunk
    /// that fails reads as misses while the others still count.
    pub async fn mget(&self, keys: &[CacheKey]) -> Vec<Option<Vec<u8>>> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MGET_CHUNK) {
            let data_keys: Vec<String> = chunk.iter().map(|key| self.data_key(key)).collect();
            let read_keys = data_keys.clone();
            let mut connection = self.connection.clone();
            let found: Option<Vec<Option<Vec<u8>>>> = self
                .run("MGET", async move { connection.mget(read_keys).await })
                .await;
            let found = found.unwrap_or_else(|| vec![None; chunk.len()]);
            values.extend(
                data_keys.iter().zip(found).map(|(data_key, sealed)| {
                    sealed.and_then(|sealed| self.accept(data_key, sealed))
                }),
            );
        }
        values
    }

    /// Stores a value, sealed for its key, and records it in the sets of the scopes it
    /// depends on. A value over the cap is not stored: no reader would accept it.
    pub async fn put(&self, key: &CacheKey, bytes: Vec<u8>, ttl: Duration, scopes: &[String]) {
        if packed_len(&bytes) > self.max_value_bytes {
            return;
        }
        let data_key = self.data_key(key);
        let bytes = self.seal.seal(&data_key, &bytes);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SET")
            .arg(&data_key)
            .arg(bytes)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore();
        for scope in scopes {
            let scope_key = self.scope_key(scope);
            pipeline.cmd("SADD").arg(&scope_key).arg(&data_key).ignore();
            pipeline
                .cmd("PEXPIRE")
                .arg(&scope_key)
                .arg(SCOPE_SET_TTL.as_millis() as u64)
                .ignore();
        }
        let mut connection = self.connection.clone();
        let _: Option<()> = self
            .run(
                "SET",
                async move { pipeline.query_async(&mut connection).await },
            )
            .await;
    }

    /// Deletes every entry listed under `scope`; how many existed, or None if Redis failed.
    pub async fn drop_scope(&self, scope: &str) -> Option<u64> {
        let scope_key = self.scope_key(scope);
        let mut connection = self.connection.clone();
        let listed_key = scope_key.clone();
        let members: Vec<String> = self
            .run(
                "SMEMBERS",
                async move { connection.smembers(listed_key).await },
            )
            .await?;
        if members.is_empty() {
            return Some(0);
        }
        // SREM only what was listed: an entry added meanwhile keeps its membership.
        let mut pipeline = redis::pipe();
        pipeline.cmd("DEL").arg(&members);
        pipeline.cmd("SREM").arg(&scope_key).arg(&members).ignore();
        let mut connection = self.connection.clone();
        let (deleted,): (u64,) = self
            .run(
                "DEL",
                async move { pipeline.query_async(&mut connection).await },
            )
            .await?;
        Some(deleted)
    }

    pub fn circuit(&self) -> &'static str {
        self.breaker.state_name()
    }

    /// Runs one Redis operation under the breaker and the timeout; None on any failure.
    async fn run<T>(
        &self,
        what: &'static str,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        if !self.breaker.allows_requests() {
            Metrics::count(&self.metrics.l2_skipped);
            return None;
        }
        self.attempt(what, operation).await
    }

    async fn attempt<T>(
        &self,
        what: &'static str,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Some(value)
            }
            Ok(Err(error)) => {
                Metrics::count(&self.metrics.l2_errors);
                self.fail(what, &error.to_string());
                None
            }
            Err(_) => {
                Metrics::count(&self.metrics.l2_timeouts);
                self.fail(what, "timed out after 100 ms");
                None
            }
        }
    }

    fn fail(&self, what: &str, reason: &str) {
        let opened = self.breaker.record_failure();
        self.errors.log(what, reason, opened);
    }

    async fn ping(&self) -> bool {
        let mut connection = self.connection.clone();
        let pong: Option<String> = self
            .attempt("PING", async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await;
        pong.is_some()
    }

    /// The round trip of one PING, None when it fails or the circuit is open.
    pub async fn round_trip(&self) -> Option<Duration> {
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let pong: Option<String> = self
            .run("PING", async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await;
        pong.map(|_| started.elapsed())
    }

    /// Probes Redis: after a cool-down when the circuit is open, every 30 s when it is closed.
    pub async fn run_probes(self: Arc<Self>, cancel: CancellationToken) {
        let mut last_health_probe = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(PROBE_TICK) => {}
            }
            let health_due = last_health_probe.elapsed() >= HEALTH_PROBE_INTERVAL
                && self.breaker.allows_requests();
            if self.breaker.probe_due() || health_due {
                last_health_probe = Instant::now();
                if self.ping().await && !health_due {
                    tracing::info!("Redis answers again; the cache uses it from now on");
                }
            }
        }
    }
}

/// Logs Redis failures at most once per period, with the number left unsaid.
#[derive(Default)]
struct ErrorLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl ErrorLog {
    fn log(&self, what: &str, reason: &str, circuit_open: bool) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < ERROR_LOG_PERIOD) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            operation = what,
            reason,
            circuit_open,
            suppressed,
            "Redis failed; serving from memory and SQLite"
        );
    }
}
