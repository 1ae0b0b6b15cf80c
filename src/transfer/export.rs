//! `context-store export`: a user's conversations and preferences as JSONL (one file, or
//! standard output) or Markdown (one file per conversation in a folder).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use super::{
    SourceError,
    jsonl::{self, Line, LineMessage},
    markdown,
};
use crate::engine::{Engine, EngineError, ExportedConversation};

/// Conversations read from the store per page.
const PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Markdown,
}

#[derive(Debug, Default)]
pub struct ExportSummary {
    pub conversations: u64,
    pub messages: u64,
    pub preferences: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Write(#[from] SourceError),
    #[error("--out: Markdown is written as one file per conversation into a folder; name one")]
    NoFolder,
}

impl From<std::io::Error> for ExportError {
    fn from(error: std::io::Error) -> Self {
        Self::Write(SourceError::Write(error))
    }
}

/// Exports `user_id`'s store (the configured user when None) to `out` (stdout when None, for
/// JSONL).
pub async fn export(
    engine: &Engine,
    user_id: Option<&str>,
    format: ExportFormat,
    out: Option<&Path>,
) -> Result<ExportSummary, ExportError> {
    match format {
        ExportFormat::Jsonl => match out {
            Some(path) => {
                let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
                let summary = export_jsonl(engine, user_id, &mut file).await?;
                file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                Ok(summary)
            }
            None => {
                let stdout = std::io::stdout();
                let mut lock = std::io::BufWriter::new(stdout.lock());
                let summary = export_jsonl(engine, user_id, &mut lock).await?;
                lock.flush()?;
                Ok(summary)
            }
        },
        ExportFormat::Markdown => {
            let folder = out.ok_or(ExportError::NoFolder)?;
            export_markdown(engine, user_id, folder).await
        }
    }
}

async fn export_jsonl(
    engine: &Engine,
    user_id: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let mut summary = ExportSummary::default();
    for_each_conversation(engine, user_id, |conversation| {
        summary.conversations += 1;
        summary.messages += conversation.messages.len() as u64;
        jsonl::write_line(out, &conversation_line(conversation))
    })
    .await?;
    let preferences = engine.export_preferences(user_id).await?;
    for preference in preferences.preferences {
        summary.preferences += 1;
        let line = Line::Preference {
            user_id: preferences.user_id.clone(),
            key: preference.key,
            value: preference.value,
            updated_at: Some(preference.updated_at),
        };
        jsonl::write_line(out, &line)?;
    }
    Ok(summary)
}

async fn export_markdown(
    engine: &Engine,
    user_id: Option<&str>,
    folder: &Path,
) -> Result<ExportSummary, ExportError> {
    std::fs::create_dir_all(folder)?;
    let mut summary = ExportSummary::default();
    for_each_conversation(engine, user_id, |conversation| {
        summary.conversations += 1;
        summary.messages += conversation.messages.len() as u64;
        let path: PathBuf = folder.join(markdown::file_name(&conversation.header.conversation_id));
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        markdown::write(&mut file, conversation)?;
        file.flush()
    })
    .await?;
    Ok(summary)
}

/// Calls `each` for every conversation of the user, newest first, a page at a time.
async fn for_each_conversation(
    engine: &Engine,
    user_id: Option<&str>,
    mut each: impl FnMut(&ExportedConversation) -> std::io::Result<()>,
) -> Result<(), ExportError> {
    let mut after = None;
    loop {
        let page = engine
            .export_conversations(user_id, after.as_ref(), PAGE)
            .await?;
        for conversation in &page.conversations {
            each(conversation)?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

fn conversation_line(conversation: &ExportedConversation) -> Line {
    let header = &conversation.header;
    Line::Conversation {
        conversation_id: header.conversation_id.clone(),
        user_id: header.user_id.clone(),
        session_id: header.session_id.clone(),
        created_at: Some(header.created_at),
        updated_at: Some(header.updated_at),
        metadata: header.metadata.clone(),
        messages: conversation
            .messages
            .iter()
            .map(|message| LineMessage {
                message_id: message.message_id.clone(),
                role: message.role,
                content: message.content.clone(),
                created_at: Some(message.created_at),
                metadata: message.metadata.clone(),
            })
            .collect(),
    }
}
