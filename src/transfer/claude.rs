//! Claude's `conversations.json`: conversations with their `chat_messages` in order, each
//! with a `sender` (`human` or `assistant`), its `text` or `content` blocks, and attachments
//! whose extracted text is kept under the message.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ExportedFrom, SourceConversation, placeholder};

/// The namespace of Claude's ids.
const SOURCE: &str = "claude";
use crate::model::Role;

#[derive(Deserialize)]
pub(super) struct Conversation {
    uuid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    chat_messages: Vec<ChatMessage>,
}

#[derive(Deserialize)]
struct ChatMessage {
    uuid: String,
    sender: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Option<Vec<Block>>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    extracted_content: Option<String>,
}

pub(super) fn convert(conversation: Conversation) -> Result<SourceConversation, String> {
    let mut converted = SourceConversation::exported_from(ExportedFrom {
        source: SOURCE,
        source_id: conversation.uuid,
        title: conversation.name,
        created_at: conversation.created_at,
    });
    for message in conversation.chat_messages {
        let role = match message.sender.as_str() {
            "human" | "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(format!(
                    "message {}: unknown sender {other:?}",
                    message.uuid
                ));
            }
        };
        let content = text(&message);
        converted.push_exported(SOURCE, &message.uuid, role, content, message.created_at);
    }
    Ok(converted)
}

/// The content blocks' text (a placeholder for blocks that are not text), else `text`;
/// then each attachment's extracted text under a line naming the file.
fn text(message: &ChatMessage) -> String {
    let blocks = message.content.as_deref().unwrap_or_default();
    let mut parts: Vec<String> = if blocks.is_empty() {
        message.text.iter().cloned().collect()
    } else {
        blocks.iter().map(block_text).collect()
    };
    for attachment in &message.attachments {
        let Some(extracted) = attachment
            .extracted_content
            .as_deref()
            .filter(|text| !text.is_empty())
        else {
            continue;
        };
        let name = attachment.file_name.as_deref().unwrap_or("attachment");
        parts.push(format!("[attachment {name}]\n{extracted}"));
    }
    parts.retain(|part| !part.is_empty());
    parts.join("\n\n")
}

fn block_text(block: &Block) -> String {
    match (block.kind.as_str(), &block.text) {
        ("text", Some(text)) => text.clone(),
        (kind, _) => placeholder(kind),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_keep_their_order_blocks_and_attachments() {
        let converted = convert(
            serde_json::from_value(json!({
                "uuid": "k1", "name": "Naming", "created_at": "2024-05-01T10:00:00Z",
                "chat_messages": [
                    { "uuid": "m1", "sender": "human", "text": "Name my cat",
                      "created_at": "2024-05-01T10:00:01Z",
                      "attachments": [{ "file_name": "cats.txt", "extracted_content": "Tom, Kit" }] },
                    { "uuid": "m2", "sender": "assistant", "text": "ignored when blocks exist",
                      "content": [{ "type": "text", "text": "Mochi" }, { "type": "tool_use" }] },
                    { "uuid": "m3", "sender": "human", "text": "" },
                ]
            }))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(converted.conversation_id, "claude:k1");
        assert_eq!(converted.metadata["title"], "Naming");
        assert_eq!(converted.empty_messages, 1);
        assert_eq!(
            converted.messages[0].content,
            "Name my cat\n\n[attachment cats.txt]\nTom, Kit"
        );
        assert_eq!(
            converted.messages[1].content,
            "Mochi\n\n[tool_use not imported]"
        );
        assert_eq!(converted.messages[1].message_id, "claude:m2");
    }
}
