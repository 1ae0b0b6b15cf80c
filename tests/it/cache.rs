//! The tiered cache: the library's tiers against a real redis-server, and the server
//! processes sharing SQLite and Redis.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use context_store::{
    cache::{Cache, CacheConfig, Lookup, Scope, TtlClass},
    model::{ScopeGeneration, StoreIdentity},
};
use serde_json::{Value, json};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    redis::{RedisServer, free_port},
    support::{Client, call_ok, data_dir, start_with},
};

fn config(redis_url: Option<String>, records_ttl: Duration) -> CacheConfig {
    CacheConfig {
        l1_max_bytes: 16 * 1024 * 1024,
        l1_max_entries: 1000,
        context_ttl: Duration::from_secs(3600),
        embedding_ttl: Duration::from_secs(86400),
        search_ttl: Duration::from_secs(1800),
        records_ttl,
        namespace: "cs-test".into(),
        redis_url,
        store: Some(StoreIdentity {
            store_id: "test-store".into(),
            cache_secret: b"test-secret".to_vec(),
        }),
        max_value_bytes: 1024 * 1024,
    }
}

fn start_cache(redis_url: Option<String>, records_ttl: Duration) -> Cache {
    Cache::start(
        config(redis_url, records_ttl),
        &CancellationToken::new(),
        &TaskTracker::new(),
    )
    .unwrap()
}

fn lookup(name: &str, scope: Scope) -> Lookup {
    Lookup {
        operation: "test_read",
        params: json!({"name": name}),
        class: TtlClass::Records,
        scopes: vec![scope],
    }
}

fn ann() -> Scope {
    Scope::Conversations("ann".into())
}

/// Reads through the cache with a loader that counts its calls.
async fn read(cache: &Cache, lookup: Lookup, loads: &AtomicUsize) -> Value {
    let name = lookup.params["name"].clone();
    let value = cache
        .get_or_load(lookup, async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(json!({"loaded": name}))
        })
        .await
        .unwrap();
    Value::clone(&value)
}

/// Waits until Redis holds at least `keys` keys (L2 writes happen behind the caller).
async fn wait_for_keys(redis: &RedisServer, keys: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.key_count() < keys {
        assert!(Instant::now() < deadline, "Redis never got {keys} keys");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reads_go_through_the_tiers_and_fill_them_on_the_way_back() {
    let redis = RedisServer::start();
    let first = start_cache(Some(redis.url()), Duration::from_secs(600));
    let second = start_cache(Some(redis.url()), Duration::from_secs(600));
    let loads = AtomicUsize::new(0);

    assert_eq!(
        read(&first, lookup("a", ann()), &loads).await,
        json!({"loaded": "a"})
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "a miss everywhere reads L3"
    );
    read(&first, lookup("a", ann()), &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1, "then L1 answers");
    let stats = first.stats().await;
    assert_eq!((stats.l1.hits, stats.l1.misses, stats.l3_loads), (1, 1, 1));
    assert_eq!(stats.l2.as_ref().unwrap().misses, 1);

    wait_for_keys(&redis, 2).await; // the value and its scope set
    assert_eq!(
        read(&second, lookup("a", ann()), &loads).await,
        json!({"loaded": "a"})
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "another process finds it in L2"
    );
    read(&second, lookup("a", ann()), &loads).await;
    let stats = second.stats().await;
    assert_eq!(stats.l2.as_ref().unwrap().hits, 1);
    assert_eq!(stats.l1.hits, 1, "and has filled its own L1");
    assert_eq!(stats.l3_loads, 0);
}

#[tokio::test(start_paused = true)]
async fn l1_entries_expire_after_their_class_ttl() {
    let cache = start_cache(None, Duration::from_secs(60));
    let loads = AtomicUsize::new(0);
    read(&cache, lookup("a", ann()), &loads).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    read(&cache, lookup("a", ann()), &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    read(&cache, lookup("a", ann()), &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 2, "expired, loaded again");
}

#[tokio::test]
async fn redis_entries_expire_after_their_class_ttl() {
    let redis = RedisServer::start();
    let writer = start_cache(Some(redis.url()), Duration::from_millis(600));
    let loads = AtomicUsize::new(0);
    read(&writer, lookup("a", ann()), &loads).await;
    wait_for_keys(&redis, 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reader = start_cache(Some(redis.url()), Duration::from_millis(600));
    read(&reader, lookup("a", ann()), &loads).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "gone from Redis after its TTL"
    );
    assert_eq!(reader.stats().await.l2.unwrap().hits, 0);
}

#[tokio::test]
async fn an_invalidation_drops_its_scope_in_both_tiers_and_nothing_else() {
    let redis = RedisServer::start();
    let cache = start_cache(Some(redis.url()), Duration::from_secs(600));
    let loads = AtomicUsize::new(0);
    let bob = Scope::Conversations("bob".into());
    let ann_preferences = Scope::Preferences("ann".into());
    for (name, scope) in [
        ("a1", ann()),
        ("a2", ann()),
        ("p", ann_preferences.clone()),
        ("b", bob.clone()),
    ] {
        read(&cache, lookup(name, scope), &loads).await;
    }
    wait_for_keys(&redis, 4 + 3).await; // four values, three scope sets

    let bump = ScopeGeneration {
        scope: ann().name(),
        generation: 1,
        seq: 1,
    };
    let dropped = cache.apply_own(&[bump]).await;
    assert_eq!(dropped.l1, 2);
    assert_eq!(dropped.l2, Some(2));
    assert_eq!(
        redis.key_count(),
        2 + 2,
        "the other values and their scope sets remain"
    );

    let before = loads.load(Ordering::SeqCst);
    read(&cache, lookup("p", ann_preferences.clone()), &loads).await;
    read(&cache, lookup("b", bob), &loads).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        before,
        "other scopes still hit"
    );
    read(&cache, lookup("a1", ann()), &loads).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        before + 1,
        "the dropped scope loads again"
    );

    // A process that never saw the bump still finds the untouched scopes in Redis.
    let other = start_cache(Some(redis.url()), Duration::from_secs(600));
    read(&other, lookup("p", ann_preferences), &loads).await;
    assert_eq!(other.stats().await.l2.unwrap().hits, 1);
}

#[tokio::test]
async fn batch_reads_return_what_exists_and_misses_for_the_rest() {
    let redis = RedisServer::start();
    let cache = start_cache(Some(redis.url()), Duration::from_secs(600));
    let keys: Vec<_> = (0..250)
        .map(|n| context_store::cache::CacheKey::new("embedding", &json!({"n": n})))
        .collect();
    for key in keys.iter().step_by(2) {
        let bytes = context_store::cache::encode(&vec![0.5f32; 8]).unwrap();
        cache.put_remote(key, bytes, TtlClass::Embedding, &[]).await;
    }
    let values = cache.mget_remote(&keys).await;
    assert_eq!(values.len(), 250);
    for (n, value) in values.iter().enumerate() {
        assert_eq!(value.is_some(), n % 2 == 0, "key {n}");
    }
    let decoded: Vec<f32> =
        context_store::cache::decode(values[0].as_ref().unwrap(), 1 << 20).unwrap();
    assert_eq!(decoded, vec![0.5f32; 8]);
    drop(redis);
    let values = cache.mget_remote(&keys[..3]).await;
    assert_eq!(
        values,
        vec![None, None, None],
        "a dead Redis reads as misses"
    );
}

async fn stats(client: &Client) -> Value {
    call_ok(client, "health", json!({})).await["cache"].clone()
}

fn history_ids(page: &Value) -> Vec<String> {
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["conversation_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn defaults_spelled_out_or_omitted_hit_the_same_entry() {
    let dir = data_dir();
    let client = start_with(dir.path(), &[]).await;
    call_ok(&client, "get_conversation_history", json!({})).await;
    call_ok(
        &client,
        "get_conversation_history",
        json!({"limit": 50, "cursor": null, "session_id": null}),
    )
    .await;
    call_ok(&client, "get_preferences", json!({"keys": ["b", "a"]})).await;
    call_ok(&client, "get_preferences", json!({"keys": ["a", "b", "a"]})).await;
    let stats = stats(&client).await;
    assert_eq!(stats["l1"]["hits"], 2, "{stats}");
    assert_eq!(stats["l3_loads"], 2, "{stats}");
    client.cancel().await.unwrap();
}

/// Saves through one process and reads through another, which had the old page cached.
async fn another_process_sees_a_save_within_the_bound(extra: &[&str]) {
    let dir = data_dir();
    let reader = start_with(dir.path(), extra).await;
    let writer = start_with(dir.path(), extra).await;
    assert!(history_ids(&call_ok(&reader, "get_conversation_history", json!({})).await).is_empty());
    call_ok(
        &writer,
        "save_conversation",
        json!({"conversation_id": "fresh", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    // The documented bound is the sync interval (50 ms) plus one poll; allow generous slack.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = call_ok(&reader, "get_conversation_history", json!({})).await;
    assert_eq!(history_ids(&page), ["fresh"]);

    call_ok(
        &writer,
        "set_preference",
        json!({"key": "tone", "value": "warm"}),
    )
    .await;
    let cached = call_ok(&reader, "get_preferences", json!({})).await;
    assert!(cached["preferences"].is_object());
    call_ok(
        &writer,
        "set_preference",
        json!({"key": "tone", "value": "dry"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = call_ok(&reader, "get_preferences", json!({})).await;
    assert_eq!(fresh["preferences"]["tone"], "dry");
    reader.cancel().await.unwrap();
    writer.cancel().await.unwrap();
}

#[tokio::test]
async fn an_invalidation_reaches_another_process_sharing_sqlite_and_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    another_process_sees_a_save_within_the_bound(&["--redis-url", &url]).await;
}

#[tokio::test]
async fn an_invalidation_reaches_another_process_sharing_only_sqlite() {
    another_process_sees_a_save_within_the_bound(&[]).await;
}

#[tokio::test]
async fn the_invalidate_cache_tool_drops_a_scope_and_says_how_much() {
    let redis = RedisServer::start();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--redis-url", &redis.url()]).await;
    call_ok(
        &client,
        "get_conversation_history",
        json!({"user_id": "ann"}),
    )
    .await;
    call_ok(
        &client,
        "get_conversation_history",
        json!({"user_id": "ann", "limit": 3}),
    )
    .await;
    call_ok(&client, "get_preferences", json!({"user_id": "ann"})).await;
    wait_for_keys(&redis, 3 + 2).await;
    let dropped = call_ok(
        &client,
        "invalidate_cache",
        json!({"event": "conversation_update", "user_id": "ann"}),
    )
    .await;
    assert_eq!(dropped["scope"], "conversations:ann");
    assert_eq!(dropped["dropped_l1"], 2);
    assert_eq!(dropped["dropped_l2"], 2);
    let error =
        crate::support::call_err(&client, "invalidate_cache", json!({"event": "everything"})).await;
    assert!(error.contains("unknown variant `everything`"), "{error}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn redis_killed_and_restarted_fails_no_call_and_l2_comes_back() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--redis-url", &url]).await;
    call_ok(&client, "get_conversation_history", json!({})).await;

    redis.kill();
    for n in 0..20 {
        call_ok(&client, "save_conversation", json!({"conversation_id": format!("c{n}"), "messages": [{"role": "user", "content": "x"}]})).await;
        call_ok(
            &client,
            "get_conversation_history",
            json!({"limit": n % 5 + 1}),
        )
        .await;
    }
    let down = stats(&client).await;
    assert!(
        down["l2"]["errors"].as_u64().unwrap() + down["l2"]["timeouts"].as_u64().unwrap() > 0,
        "{down}"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    for attempt in 0.. {
        // A new limit each time is a new key: a miss that tries to fill Redis.
        call_ok(
            &client,
            "get_conversation_history",
            json!({"limit": 100 + attempt}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if redis.key_count() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "L2 never came back: {}",
            stats(&client).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another process now reads what this one wrote to Redis.
    call_ok(&client, "get_conversation_history", json!({"limit": 9})).await;
    wait_for_keys(&redis, 2).await;
    let other = start_with(dir.path(), &["--redis-url", &url]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    call_ok(&other, "get_conversation_history", json!({"limit": 9})).await;
    assert_eq!(stats(&other).await["l2"]["hits"], 1);
    client.cancel().await.unwrap();
    other.cancel().await.unwrap();
}

#[tokio::test]
async fn a_hung_redis_costs_at_most_the_timeout_per_call() {
    let redis = RedisServer::start();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--redis-url", &redis.url()]).await;
    call_ok(&client, "get_conversation_history", json!({})).await;
    redis.pause();
    for limit in 1..=10 {
        let started = Instant::now();
        call_ok(&client, "get_conversation_history", json!({"limit": limit})).await;
        // 100 ms operation timeout plus a margin for a loaded two-core machine.
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "call {limit} took {:?}",
            started.elapsed()
        );
    }
    let paused = stats(&client).await;
    assert_eq!(paused["l2"]["circuit"], "open", "{paused}");
    redis.resume();
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_server_whose_redis_is_absent_starts_and_serves_at_once() {
    let dir = data_dir();
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let started = Instant::now();
    let client = start_with(dir.path(), &["--redis-url", &url]).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    call_ok(
        &client,
        "save_conversation",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let page = call_ok(&client, "get_conversation_history", json!({})).await;
    assert_eq!(history_ids(&page).len(), 1);
    client.cancel().await.unwrap();
}
