//! Deterministic cache keys, as the design's `generate_cache_key`: the operation and its
//! normalised parameters as canonical JSON, hashed with SHA-256, 16 hex characters.
//!
//! Normalised means: object keys sorted (serde_json's map is ordered), strings trimmed, and
//! null fields dropped so that an omitted optional equals an explicit null. Defaults are
//! filled in by the caller before it builds the parameters, so that omitting a default and
//! spelling it out give one key.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Hex characters kept from the digest: 64 bits, ample for a cache.
const KEY_HEX_LEN: usize = 16;

/// A cache key: the first 16 hex characters of SHA-256 over the canonical request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for `operation` with `params`.
    pub fn new(operation: &str, params: &Value) -> Self {
        let canonical = format!("{operation}:{}", normalize(params));
        let digest = Sha256::digest(canonical.as_bytes());
        let mut hex = String::with_capacity(KEY_HEX_LEN);
        for byte in &digest[..KEY_HEX_LEN / 2] {
            write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
        }
        Self(hex)
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
    fn keys_are_stable_across_builds_and_processes() {
        // A fixed vector: the key must never depend on process state or hash seeds.
        let key = CacheKey::new("op", &json!({"b": [1, " x "], "a": {"z": true, "y": null}}));
        let expected = {
            let digest = Sha256::digest(br#"op:{"a":{"z":true},"b":[1,"x"]}"#);
            digest[..8]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        };
        assert_eq!(key.as_str(), expected);
    }
}
