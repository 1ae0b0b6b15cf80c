//! `context-store import`: sources streamed into the store through the engine, so imported
//! messages are validated, deduplicated by id, indexed for words and embedded like saved ones.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::{SourceConversation, SourceError, SourceFormat, SourceItem, SourcePreference};
use crate::engine::{Engine, MessageInput, Rfc3339, SaveConversation, SetPreference};

/// Conversations read ahead of the one being saved.
const READ_AHEAD: usize = 16;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub files: Vec<PathBuf>,
    pub format: SourceFormat,
    /// Owner of everything imported; else the file's (JSONL) or the configured user.
    pub user_id: Option<String>,
    /// Read and check everything, save nothing.
    pub dry_run: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub conversations: u64,
    pub messages_stored: u64,
    /// Messages already stored (the same id in the same conversation).
    pub messages_skipped: u64,
    /// Messages with no text in the source, left out.
    pub empty_messages: u64,
    /// Conversations without a message with text, left out.
    pub empty_conversations: u64,
    pub preferences: u64,
    /// Conversations, preferences or files left out, each with where and why.
    pub refused: Vec<Refusal>,
}

#[derive(Debug)]
pub struct Refusal {
    pub position: String,
    pub reason: String,
}

impl ImportSummary {
    pub fn succeeded(&self) -> bool {
        self.refused.is_empty()
    }
}

/// Imports every file; `progress` hears the number of conversations done so far.
pub async fn import(
    engine: &Engine,
    options: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> ImportSummary {
    let mut summary = ImportSummary::default();
    for file in &options.files {
        let (sender, mut receiver) = mpsc::channel(READ_AHEAD);
        let path = file.clone();
        let format = options.format;
        let reader = tokio::task::spawn_blocking(move || {
            super::read_source(&path, format, &mut |item| {
                sender.blocking_send(item).is_ok()
            })
        });
        while let Some(item) = receiver.recv().await {
            let name = file.display();
            match item {
                SourceItem::Conversation(conversation) => {
                    let id = conversation.conversation_id.clone();
                    if let Err(reason) =
                        import_conversation(engine, options, conversation, &mut summary).await
                    {
                        summary.refused.push(Refusal {
                            position: format!("{name}: conversation {id}"),
                            reason,
                        });
                    }
                    progress(summary.conversations);
                }
                SourceItem::Preference(preference) => {
                    let key = preference.key.clone();
                    if let Err(reason) =
                        import_preference(engine, options, preference, &mut summary).await
                    {
                        summary.refused.push(Refusal {
                            position: format!("{name}: preference {key}"),
                            reason,
                        });
                    }
                }
                SourceItem::Unreadable { position, reason } => summary.refused.push(Refusal {
                    position: format!("{name}: {position}"),
                    reason,
                }),
            }
        }
        let finished = reader.await.unwrap_or_else(|error| {
            Err(SourceError::Malformed {
                path: file.clone(),
                position: "reading".into(),
                reason: error.to_string(),
            })
        });
        if let Err(error) = finished {
            summary.refused.push(Refusal {
                position: file.display().to_string(),
                reason: error.to_string(),
            });
        }
    }
    summary
}

/// Saves one conversation in calls of at most the per-call message limit, after checking
/// every call, so a conversation the engine refuses is left out whole.
async fn import_conversation(
    engine: &Engine,
    options: &ImportOptions,
    conversation: SourceConversation,
    summary: &mut ImportSummary,
) -> Result<(), String> {
    let user_id = options.user_id.clone().or(conversation.user_id);
    let per_call = engine.messages_per_call().max(1);
    let mut messages = conversation
        .messages
        .into_iter()
        .map(|message| MessageInput {
            message_id: Some(message.message_id),
            role: message.role,
            content: message.content,
            created_at: message.created_at.map(Rfc3339),
            metadata: Some(message.metadata),
        });
    let mut calls = Vec::new();
    loop {
        let chunk: Vec<MessageInput> = messages.by_ref().take(per_call).collect();
        if chunk.is_empty() && !calls.is_empty() {
            break;
        }
        calls.push(SaveConversation {
            conversation_id: Some(conversation.conversation_id.clone()),
            user_id: user_id.clone(),
            session_id: conversation.session_id.clone(),
            messages: chunk,
            metadata: Some(conversation.metadata.clone()),
        });
    }
    summary.empty_messages += conversation.empty_messages;
    if calls.iter().all(|call| call.messages.is_empty()) {
        summary.empty_conversations += 1;
        return Ok(());
    }
    let now = crate::model::now();
    for call in &calls {
        engine
            .check_save(call, now)
            .map_err(|error| error.to_string())?;
    }
    summary.conversations += 1;
    for call in calls {
        let count = call.messages.len() as u64;
        if options.dry_run {
            summary.messages_stored += count;
            continue;
        }
        let saved = engine
            .save_conversation(call)
            .await
            .map_err(|error| error.to_string())?;
        summary.messages_stored += saved.stored_messages;
        summary.messages_skipped += saved.skipped_messages;
    }
    Ok(())
}

async fn import_preference(
    engine: &Engine,
    options: &ImportOptions,
    preference: SourcePreference,
    summary: &mut ImportSummary,
) -> Result<(), String> {
    let request = SetPreference {
        user_id: options.user_id.clone().or(preference.user_id),
        key: preference.key,
        value: preference.value,
    };
    if !options.dry_run {
        engine
            .set_preference(request)
            .await
            .map_err(|error| error.to_string())?;
    }
    summary.preferences += 1;
    Ok(())
}
