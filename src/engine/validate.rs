//! Checks on caller-supplied values, each naming the field and the limit it broke.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, de::Error as _};

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
/// How far ahead of this machine's clock a caller's time may be: clocks disagree by minutes
/// and time zones get mixed up by hours, but a date days ahead is a mistake.
pub const MAX_FUTURE: Duration = Duration::days(1);
/// What a date error shows the caller.
const RFC3339_EXAMPLE: &str = "expected RFC 3339, e.g. 2024-01-02T03:04:05Z";

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

/// A time no more than [`MAX_FUTURE`] after `now`.
pub fn not_future(field: &str, value: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if value > now + MAX_FUTURE {
        return Err(EngineError::invalid(
            field,
            format!(
                "{} is more than a day in the future (now is {})",
                value.to_rfc3339(),
                now.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// A caller's time, read as RFC 3339 with an example in the error: chrono's own errors
/// ("premature end of input") do not say what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| Rfc3339(time.with_timezone(&Utc)))
            .map_err(|_| D::Error::custom(format!("{text:?} is not a date: {RFC3339_EXAMPLE}")))
    }
}

impl JsonSchema for Rfc3339 {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        DateTime::<Utc>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        DateTime::<Utc>::json_schema(generator)
    }
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
    fn times_a_day_ahead_are_refused() {
        let now = Utc::now();
        assert!(not_future("created_at", now + Duration::hours(23), now).is_ok());
        assert!(not_future("created_at", now - Duration::days(3650), now).is_ok());
        let error = message(not_future("created_at", now + Duration::hours(25), now));
        assert!(error.starts_with("created_at: "), "{error}");
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_is_shown_an_example() {
        #[derive(Debug, serde::Deserialize)]
        struct Dated {
            #[allow(dead_code)]
            at: Option<Rfc3339>,
        }
        let parse = |value| serde_json::from_value::<Dated>(value);
        assert!(parse(serde_json::json!({"at": "2024-01-02T03:04:05+02:00"})).is_ok());
        assert!(parse(serde_json::json!({"at": null})).is_ok());
        assert!(parse(serde_json::json!({})).is_ok());
        let error = parse(serde_json::json!({"at": "2024-01-02"})).unwrap_err();
        assert!(error.to_string().contains(RFC3339_EXAMPLE), "{error}");
    }

    #[test]
    fn counts_default_and_cap() {
        assert_eq!(count("limit", None, 50, 500).unwrap(), 50);
        assert!(message(count("limit", Some(501), 50, 500)).contains("limit is 500"));
        assert!(count("limit", Some(0), 50, 500).is_err());
    }
}
