//! A shared or hostile Redis, and cache keys that must tell apart what the store tells apart:
//! deployments sharing one Redis, values copied, forged or inflating to a bomb, and strings
//! that differ only by a trailing space.

use std::time::{Duration, Instant};

use context_store::{
    cache::{Cache, CacheConfig, Lookup, Scope, TtlClass, encode},
    model::StoreIdentity,
};
use redis::{AsyncCommands, aio::MultiplexedConnection};
use serde_json::{Value, json};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    redis::RedisServer,
    support::{Client, RawServer, call_ok, data_dir, hit_paths, server_command, start, start_with},
};

async fn connect(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis key of the one value cached under `scope` (read from the scope's set), waiting
/// for the write, which happens behind the reader's back.
async fn data_key_of(connection: &mut MultiplexedConnection, scope: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sets: Vec<String> = connection.keys(format!("*:scope:{scope}")).await.unwrap();
        if let [set] = sets.as_slice() {
            let members: Vec<String> = connection.smembers(set).await.unwrap();
            if let [member] = members.as_slice() {
                return member.clone();
            }
        }
        assert!(Instant::now() < deadline, "no cached value under {scope}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn set_theme(client: &Client, user: &str, theme: &str) {
    call_ok(
        client,
        "set_preference",
        json!({"user_id": user, "key": "theme", "value": theme}),
    )
    .await;
}

async fn preferences_of(client: &Client, user: &str) -> Value {
    call_ok(client, "get_preferences", json!({"user_id": user})).await["preferences"].clone()
}

#[tokio::test]
async fn two_stores_sharing_one_redis_never_read_each_others_entries() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (first_dir, second_dir) = (data_dir(), data_dir());
    let first = start_with(first_dir.path(), &["--redis-url", &url]).await;
    let second = start_with(second_dir.path(), &["--redis-url", &url]).await;
    // Both stores' scope `preferences:ann` reach generation 1, with different values.
    set_theme(&first, "ann", "dark").await;
    set_theme(&second, "ann", "light").await;
    assert_eq!(
        preferences_of(&first, "ann").await,
        json!({"theme": "dark"})
    );
    let mut connection = connect(&redis).await;
    data_key_of(&mut connection, "preferences:ann").await;
    assert_eq!(
        preferences_of(&second, "ann").await,
        json!({"theme": "light"})
    );
}

/// A store with ann's and bob's themes cached in a Redis of the test's own; returns the
/// Redis keys of their cached preferences.
struct TwoUsers {
    redis: RedisServer,
    dir: tempfile::TempDir,
    ann_key: String,
    bob_key: String,
    bob_cached: Value,
}

async fn two_users_cached() -> TwoUsers {
    let redis = RedisServer::start();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--redis-url", &redis.url()]).await;
    set_theme(&client, "ann", "dark").await;
    set_theme(&client, "bob", "light").await;
    preferences_of(&client, "ann").await;
    let bob_cached = call_ok(&client, "get_preferences", json!({"user_id": "bob"})).await;
    let mut connection = connect(&redis).await;
    let ann_key = data_key_of(&mut connection, "preferences:ann").await;
    let bob_key = data_key_of(&mut connection, "preferences:bob").await;
    client.cancel().await.unwrap();
    TwoUsers {
        redis,
        dir,
        ann_key,
        bob_key,
        bob_cached,
    }
}

/// Bob's preferences read by a new process (nothing in its memory), so through Redis.
async fn bob_read_afresh(users: &TwoUsers) -> Value {
    let client = start_with(users.dir.path(), &["--redis-url", &users.redis.url()]).await;
    let preferences = preferences_of(&client, "bob").await;
    let health = call_ok(&client, "health", json!({})).await;
    eprintln!("cache after the read: {}", health["cache"]);
    preferences
}

#[tokio::test]
async fn a_value_copied_under_another_users_key_is_a_miss() {
    let users = two_users_cached().await;
    let mut connection = connect(&users.redis).await;
    let ann_value: Vec<u8> = connection.get(&users.ann_key).await.unwrap();
    let _: () = connection.set(&users.bob_key, ann_value).await.unwrap();
    assert_eq!(bob_read_afresh(&users).await, json!({"theme": "light"}));
}

#[tokio::test]
async fn a_value_written_without_the_stores_secret_is_a_miss() {
    let users = two_users_cached().await;
    let mut forged = users.bob_cached.clone();
    forged["preferences"]["theme"] = json!("forged");
    let mut connection = connect(&users.redis).await;
    let _: () = connection
        .set(&users.bob_key, encode(&forged).unwrap())
        .await
        .unwrap();
    assert_eq!(bob_read_afresh(&users).await, json!({"theme": "light"}));
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

#[tokio::test]
async fn an_lz4_bomb_in_redis_is_a_miss_without_a_big_allocation() {
    let users = two_users_cached().await;
    // About 240 KiB in Redis that would inflate to a valid 60 MiB preference.
    let mut bomb = users.bob_cached.clone();
    bomb["preferences"]["theme"] = json!("x".repeat(60 << 20));
    let bytes = encode(&bomb).unwrap();
    drop(bomb);
    assert!(bytes.len() < 512 * 1024, "{} bytes", bytes.len());
    let mut connection = connect(&users.redis).await;
    let _: () = connection.set(&users.bob_key, bytes).await.unwrap();

    let mut command = server_command(users.dir.path());
    command.args(["--redis-url", &users.redis.url()]);
    let mut server = RawServer::spawn_command(command);
    server.initialize("2025-11-25").await;
    let pid = server.child.id().unwrap();
    let answer = server
        .call_tool(1, "get_preferences", json!({"user_id": "bob"}))
        .await;
    let peak = peak_rss_mib(pid);
    eprintln!("an LZ4 bomb in Redis: peak RSS {peak} MiB");
    // Compared by length first: a failure must not print 60 MiB.
    let theme = &answer["result"]["structuredContent"]["preferences"]["theme"];
    let length = theme.as_str().map_or(0, str::len);
    assert!(length < 100, "a theme of {length} bytes was served");
    assert_eq!(theme, "light");
    assert!(peak < 120, "peak RSS {peak} MiB");
    server.finish().await;
}

fn library_cache(redis: &RedisServer) -> Cache {
    let config = CacheConfig {
        l1_max_bytes: 16 << 20,
        l1_max_entries: 1000,
        context_ttl: Duration::from_secs(600),
        embedding_ttl: Duration::from_secs(600),
        search_ttl: Duration::from_secs(600),
        records_ttl: Duration::from_secs(600),
        namespace: "cs-test".into(),
        redis_url: Some(redis.url()),
        store: Some(StoreIdentity {
            store_id: "store".into(),
            cache_secret: b"secret".to_vec(),
        }),
        max_value_bytes: 1 << 20,
    };
    Cache::start(config, &CancellationToken::new(), &TaskTracker::new()).unwrap()
}

fn preferences_lookup(user: &str) -> Lookup {
    Lookup {
        operation: "get_preferences",
        params: json!({"user_id": user}),
        class: TtlClass::Records,
        scopes: vec![Scope::Preferences(user.into())],
    }
}

#[tokio::test]
async fn a_sealed_value_naming_another_user_is_a_miss() {
    let redis = RedisServer::start();
    let cache = library_cache(&redis);
    let lookup = preferences_lookup("bob");
    let key = cache.key_for(&lookup);
    let ann = json!({"user_id": "ann", "preferences": {"theme": "dark"}});
    cache
        .put_remote(&key, encode(&ann).unwrap(), TtlClass::Records, &[])
        .await;
    let fresh = library_cache(&redis);
    let bob = json!({"user_id": "bob", "preferences": {"theme": "light"}});
    let loaded = bob.clone();
    let read = fresh
        .get_or_load(
            lookup,
            async move { Ok::<_, std::convert::Infallible>(loaded) },
        )
        .await
        .unwrap();
    assert_eq!(*read, bob);
    let remote = fresh.stats().await.l2.unwrap();
    assert_eq!((remote.hits, remote.rejected), (1, 1));
}

#[tokio::test]
async fn preference_keys_differing_by_a_trailing_space_are_cached_apart() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    for (key, value) in [("theme ", "spaced"), ("theme", "plain")] {
        call_ok(
            &client,
            "set_preference",
            json!({"key": key, "value": value}),
        )
        .await;
    }
    for (key, value) in [("theme ", "spaced"), ("theme", "plain")] {
        let read = call_ok(&client, "get_preferences", json!({"keys": [key]})).await;
        assert_eq!(read["preferences"], json!({key: value}), "{key:?}");
    }
}

#[tokio::test]
async fn session_ids_differing_by_a_trailing_space_are_cached_apart() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    for session in ["s1 ", "s1"] {
        call_ok(
            &client,
            "save_conversation",
            json!({"session_id": session,
                   "messages": [{"role": "user", "content": format!("in {session:?}")}]}),
        )
        .await;
    }
    for session in ["s1 ", "s1"] {
        let page = call_ok(
            &client,
            "get_conversation_history",
            json!({"session_id": session}),
        )
        .await;
        let sessions: Vec<&Value> = page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|conversation| &conversation["session_id"])
            .collect();
        assert_eq!(sessions, [&json!(session)], "{session:?}: {page:#}");
    }
}

#[tokio::test]
async fn path_prefixes_differing_by_a_trailing_space_are_cached_apart() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(base.path().join("lib")).unwrap();
    std::fs::write(base.path().join("lib/heap.py"), "def sift_needle(): pass\n").unwrap();
    let root = base.path().canonicalize().unwrap();
    let dir = data_dir();
    let client = start_with(dir.path(), &["--workspace", root.to_str().unwrap()]).await;
    call_ok(&client, "index_workspace", json!({})).await;
    for (prefix, expected) in [("lib ", Vec::<&str>::new()), ("lib", vec!["lib/heap.py"])] {
        let found = call_ok(
            &client,
            "search_documents",
            json!({"query": "sift_needle", "mode": "text", "path_prefix": prefix}),
        )
        .await;
        assert_eq!(hit_paths(&found), expected, "{prefix:?}");
    }
}
