//! Hot paths of the tiered cache: an L1 hit, an L2 hit (a redis-server of the bench's own
//! on a free port), an L3 read through the store, key generation, and the msgpack codec on
//! a context-sized value.
//!
//! `cargo bench --bench cache`

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use context_store::{
    cache::{Cache, CacheConfig, CacheKey, Lookup, Scope, TtlClass, decode, encode},
    model::StoreIdentity,
    store::Store,
};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn config(redis_url: Option<String>, l1_max_bytes: u64) -> CacheConfig {
    CacheConfig {
        l1_max_bytes,
        l1_max_entries: 10_000,
        context_ttl: Duration::from_secs(3600),
        embedding_ttl: Duration::from_secs(86400),
        search_ttl: Duration::from_secs(1800),
        records_ttl: Duration::from_secs(600),
        namespace: "cs-bench".into(),
        redis_url,
        store: Some(StoreIdentity {
            store_id: "test-store".into(),
            cache_secret: b"test-secret".to_vec(),
        }),
        max_value_bytes: 1024 * 1024,
    }
}

/// A value shaped like an assembled context: 20 passages of about 400 bytes.
fn context_value() -> Value {
    let passages: Vec<Value> = (0..20)
        .map(|n| {
            json!({
                "path": format!("src/module_{n}.py"),
                "lines": [n * 10, n * 10 + 12],
                "score": 0.5 + n as f64 / 100.0,
                "text": "def parse_optional(value, default=None):\n    return default if value is None else value\n".repeat(4),
            })
        })
        .collect();
    json!({"query": "how are optional arguments parsed", "passages": passages, "total_tokens": 3120})
}

fn lookup() -> Lookup {
    Lookup {
        operation: "bench_read",
        params: json!({"user_id": "ann", "limit": 50}),
        class: TtlClass::Context,
        scopes: vec![Scope::Conversations("ann".into())],
    }
}

async fn read(cache: &Cache) -> Value {
    let value = cache
        .get_or_load(lookup(), async {
            Ok::<_, std::convert::Infallible>(context_value())
        })
        .await
        .unwrap();
    Value::clone(&value)
}

fn l1_hit(criterion: &mut Group, runtime: &Runtime) {
    let cache = runtime
        .block_on(async {
            Cache::start(
                config(None, 64 << 20),
                &CancellationToken::new(),
                &TaskTracker::new(),
            )
        })
        .unwrap();
    runtime.block_on(read(&cache));
    criterion.bench_function("l1_hit", |bench| {
        bench.iter_custom(|iters| {
            let cache = cache.clone();
            on_worker(runtime, iters, move || {
                let cache = cache.clone();
                async move {
                    cache
                        .get_or_load(lookup(), async {
                            Ok::<Value, std::convert::Infallible>(Value::Null)
                        })
                        .await
                        .unwrap()
                }
            })
        })
    });
}

fn l2_hit(criterion: &mut Group, runtime: &Runtime) {
    let Some(redis) = RedisChild::start() else {
        eprintln!("redis-server not found: skipping cache/l2_hit");
        return;
    };
    let cache = runtime
        .block_on(async {
            Cache::start(
                config(Some(redis.url()), 64 << 20),
                &CancellationToken::new(),
                &TaskTracker::new(),
            )
        })
        .unwrap();
    // A context-sized value, and a 1 KiB one (the size of the reference GET measurement).
    let small = json!({"text": "x".repeat(1000)});
    for (name, value) in [("l2_hit", context_value()), ("l2_hit_1kib", small)] {
        let key = CacheKey::new("bench_read", &json!({"name": name}));
        let bytes = encode(&value).unwrap();
        runtime.block_on(cache.put_remote(&key, bytes, TtlClass::Context, &[]));
        let keys = Arc::new([key]);
        // Straight to Redis (no L1 in front): one GET round trip on loopback plus the decode.
        criterion.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let (cache, keys) = (cache.clone(), keys.clone());
                on_worker(runtime, iters, move || {
                    let (cache, keys) = (cache.clone(), keys.clone());
                    async move {
                        let found = cache.mget_remote(&keys[..]).await;
                        decode::<Value>(found[0].as_ref().expect("an L2 hit"), usize::MAX).unwrap()
                    }
                })
            })
        });
    }
}

fn l3_read(criterion: &mut Group, runtime: &Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let store = runtime.block_on(Store::open(dir.path())).unwrap();
    runtime
        .block_on(store.set_preference("ann", "tone", &json!({"style": "brief"}), 0, &[]))
        .unwrap();
    criterion.bench_function("l3_read_preferences", |bench| {
        bench.iter_custom(|iters| {
            let store = store.clone();
            on_worker(runtime, iters, move || {
                let store = store.clone();
                async move { store.preferences("ann", None).await.unwrap() }
            })
        })
    });
}

fn key_generation(criterion: &mut Criterion) {
    let params = json!({
        "query": "  how are optional arguments parsed ",
        "user_id": "ann",
        "workspace": "/home/ann/projects/app",
        "max_tokens": 4000,
        "include": ["preferences", "history", "documents"],
        "generations": {"conversations:ann": 12, "workspace:/home/ann/projects/app": 3},
    });
    criterion.bench_function("cache/key_generation", |bench| {
        bench.iter(|| CacheKey::new("get_context", std::hint::black_box(&params)))
    });
}

fn codec(criterion: &mut Criterion) {
    let value = context_value();
    let bytes = encode(&value).unwrap();
    eprintln!(
        "context-sized value: {} bytes of JSON, {} encoded",
        value.to_string().len(),
        bytes.len()
    );
    criterion.bench_function("cache/msgpack_encode_context", |bench| {
        bench.iter(|| encode(std::hint::black_box(&value)).unwrap())
    });
    criterion.bench_function("cache/msgpack_decode_context", |bench| {
        bench.iter(|| decode::<Value>(std::hint::black_box(&bytes), usize::MAX).unwrap())
    });
}

/// Times `iters` runs of `work` inside one task on the runtime's workers, the way a tool call
/// runs in the server; `to_async` would poll from the bench thread and add a thread hop to
/// every wake-up.
fn on_worker<F, Fut>(runtime: &Runtime, iters: u64, work: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future + Send,
{
    runtime.block_on(async move {
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            for _ in 0..iters {
                std::hint::black_box(work().await);
            }
            started.elapsed()
        })
        .await
        .expect("the bench task ran")
    })
}

fn benches(criterion: &mut Criterion) {
    // The server runs on a multi-thread runtime; the current-thread figures show how much of
    // a tier's cost is hand-offs between threads on this two-core machine.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, runtime) in [("multi_thread", &multi), ("current_thread", &current)] {
        let mut group = criterion.benchmark_group(format!("cache/{name}"));
        l1_hit(&mut group, runtime);
        l2_hit(&mut group, runtime);
        l3_read(&mut group, runtime);
        group.finish();
    }
    key_generation(criterion);
    codec(criterion);
}

criterion_group!(cache, benches);
criterion_main!(cache);

/// A redis-server of the bench's own, stopped when dropped.
struct RedisChild {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisChild {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::tempdir().ok()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
