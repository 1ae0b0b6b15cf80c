//! The project's own export format: one JSON object per line, a conversation with all its
//! messages, or a preference. `export` writes it and `import` reads it back to the same
//! conversations, message ids, order, content, metadata and preferences.

use std::{io::Write, path::Path};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    SourceConversation, SourceError, SourceItem, SourceMessage, SourcePreference, with_source,
};
use crate::model::{Metadata, Role};

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Line {
    Conversation {
        conversation_id: String,
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_at: Option<DateTime<Utc>>,
        #[serde(default)]
        metadata: Metadata,
        messages: Vec<LineMessage>,
    },
    Preference {
        user_id: String,
        key: String,
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LineMessage {
    pub message_id: String,
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub metadata: Metadata,
}

pub(super) fn write_line(out: &mut dyn Write, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

pub(super) fn read(
    path: &Path,
    sink: &mut dyn FnMut(SourceItem) -> bool,
) -> Result<(), SourceError> {
    with_source(path, |reader| {
        for (index, line) in std::io::BufRead::lines(reader).enumerate() {
            let line = line.map_err(|error| SourceError::Malformed {
                path: path.to_owned(),
                position: format!("line {}", index + 1),
                reason: error.to_string(),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let item = match serde_json::from_str::<Line>(&line) {
                Ok(parsed) => into_item(parsed),
                Err(error) => SourceItem::Unreadable {
                    position: format!("line {}", index + 1),
                    reason: error.to_string(),
                },
            };
            if !sink(item) {
                break;
            }
        }
        Ok(())
    })
}

fn into_item(line: Line) -> SourceItem {
    match line {
        Line::Conversation {
            conversation_id,
            user_id,
            session_id,
            metadata,
            messages,
            ..
        } => SourceItem::Conversation(SourceConversation {
            conversation_id,
            user_id: Some(user_id),
            session_id,
            metadata,
            messages: messages
                .into_iter()
                .map(|message| SourceMessage {
                    message_id: message.message_id,
                    role: message.role,
                    content: message.content,
                    created_at: message.created_at,
                    metadata: message.metadata,
                })
                .collect(),
            empty_messages: 0,
        }),
        Line::Preference {
            user_id,
            key,
            value,
            ..
        } => SourceItem::Preference(SourcePreference {
            user_id: Some(user_id),
            key,
            value,
        }),
    }
}
