//! The records that the store keeps and the engine hands out: conversations, messages, preferences.
//!
//! A leaf module: every layer may use it, it uses none of them.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form JSON object attached to a conversation or a message.
pub type Metadata = Map<String, Value>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "system" => Ok(Role::System),
            "tool" => Ok(Role::Tool),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// Id of the message, unique within its conversation.
    pub message_id: String,
    /// Position in the conversation, from 0.
    pub seq: i64,
    pub role: Role,
    pub content: String,
    /// When the message was written (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    pub metadata: Metadata,
}

/// A stored conversation without its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationHeader {
    pub conversation_id: String,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Time of the last save that added messages or metadata.
    pub updated_at: DateTime<Utc>,
    pub metadata: Metadata,
    /// Messages stored in the conversation.
    pub total_messages: i64,
}

/// A user's preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Preference {
    pub key: String,
    #[schemars(schema_with = "preference_value_schema")]
    pub value: Value,
    pub updated_at: DateTime<Utc>,
}

/// The generation of a cache scope after an invalidation, stamped with the database-wide
/// sequence number of that invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGeneration {
    pub scope: String,
    pub generation: i64,
    pub seq: i64,
}

/// Who a database is, to a Redis cache it may share with other deployments: made at random
/// with the database and kept in it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// Folded into every Redis key, so that no deployment reads another's entries.
    pub store_id: String,
    /// The key of the MAC on every value written to Redis, known only to processes that
    /// open this database.
    pub cache_secret: Vec<u8>,
}

impl std::fmt::Debug for StoreIdentity {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreIdentity")
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

/// The current time at the millisecond precision the store keeps, so that what a call
/// returns equals what a later read returns.
/// The schema of a preference value: any JSON value but `null`, spelled as one `type` per
/// branch, since clients refuse a schema that constrains nothing.
pub fn preference_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Any JSON value but null.",
        "anyOf": [
            { "type": "string" },
            { "type": "number" },
            { "type": "boolean" },
            { "type": "object" },
            { "type": "array" }
        ]
    })
}

pub fn now() -> DateTime<Utc> {
    from_millis(to_millis(Utc::now()))
}

/// Milliseconds since the Unix epoch, as stored in SQLite.
pub fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch rather than fail a read.
pub fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_text() {
        for role in [Role::User, Role::Assistant, Role::System, Role::Tool] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("robot".parse::<Role>().is_err());
    }

    #[test]
    fn times_round_trip_through_millis() {
        let now = from_millis(to_millis(Utc::now()));
        assert_eq!(from_millis(to_millis(now)), now);
    }
}
