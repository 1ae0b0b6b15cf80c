//! The identity check on values read from Redis: a value that names a user is served only
//! to a request for that user.
//!
//! Sealed values cannot be moved between keys, so this guards against what the seal cannot
//! see: a value stored under the right key by a process with a fault, or a secret leaked.

use serde::Deserialize;
use serde_json::Value;

/// The one field looked at; every other field of the value is skipped unread.
#[derive(Deserialize)]
struct Owner {
    user_id: Option<String>,
}

/// False when the request names a `user_id` and the value (its msgpack, `packed`) is a map
/// whose top-level `user_id` names another user; true otherwise.
pub fn matches(params: &Value, packed: &[u8]) -> bool {
    let Some(requested) = params.get("user_id").and_then(Value::as_str) else {
        return true;
    };
    if !is_map(packed) {
        return true;
    }
    match rmp_serde::from_slice::<Owner>(packed) {
        Ok(Owner {
            user_id: Some(owner),
        }) => owner == requested,
        Ok(Owner { user_id: None }) => true,
        Err(_) => false,
    }
}

/// Whether msgpack `packed` starts with a map (fixmap, map 16 or map 32).
fn is_map(packed: &[u8]) -> bool {
    matches!(packed.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn packed(value: &Value) -> Vec<u8> {
        rmp_serde::to_vec_named(value).unwrap()
    }

    #[test]
    fn a_value_naming_another_user_does_not_match() {
        let ann = packed(&json!({"user_id": "ann", "preferences": {"theme": "dark"}}));
        assert!(matches(&json!({"user_id": "ann"}), &ann));
        assert!(!matches(&json!({"user_id": "bob"}), &ann));
    }

    #[test]
    fn values_or_requests_without_a_user_match() {
        let anonymous = packed(&json!({"results": ["ann"]}));
        assert!(matches(&json!({"user_id": "bob"}), &anonymous));
        let vector = packed(&json!(["ann", "bob"]));
        assert!(matches(&json!({"user_id": "bob"}), &vector));
        let ann = packed(&json!({"user_id": "ann"}));
        assert!(matches(&json!({"query": "x"}), &ann));
    }
}
