//! The opaque cursor of `get_conversation_history`: the keyset position after a conversation.

use super::error::{EngineError, Result};
use crate::model::{ConversationHeader, to_millis};

const PREFIX: &str = "h1.";

#[derive(Debug, PartialEq, Eq)]
pub struct HistoryCursor {
    pub updated_at: i64,
    pub id: String,
}

impl HistoryCursor {
    /// The position just after `header` in newest-first order.
    pub fn after(header: &ConversationHeader) -> Self {
        Self {
            updated_at: to_millis(header.updated_at),
            id: header.conversation_id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        format!("{PREFIX}{}.{}", self.updated_at, self.id)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || {
            EngineError::invalid(
                "cursor",
                "is not a cursor returned by get_conversation_history",
            )
        };
        let rest = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let (time, id) = rest.split_once('.').ok_or_else(invalid)?;
        let updated_at = time.parse().map_err(|_| invalid())?;
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            updated_at,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ids_with_dots() {
        let cursor = HistoryCursor {
            updated_at: 1_764_000_000_000,
            id: "a.b.c".into(),
        };
        assert_eq!(HistoryCursor::parse(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn refuses_foreign_text() {
        for text in ["", "h1.", "h1.x.id", "h1.5.", "zz.5.id"] {
            assert!(HistoryCursor::parse(text).is_err(), "{text}");
        }
    }
}
