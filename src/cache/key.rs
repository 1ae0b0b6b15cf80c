//! Deterministic cache keys, as the design's `generate_cache_key`: the operation and its
//! normalised parameters as canonical JSON, hashed with SHA-256, 16 hex characters.
//!
//! Normalised means: object keys sorted (serde_json's map is ordered) and null fields dropped
//! so that an omitted optional equals an explicit null. Strings are kept byte for byte: the
//! store tells `"theme"` from `"theme "`, so their keys must differ too. Defaults are filled in
//! by the caller before it builds the parameters, so that omitting a default and spelling it
//! out give one key.

use std::cell::RefCell;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Hex characters kept from the digest: 64 bits, ample for a cache.
const KEY_HEX_LEN: usize = 16;
/// A canonical text buffer grown past this is released after use, so one huge request does
/// not pin its memory on a worker thread.
const KEPT_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    /// The canonical text of the request being keyed, reused: every cached read derives a
    /// key, and SHA-256 over one buffer beats many small updates and an allocation.
    static CANONICAL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A cache key: the first 16 hex characters of SHA-256 over the canonical request, inline
/// (no allocation, cheap to hash and copy).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; KEY_HEX_LEN]);

impl CacheKey {
    /// The key for `operation` with `params`: SHA-256 of `operation:` and the canonical JSON
    /// of `params` (the same bytes `normalize(params).to_string()` gives).
    pub fn new(operation: &str, params: &Value) -> Self {
        digest_of(operation, |text| write_canonical(text, params))
    }

    /// The key of `params` read at the given scope generations: the same key as
    /// `new(operation, {"generations": {scope: n, ..}, "params": params})`, hashed without
    /// building that object.
    pub fn with_generations(
        operation: &str,
        params: &Value,
        generations: &[(String, i64)],
    ) -> Self {
        digest_of(operation, |text| {
            text.extend_from_slice(b"{\"generations\":{");
            let mut sorted: Vec<&(String, i64)> = generations.iter().collect();
            sorted.sort();
            for (index, (scope, generation)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    text.push(b',');
                }
                write_json(text, scope);
                text.push(b':');
                write_json(text, generation);
            }
            text.extend_from_slice(b"},\"params\":");
            write_canonical(text, params);
            text.push(b'}');
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a key is hex")
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({})", self.as_str())
    }
}

/// The canonical form of a JSON value (see the module docs).
pub fn normalize(value: &Value) -> Value {
    match value {
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

/// SHA-256 of `operation:` followed by what `write` puts in the thread's buffer.
fn digest_of(operation: &str, write: impl FnOnce(&mut Vec<u8>)) -> CacheKey {
    CANONICAL.with_borrow_mut(|text| {
        text.clear();
        text.extend_from_slice(operation.as_bytes());
        text.push(b':');
        write(text);
        let digest = Sha256::digest(text.as_slice());
        if text.capacity() > KEPT_BUFFER_BYTES {
            *text = Vec::new();
        }
        let mut key = [0u8; KEY_HEX_LEN];
        hex::encode_to_slice(&digest[..KEY_HEX_LEN / 2], &mut key)
            .expect("the key holds two hex characters per byte");
        CacheKey(key)
    })
}

/// Writes the canonical JSON text of `value` without building a normalised copy: the hot
/// path of every cached read.
fn write_canonical(text: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Array(items) => {
            text.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    text.push(b',');
                }
                write_canonical(text, item);
            }
            text.push(b']');
        }
        Value::Object(fields) => {
            text.push(b'{');
            let mut first = true;
            let mut write_field = |text: &mut Vec<u8>, name: &String, value: &Value| {
                if !std::mem::take(&mut first) {
                    text.push(b',');
                }
                write_json(text, name);
                text.push(b':');
                write_canonical(text, value);
            };
            let present = fields.iter().filter(|(_, value)| !value.is_null());
            // serde_json's map is sorted unless a feature enabled anywhere in the build makes
            // it keep insertion order; sort only then.
            if fields.keys().is_sorted() {
                present.for_each(|(name, value)| write_field(text, name, value));
            } else {
                let mut sorted: Vec<(&String, &Value)> = present.collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                sorted
                    .into_iter()
                    .for_each(|(name, value)| write_field(text, name, value));
            }
            text.push(b'}');
        }
        scalar => write_json(text, scalar),
    }
}

fn write_json(text: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(text, value).expect("writing JSON to memory cannot fail");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn order_and_nulls_do_not_change_the_key() {
        let a = CacheKey::new(
            "history",
            &json!({"user_id": "ann", "limit": 50, "cursor": null}),
        );
        let b = CacheKey::new("history", &json!({"limit": 50, "user_id": "ann"}));
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 16);
    }

    #[test]
    fn strings_differing_by_whitespace_differ() {
        let plain = CacheKey::new("preferences", &json!({"keys": ["theme"]}));
        for spaced in ["theme ", " theme", "theme\t"] {
            assert_ne!(
                plain,
                CacheKey::new("preferences", &json!({"keys": [spaced]})),
                "{spaced:?}"
            );
        }
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
            let digest = Sha256::digest(br#"op:{"a":{"z":true},"b":[1," x "]}"#);
            hex::encode(&digest[..8])
        };
        assert_eq!(key.as_str(), expected);
    }
}
