//! One Markdown file per conversation, for people who keep notes in Obsidian or git: front
//! matter with the ids and times, then each message under a heading, fenced so that its text
//! is shown as written.

use std::io::Write;

use crate::engine::ExportedConversation;

pub(super) fn write(
    out: &mut dyn Write,
    conversation: &ExportedConversation,
) -> std::io::Result<()> {
    let header = &conversation.header;
    writeln!(out, "---")?;
    writeln!(
        out,
        "conversation_id: {}",
        yaml_string(&header.conversation_id)
    )?;
    writeln!(out, "user_id: {}", yaml_string(&header.user_id))?;
    if let Some(session) = &header.session_id {
        writeln!(out, "session_id: {}", yaml_string(session))?;
    }
    writeln!(out, "created_at: {}", header.created_at.to_rfc3339())?;
    writeln!(out, "updated_at: {}", header.updated_at.to_rfc3339())?;
    if let Some(title) = header.metadata.get("title").and_then(|t| t.as_str()) {
        writeln!(out, "title: {}", yaml_string(title))?;
    }
    writeln!(out, "messages: {}", conversation.messages.len())?;
    writeln!(out, "---")?;
    for message in &conversation.messages {
        writeln!(out)?;
        writeln!(
            out,
            "## {} · {} · {}",
            message.role,
            message.created_at.to_rfc3339(),
            message.message_id
        )?;
        writeln!(out)?;
        let fence = fence_for(&message.content);
        writeln!(out, "{fence}text")?;
        writeln!(out, "{}", message.content)?;
        writeln!(out, "{fence}")?;
    }
    Ok(())
}

/// A file name for the conversation: its id with anything but letters, digits, `-` and `_`
/// made `_`, so ids from any source make safe, distinct-enough names.
pub(super) fn file_name(conversation_id: &str) -> String {
    let safe: String = conversation_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.md")
}

/// A backtick fence longer than any backtick run in `text`.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_outlasts_every_backtick_run() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_name("chatgpt:ab/../c d"), "chatgpt_ab____c_d.md");
    }
}
