//! Checks on caller-supplied values, each naming the field and the limit it broke.

use super::error::{EngineError, Result};
use crate::model::Metadata;

/// Longest id (conversation, message, user, session), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest preference key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Largest metadata object or preference value, in bytes of JSON.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// An id: 1 to [`MAX_ID_BYTES`] bytes, no control characters, not only white space.
pub fn id(field: &str, value: &str) -> Result<()> {
    bounded_text(field, value, MAX_ID_BYTES)
}

pub fn key(field: &str, value: &str) -> Result<()> {
    bounded_text(field, value, MAX_KEY_BYTES)
}

pub fn path(field: &str, value: &str) -> Result<()> {
    bounded_text(field, value, MAX_PATH_BYTES)
}

fn bounded_text(field: &str, value: &str, max_bytes: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(EngineError::invalid(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(EngineError::invalid(
            field,
            format!("is {} bytes; the limit is {max_bytes}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A JSON value no larger than [`MAX_JSON_BYTES`] once serialised.
pub fn json_size(field: &str, value: &impl serde::Serialize) -> Result<()> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_JSON_BYTES {
        return Err(EngineError::invalid(
            field,
            format!("is {size} bytes of JSON; the limit is {MAX_JSON_BYTES}"),
        ));
    }
    Ok(())
}

pub fn metadata(field: &str, value: Option<&Metadata>) -> Result<()> {
    value.map_or(Ok(()), |metadata| json_size(field, metadata))
}

/// A count within `1..=max`; `None` takes `default`.
pub fn count(field: &str, value: Option<u32>, default: u32, max: u32) -> Result<u32> {
    match value.unwrap_or(default) {
        0 => Err(EngineError::invalid(
            field,
            format!("must be between 1 and {max}"),
        )),
        n if n > max => Err(EngineError::invalid(
            field,
            format!("is {n}; the limit is {max}"),
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(id("user_id", "alice").is_ok());
        assert_eq!(message(id("user_id", " ")), "user_id: must not be empty");
        assert!(message(id("user_id", &"x".repeat(129))).contains("limit is 128"));
        assert!(message(id("session_id", "a\nb")).starts_with("session_id:"));
    }

    #[test]
    fn counts_default_and_cap() {
        assert_eq!(count("limit", None, 50, 500).unwrap(), 50);
        assert!(message(count("limit", Some(501), 50, 500)).contains("limit is 500"));
        assert!(count("limit", Some(0), 50, 500).is_err());
    }
}
