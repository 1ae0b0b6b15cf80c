//! ChatGPT's `conversations.json`: each conversation is a tree of messages (`mapping`, each
//! node naming its parent); the thread the user saw is the branch that ends at
//! `current_node`, read from there up to the root and turned around.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{ExportedFrom, SourceConversation, from_epoch_seconds, placeholder};

/// The namespace of ChatGPT's ids.
const SOURCE: &str = "chatgpt";
use crate::model::Role;

#[derive(Deserialize)]
pub(super) struct Conversation {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    create_time: Option<f64>,
    mapping: HashMap<String, Node>,
    #[serde(default)]
    current_node: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    message: Option<NodeMessage>,
    #[serde(default)]
    parent: Option<String>,
}

#[derive(Deserialize)]
struct NodeMessage {
    id: String,
    author: Author,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    parts: Option<Vec<Value>>,
    #[serde(default)]
    text: Option<String>,
}

pub(super) fn convert(conversation: Conversation) -> Result<SourceConversation, String> {
    let source_id = conversation
        .conversation_id
        .clone()
        .or_else(|| conversation.id.clone())
        .ok_or("no id or conversation_id")?;
    let thread = thread(&conversation)?;
    let mut converted = SourceConversation::exported_from(ExportedFrom {
        source: SOURCE,
        source_id,
        title: conversation.title.clone(),
        created_at: conversation.create_time.and_then(from_epoch_seconds),
    });
    for message in thread {
        converted.push_exported(
            SOURCE,
            &message.id,
            role(&message.author.role)?,
            text(message.content.as_ref()),
            message.create_time.and_then(from_epoch_seconds),
        );
    }
    Ok(converted)
}

/// The messages from the root to `current_node`. Without `current_node`, the deepest leaf
/// stands in for it.
fn thread(conversation: &Conversation) -> Result<Vec<&NodeMessage>, String> {
    let mapping = &conversation.mapping;
    let Some(end) = conversation
        .current_node
        .as_ref()
        .or_else(|| deepest(mapping))
    else {
        return Ok(Vec::new());
    };
    let mut thread = Vec::new();
    let mut at = Some(end);
    while let Some(id) = at {
        let node = mapping
            .get(id)
            .ok_or_else(|| format!("mapping has no node {id:?}"))?;
        if thread.len() > mapping.len() {
            return Err("mapping's parents form a cycle".into());
        }
        if let Some(message) = &node.message {
            thread.push(message);
        }
        at = node.parent.as_ref();
    }
    thread.reverse();
    Ok(thread)
}

fn deepest(mapping: &HashMap<String, Node>) -> Option<&String> {
    let depth = |start: &String| {
        let mut id = start;
        let mut depth = 0;
        while let Some(parent) = mapping.get(id).and_then(|node| node.parent.as_ref()) {
            id = parent;
            depth += 1;
            if depth > mapping.len() {
                break;
            }
        }
        depth
    };
    mapping.keys().max_by_key(|id| (depth(id), id.as_str()))
}

fn role(author: &str) -> Result<Role, String> {
    match author {
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "system" => Ok(Role::System),
        "tool" => Ok(Role::Tool),
        other => Err(format!("unknown author role {other:?}")),
    }
}

/// The text of a message: its text parts joined; a part that is not text becomes a
/// placeholder naming its type.
fn text(content: Option<&Content>) -> String {
    let Some(content) = content else {
        return String::new();
    };
    let kind = content.content_type.as_deref().unwrap_or("text");
    match (kind, &content.parts) {
        ("text" | "multimodal_text", Some(parts)) => parts
            .iter()
            .map(part_text)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        ("code", _) => content.text.clone().unwrap_or_default(),
        (other, _) => placeholder(other),
    }
}

fn part_text(part: &Value) -> String {
    match part {
        Value::String(text) => text.clone(),
        Value::Object(object) => {
            let kind = object
                .get("content_type")
                .and_then(Value::as_str)
                .unwrap_or("attachment");
            placeholder(kind)
        }
        Value::Null => String::new(),
        other => placeholder(&format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conversation(value: Value) -> SourceConversation {
        convert(serde_json::from_value(value).unwrap()).unwrap()
    }

    #[test]
    fn the_branch_that_ends_at_the_current_node_is_the_thread() {
        let converted = conversation(json!({
            "id": "c1", "title": "Trip", "create_time": 1_700_000_000.5,
            "current_node": "b2",
            "mapping": {
                "root": { "message": null, "parent": null },
                "sys": { "parent": "root", "message": { "id": "sys", "author": { "role": "system" },
                    "content": { "content_type": "text", "parts": [""] } } },
                "u1": { "parent": "sys", "message": { "id": "u1", "author": { "role": "user" },
                    "create_time": 1_700_000_001.0,
                    "content": { "content_type": "text", "parts": ["Plan a trip"] } } },
                "a1": { "parent": "u1", "message": { "id": "a1", "author": { "role": "assistant" },
                    "content": { "content_type": "text", "parts": ["First answer"] } } },
                "b2": { "parent": "u1", "message": { "id": "b2", "author": { "role": "assistant" },
                    "content": { "content_type": "multimodal_text",
                        "parts": ["Regenerated", { "content_type": "image_asset_pointer" }] } } },
            }
        }));
        assert_eq!(converted.conversation_id, "chatgpt:c1");
        assert_eq!(converted.metadata["title"], "Trip");
        assert_eq!(converted.empty_messages, 1);
        let texts: Vec<_> = converted
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(
            texts,
            [
                "Plan a trip",
                "Regenerated\n[image_asset_pointer not imported]"
            ]
        );
        assert_eq!(converted.messages[0].message_id, "chatgpt:u1");
        assert_eq!(
            converted.messages[0].created_at.unwrap().to_rfc3339(),
            "2023-11-14T22:13:21+00:00"
        );
    }

    #[test]
    fn content_that_is_not_text_leaves_a_placeholder() {
        let converted = conversation(json!({
            "id": "c2", "current_node": "t",
            "mapping": {
                "t": { "parent": null, "message": { "id": "t", "author": { "role": "tool" },
                    "content": { "content_type": "execution_output", "text": "42" } } },
            }
        }));
        assert_eq!(
            converted.messages[0].content,
            "[execution_output not imported]"
        );
        assert_eq!(converted.messages[0].role, Role::Tool);
    }
}
