//! Conversations in and out: reading ChatGPT and Claude data exports (or the zip archives
//! that hold them) and the project's own JSONL, and writing JSONL and Markdown.
//!
//! Sources are read as a stream, one conversation at a time, on a blocking thread that hands
//! each to the importer through a bounded channel: memory stays bounded by the largest
//! conversation, not by the file. A conversation is converted whole before any of it is
//! saved, so one that cannot be read is left out entirely, never half imported. Ids are
//! namespaced by source (`chatgpt:`, `claude:`), so the same export imported twice stores
//! nothing the second time.

mod chatgpt;
mod claude;
mod export;
mod import;
mod jsonl;
mod markdown;

use std::{
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use self::{
    export::{ExportError, ExportFormat, ExportSummary, export},
    import::{ImportOptions, ImportSummary, Refusal, import},
};
use crate::model::{Metadata, Role};

/// The format of a file to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceFormat {
    /// Decide from the file's first bytes.
    Auto,
    /// `conversations.json` of a ChatGPT data export.
    Chatgpt,
    /// `conversations.json` of a Claude data export.
    Claude,
    /// This project's own export (`context-store export --format jsonl`).
    Jsonl,
}

/// One conversation read from a source, ready to save.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConversation {
    pub conversation_id: String,
    /// The owner named by the source (JSONL only); `--user` or the configured user otherwise.
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub metadata: Metadata,
    pub messages: Vec<SourceMessage>,
    /// Messages the source holds with no text at all, left out.
    pub empty_messages: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub message_id: String,
    pub role: Role,
    pub content: String,
    pub created_at: Option<DateTime<Utc>>,
    pub metadata: Metadata,
}

/// The fields a ChatGPT or Claude export gives a conversation, under its source's name.
struct ExportedFrom<'a> {
    /// `chatgpt` or `claude`: the namespace of the conversation's and messages' ids.
    source: &'a str,
    source_id: String,
    title: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

impl SourceConversation {
    /// An empty conversation from another service's export: ids namespaced by the source,
    /// the source's id, title and time in the metadata.
    fn exported_from(from: ExportedFrom<'_>) -> Self {
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), Value::from(from.source));
        metadata.insert("source_id".into(), Value::from(from.source_id.as_str()));
        if let Some(title) = from.title.filter(|title| !title.is_empty()) {
            metadata.insert("title".into(), Value::from(title));
        }
        if let Some(created) = from.created_at {
            metadata.insert("source_created_at".into(), serde_json::json!(created));
        }
        Self {
            conversation_id: format!("{}:{}", from.source, from.source_id),
            user_id: None,
            session_id: None,
            metadata,
            messages: Vec::new(),
            empty_messages: 0,
        }
    }

    /// Appends a message under the source's namespace, or counts it as empty when it has no
    /// text.
    fn push_exported(
        &mut self,
        source: &str,
        id: &str,
        role: Role,
        content: String,
        created_at: Option<DateTime<Utc>>,
    ) {
        if content.trim().is_empty() {
            self.empty_messages += 1;
            return;
        }
        self.messages.push(SourceMessage {
            message_id: format!("{source}:{id}"),
            role,
            content,
            created_at,
            metadata: Metadata::new(),
        });
    }
}

/// A preference read from a JSONL export.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePreference {
    pub user_id: Option<String>,
    pub key: String,
    pub value: Value,
}

/// What a source yields, in file order.
#[derive(Debug)]
pub enum SourceItem {
    Conversation(SourceConversation),
    Preference(SourcePreference),
    /// An entry that could not be read; the rest of the file goes on.
    Unreadable {
        position: String,
        reason: String,
    },
}

/// A file that cannot be read on: what stops the import of the rest of it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a ChatGPT, Claude or context-store export (say which with --format)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {position}: {reason}")]
    Malformed {
        path: PathBuf,
        position: String,
        reason: String,
    },
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Reads `path` and hands each item to `sink`, stopping early when it returns false (the
/// importer went away). Runs on a blocking thread.
fn read_source(
    path: &Path,
    format: SourceFormat,
    sink: &mut dyn FnMut(SourceItem) -> bool,
) -> Result<(), SourceError> {
    let format = match format {
        SourceFormat::Auto => detect(path)?,
        known => known,
    };
    match format {
        SourceFormat::Chatgpt => read_conversations(path, chatgpt::convert, sink),
        SourceFormat::Claude => read_conversations(path, claude::convert, sink),
        SourceFormat::Jsonl | SourceFormat::Auto => jsonl::read(path, sink),
    }
}

/// The format of `path` from its first kilobytes: a JSON array of objects with `mapping` is
/// ChatGPT's, one with `chat_messages` Claude's, an object per line ours.
fn detect(path: &Path) -> Result<SourceFormat, SourceError> {
    let mut head = vec![0; 64 * 1024];
    let read = with_source(path, |reader| {
        let mut filled = 0;
        while filled < head.len() {
            match reader.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(source) => {
                    return Err(SourceError::Open {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(filled)
    })?;
    let head = String::from_utf8_lossy(&head[..read]);
    let trimmed = head.trim_start();
    if trimmed.starts_with('{') {
        return Ok(SourceFormat::Jsonl);
    }
    if let Some(elements) = trimmed.strip_prefix('[') {
        let chatgpt = head.find("\"mapping\"");
        let claude = head.find("\"chat_messages\"");
        return match (chatgpt, claude) {
            (Some(a), Some(b)) if b < a => Ok(SourceFormat::Claude),
            (Some(_), _) => Ok(SourceFormat::Chatgpt),
            (None, Some(_)) => Ok(SourceFormat::Claude),
            (None, None) if elements.trim_start().starts_with(']') => Ok(SourceFormat::Chatgpt),
            (None, None) => Err(SourceError::UnknownFormat {
                path: path.to_owned(),
            }),
        };
    }
    Err(SourceError::UnknownFormat {
        path: path.to_owned(),
    })
}

/// Calls `read` with the bytes of `path`, or, when it is a zip archive (a data export as
/// downloaded), with those of the `conversations.json` (else the only `.json` or `.jsonl`
/// file) inside it, inflated as they are read.
fn with_source<T>(
    path: &Path,
    read: impl FnOnce(&mut dyn BufRead) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    let opened = |source| SourceError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(opened)?;
    let mut magic = [0; 4];
    let zipped = file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
    file.seek(SeekFrom::Start(0)).map_err(opened)?;
    if !zipped {
        return read(&mut BufReader::with_capacity(1 << 20, file));
    }
    let malformed = |reason: String| SourceError::Malformed {
        path: path.to_owned(),
        position: "zip archive".into(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| malformed(e.to_string()))?;
    let name = export_in_archive(&archive).ok_or_else(|| {
        malformed("holds no conversations.json (nor a single .json or .jsonl file)".into())
    })?;
    let entry = archive
        .by_name(&name)
        .map_err(|e| malformed(e.to_string()))?;
    read(&mut BufReader::with_capacity(1 << 20, entry))
}

/// The archive's `conversations.json` at any depth, else its only JSON or JSONL file.
fn export_in_archive<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Option<String> {
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|name| name.ok().map(|name| name.into_owned()))
        .collect();
    let is_export = |name: &&String| name.rsplit('/').next() == Some("conversations.json");
    if let Some(found) = names.iter().find(is_export) {
        return Some(found.clone());
    }
    let json: Vec<&String> = names
        .iter()
        .filter(|name| name.ends_with(".json") || name.ends_with(".jsonl"))
        .collect();
    (json.len() == 1).then(|| json[0].clone())
}

/// Streams the elements of the JSON array in `path` into `each` as values of `T`, one at a
/// time. An element that is valid JSON but not a `T` is reported through `unreadable`; a
/// syntax error ends the stream with its line and column.
fn stream_array<T: serde::de::DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(usize, Result<T, serde_json::Error>) -> bool,
) -> Result<(), SourceError> {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};

    struct Elements<'a, T, F> {
        each: &'a mut F,
        marker: std::marker::PhantomData<T>,
    }

    impl<'de, T, F> Visitor<'de> for Elements<'_, T, F>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut(usize, Result<T, serde_json::Error>) -> bool,
    {
        type Value = ();

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON array of conversations")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            // Each element is read as a JSON value first: a value that is no `T` is one
            // unreadable conversation, while a syntax error stops the file.
            while let Some(value) = seq.next_element::<Value>()? {
                let parsed = serde_json::from_value(value);
                if !(self.each)(index, parsed) {
                    return Ok(());
                }
                index += 1;
            }
            Ok(())
        }
    }

    with_source(path, |reader| {
        let mut deserializer = serde_json::Deserializer::from_reader(reader);
        let mut last_index = 0usize;
        let mut counting = |index: usize, item: Result<T, serde_json::Error>| {
            last_index = index + 1;
            each(index, item)
        };
        deserializer
            .deserialize_seq(Elements {
                each: &mut counting,
                marker: std::marker::PhantomData,
            })
            .map_err(|error| SourceError::Malformed {
                path: path.to_owned(),
                position: format!(
                    "conversation #{last_index} (line {}, column {})",
                    error.line(),
                    error.column()
                ),
                reason: error.to_string(),
            })
    })
}

/// Streams a JSON array of conversations of type `T`, converting each with `convert`; one
/// that fails to convert is reported as unreadable and the rest goes on.
fn read_conversations<T: serde::de::DeserializeOwned>(
    path: &Path,
    convert: fn(T) -> Result<SourceConversation, String>,
    sink: &mut dyn FnMut(SourceItem) -> bool,
) -> Result<(), SourceError> {
    stream_array::<T>(path, |index, parsed| {
        let item = match parsed.map_err(|e| e.to_string()).and_then(convert) {
            Ok(conversation) => SourceItem::Conversation(conversation),
            Err(reason) => SourceItem::Unreadable {
                position: format!("conversation #{index}"),
                reason,
            },
        };
        sink(item)
    })
}

/// Seconds since the epoch, as ChatGPT writes times, to a UTC time.
fn from_epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    let millis = (seconds * 1000.0).round();
    (millis.is_finite() && millis >= 0.0)
        .then(|| DateTime::from_timestamp_millis(millis as i64))
        .flatten()
}

/// A one-line stand-in for content that is not text, so that nothing disappears silently.
fn placeholder(kind: &str) -> String {
    format!("[{kind} not imported]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let chatgpt = write("a.json", r#"[{"title": "t", "mapping": {}}]"#);
        let claude = write("b.json", r#" [ {"uuid": "u", "chat_messages": []}]"#);
        let jsonl = write("c.jsonl", "{\"type\":\"conversation\"}\n");
        let other = write("d.json", "hello");
        assert_eq!(detect(&chatgpt).unwrap(), SourceFormat::Chatgpt);
        assert_eq!(detect(&claude).unwrap(), SourceFormat::Claude);
        assert_eq!(detect(&jsonl).unwrap(), SourceFormat::Jsonl);
        assert!(detect(&other).is_err());
    }

    #[test]
    fn a_truncated_array_names_the_conversation_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.json");
        std::fs::write(&path, r#"[{"a": 1}, {"a": 2}, {"a": "#).unwrap();
        let mut seen = Vec::new();
        let error = stream_array::<Value>(&path, |index, item| {
            seen.push((index, item.unwrap()));
            true
        })
        .unwrap_err();
        assert_eq!(seen.len(), 2);
        let text = error.to_string();
        assert!(text.contains("conversation #2 (line 1"), "{text}");
    }
}
