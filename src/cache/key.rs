//! Deterministic cache keys, as the design's `generate_cache_key`: the operation and its
//! normalised parameters as canonical JSON, hashed with SHA-256, 16 hex characters.
//!
//! Normalised means: object keys sorted (serde_json's map is ordered), strings trimmed, and
//! null fields dropped so that an omitted optional equals an explicit null. Defaults are
//! filled in by the caller before it builds the parameters, so that omitting a default and
//! spelling it out give one key.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Hex characters kept from the digest: 64 bits, ample for a cache.
const KEY_HEX_LEN: usize = 16;

/// A cache key: the first 16 hex characters of SHA-256 over the canonical request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for `operation` with `params`: SHA-256 of `operation:` and the canonical JSON
    /// of `params` (the same bytes `normalize(params).to_string()` gives).
    pub fn new(operation: &str, params: &Value) -> Self {
        let mut hash = HashWriter::start(operation);
        write_canonical(&mut hash, params);
        hash.finish()
    }

    /// The key of `params` read at the given scope generations: the same key as
    /// `new(operation, {"generations": {scope: n, ..}, "params": params})`, hashed without
    /// building that object.
    pub fn with_generations(
        operation: &str,
        params: &Value,
        generations: &[(String, i64)],
    ) -> Self {
        let mut hash = HashWriter::start(operation);
        hash.put(b"{\"generations\":{");
        let mut sorted: Vec<&(String, i64)> = generations.iter().collect();
        sorted.sort();
        for (index, (scope, generation)) in sorted.into_iter().enumerate() {
            if index > 0 {
                hash.put(b",");
            }
            write_json(&mut hash, scope);
            hash.put(b":");
            write_json(&mut hash, generation);
        }
        hash.put(b"},\"params\":");
        write_canonical(&mut hash, params);
        hash.put(b"}");
        hash.finish()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical form of a JSON value (see the module docs).
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.trim().to_owned()),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, value)| (name.clone(), normalize(value)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// Feeds the canonical JSON text of `value` to the hash without building it: the hot path
/// of every cached read, where allocating a normalised copy cost more than the L1 lookup.
fn write_canonical(hash: &mut HashWriter, value: &Value) {
    match value {
        Value::String(text) => write_json(hash, text.trim()),
        Value::Array(items) => {
            hash.put(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    hash.put(b",");
                }
                write_canonical(hash, item);
            }
            hash.put(b"]");
        }
        Value::Object(fields) => {
            // Sorted here rather than trusting the map's order, which a serde_json feature
            // enabled anywhere in the build could change.
            let mut present: Vec<(&String, &Value)> = fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .collect();
            present.sort_by(|a, b| a.0.cmp(b.0));
            hash.put(b"{");
            for (index, (name, value)) in present.into_iter().enumerate() {
                if index > 0 {
                    hash.put(b",");
                }
                write_json(hash, name);
                hash.put(b":");
                write_canonical(hash, value);
            }
            hash.put(b"}");
        }
        scalar => write_json(hash, scalar),
    }
}

fn write_json(hash: &mut HashWriter, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(&mut *hash, value).expect("hashing cannot fail to write");
}

/// SHA-256 as an `io::Write`, so serde_json can escape strings straight into it.
struct HashWriter(Sha256);

impl HashWriter {
    fn start(operation: &str) -> Self {
        let mut hash = HashWriter(Sha256::new());
        hash.put(operation.as_bytes());
        hash.put(b":");
        hash
    }

    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self) -> CacheKey {
        let digest = self.0.finalize();
        CacheKey(hex::encode(&digest[..KEY_HEX_LEN / 2]))
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.put(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn order_whitespace_and_nulls_do_not_change_the_key() {
        let a = CacheKey::new(
            "history",
            &json!({"user_id": "ann", "limit": 50, "cursor": null}),
        );
        let b = CacheKey::new("history", &json!({"limit": 50, "user_id": "  ann "}));
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 16);
    }

    #[test]
    fn different_parameters_or_operations_differ() {
        let base = CacheKey::new("history", &json!({"user_id": "ann", "limit": 50}));
        assert_ne!(
            base,
            CacheKey::new("history", &json!({"user_id": "ann", "limit": 10}))
        );
        assert_ne!(
            base,
            CacheKey::new("preferences", &json!({"user_id": "ann", "limit": 50}))
        );
        assert_ne!(
            base,
            CacheKey::new("history", &json!({"user_id": "bob", "limit": 50}))
        );
    }

    #[test]
    fn streaming_matches_the_normalised_text() {
        let params = json!({"q": " a\"b ", "n": [1.5, null, {"z": null, "y": "é"}], "m": null});
        let via_text = {
            let text = format!("op:{}", normalize(&params));
            let digest = Sha256::digest(text.as_bytes());
            hex::encode(&digest[..8])
        };
        assert_eq!(CacheKey::new("op", &params).as_str(), via_text);
    }

    #[test]
    fn generations_fold_in_as_an_object_would() {
        let params = json!({"user_id": "ann"});
        let generations = [
            ("workspace:/w".to_owned(), 3),
            ("conversations:ann".to_owned(), 7),
        ];
        let folded =
            json!({"generations": {"conversations:ann": 7, "workspace:/w": 3}, "params": params});
        assert_eq!(
            CacheKey::with_generations("op", &params, &generations),
            CacheKey::new("op", &folded)
        );
        let bumped = [
            ("workspace:/w".to_owned(), 4),
            ("conversations:ann".to_owned(), 7),
        ];
        assert_ne!(
            CacheKey::with_generations("op", &params, &bumped),
            CacheKey::new("op", &folded)
        );
    }

    #[test]
    fn keys_are_stable_across_builds_and_processes() {
        // A fixed vector: the key must never depend on process state or hash seeds.
        let key = CacheKey::new("op", &json!({"b": [1, " x "], "a": {"z": true, "y": null}}));
        let expected = {
            let digest = Sha256::digest(br#"op:{"a":{"z":true},"b":[1,"x"]}"#);
            hex::encode(&digest[..8])
        };
        assert_eq!(key.as_str(), expected);
    }
}
