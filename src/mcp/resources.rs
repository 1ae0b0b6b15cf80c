//! MCP resources, prompts and completions over the engine: `conversation://` transcripts,
//! `document://` workspace files, the `with_context` and `continue_conversation` prompts.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rmcp::{
    ErrorData,
    model::{
        CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, MetaObject, Prompt, PromptArgument,
        PromptMessage, PromptReference, ReadResourceResult, Reference, Resource, ResourceContents,
        ResourceTemplate, ResourceTemplateReference, Role as PromptRole,
    },
};
use serde_json::{Map, Value, json};

use super::error::protocol_error;
use crate::{
    engine::{Engine, GetContext, GetConversation, ResourceEntry},
    model::Role,
};

pub const CONVERSATION_TEMPLATE: &str = "conversation://{conversation_id}";
pub const DOCUMENT_TEMPLATE: &str = "document://{workspace}/{path}";
/// The `health` figures in Prometheus text format.
pub const METRICS_URI: &str = "stats://metrics";
const PROMETHEUS_MIME: &str = "text/plain; version=0.0.4";
const CONVERSATION_SCHEME: &str = "conversation://";
const DOCUMENT_SCHEME: &str = "document://";
/// Resources per `resources/list` page.
const PAGE: u32 = 100;
/// Messages `continue_conversation` replays.
const REPLAYED_MESSAGES: u32 = 50;

/// Everything but unreserved characters is escaped in an id or a path segment.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn conversation_uri(id: &str) -> String {
    format!("{CONVERSATION_SCHEME}{}", utf8_percent_encode(id, ESCAPED))
}

pub fn document_uri(workspace: &str, path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| utf8_percent_encode(segment, ESCAPED).to_string())
        .collect();
    format!(
        "{DOCUMENT_SCHEME}{}/{}",
        utf8_percent_encode(workspace, ESCAPED),
        segments.join("/")
    )
}

fn decode(text: &str) -> Result<String, ErrorData> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| ErrorData::invalid_params("uri: not valid UTF-8 once decoded", None))
}

pub fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(CONVERSATION_TEMPLATE, "conversation")
            .with_title("Conversation transcript")
            .with_description("A stored conversation as Markdown, each message quoted as data.")
            .with_mime_type("text/markdown"),
        ResourceTemplate::new(DOCUMENT_TEMPLATE, "document")
            .with_title("Workspace file")
            .with_description(
                "A file of a configured workspace (named by its folder) with its metadata.",
            )
            .with_mime_type("text/plain"),
    ])
}

pub async fn list(
    engine: &Engine,
    cursor: Option<String>,
) -> Result<ListResourcesResult, ErrorData> {
    let page = engine
        .list_resources(cursor.as_deref(), PAGE)
        .await
        .map_err(|error| protocol_error(error, invalid))?;
    let mut resources: Vec<Resource> = Vec::new();
    if cursor.is_none() {
        resources.push(
            Resource::new(METRICS_URI, "metrics")
                .with_title("Server metrics")
                .with_description("The health figures in Prometheus text format.")
                .with_mime_type(PROMETHEUS_MIME),
        );
    }
    resources.extend(page.entries.into_iter().map(resource_of));
    let mut result = ListResourcesResult::with_all_items(resources);
    result.next_cursor = page.next_cursor;
    Ok(result)
}

fn resource_of(entry: ResourceEntry) -> Resource {
    match entry {
        ResourceEntry::Conversation {
            id,
            user_id,
            messages,
        } => Resource::new(conversation_uri(&id), format!("conversation {id}"))
            .with_description(format!("{messages} messages of user {user_id}"))
            .with_mime_type("text/markdown"),
        ResourceEntry::Document {
            workspace,
            path,
            size,
        } => Resource::new(
            document_uri(&workspace, &path),
            format!("{workspace}/{path}"),
        )
        .with_mime_type("text/plain")
        .with_size(size.max(0) as u64),
    }
}

pub async fn read(engine: &Engine, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let not_found =
        |message: String| ErrorData::resource_not_found(message, Some(json!({"uri": uri})));
    if uri == METRICS_URI {
        let text = engine.prometheus_metrics().await;
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type(PROMETHEUS_MIME),
        ]));
    }
    if let Some(id) = uri.strip_prefix(CONVERSATION_SCHEME) {
        let id = decode(id)?;
        let text = engine
            .conversation_transcript(&id)
            .await
            .map_err(|error| protocol_error(error, invalid))?
            .ok_or_else(|| not_found(format!("conversation_id: no conversation {id:?}")))?;
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("text/markdown"),
        ]));
    }
    if let Some(rest) = uri.strip_prefix(DOCUMENT_SCHEME) {
        let (workspace, path) = rest
            .split_once('/')
            .ok_or_else(|| ErrorData::invalid_params("uri: document://{workspace}/{path}", None))?;
        let (workspace, path) = (decode(workspace)?, decode(path)?);
        let document = engine
            .document_text(&workspace, &path)
            .await
            .map_err(|error| protocol_error(error, not_found))?;
        let mut meta = Map::new();
        meta.insert("workspace".into(), json!(workspace));
        meta.insert("path".into(), json!(path));
        meta.insert("size".into(), json!(document.size));
        meta.insert("modified".into(), json!(document.modified));
        meta.insert("indexed_at".into(), json!(document.indexed_at));
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(document.text, uri)
                .with_mime_type("text/plain")
                .with_meta(MetaObject(meta)),
        ]));
    }
    Err(not_found(format!(
        "uri: {uri:?} is neither {CONVERSATION_TEMPLATE} nor {DOCUMENT_TEMPLATE}"
    )))
}

fn invalid(message: String) -> ErrorData {
    ErrorData::invalid_params(message, None)
}

pub fn prompts() -> ListPromptsResult {
    ListPromptsResult::with_all_items(vec![
        Prompt::new(
            "with_context",
            Some(
                "A user message carrying the context (preferences, relevant history and document passages) for a query.",
            ),
            Some(vec![
                PromptArgument::new("query")
                    .with_description("What the user asks or works on.")
                    .with_required(true),
                PromptArgument::new("user_id")
                    .with_description(
                        "Whose preferences and history (default: the configured user).",
                    )
                    .with_required(false),
            ]),
        ),
        Prompt::new(
            "continue_conversation",
            Some("The latest messages of a stored conversation, to pick it up where it stopped."),
            Some(vec![
                PromptArgument::new("conversation_id")
                    .with_description("The conversation to continue.")
                    .with_required(true),
            ]),
        ),
    ])
}

pub async fn prompt(
    engine: &Engine,
    name: &str,
    arguments: Option<Map<String, Value>>,
) -> Result<GetPromptResult, ErrorData> {
    let optional = |key: &str| -> Option<String> {
        arguments
            .as_ref()
            .and_then(|map| map.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let argument = |key: &str| -> Result<String, ErrorData> {
        optional(key).ok_or_else(|| invalid(format!("{key}: required (a string)")))
    };
    match name {
        "with_context" => {
            let query = argument("query")?;
            let context = Box::pin(engine.get_context(GetContext {
                query: query.clone(),
                user_id: optional("user_id"),
                session_id: None,
                workspace: None,
                max_tokens: None,
                include: None,
            }))
            .await
            .map_err(|error| protocol_error(error, invalid))?;
            let context = &context.assembled;
            let text = format!("{}\n---\n\n{query}", context.text);
            Ok(
                GetPromptResult::new(vec![PromptMessage::new_text(PromptRole::User, text)])
                    .with_description(format!(
                        "{} tokens of context for the query",
                        context.bundle.total_tokens
                    )),
            )
        }
        "continue_conversation" => {
            let id = argument("conversation_id")?;
            continue_conversation(engine, id).await
        }
        other => Err(invalid(format!("name: no prompt {other:?}"))),
    }
}

/// The conversation's last messages as prompt messages; system and tool messages, which a
/// prompt cannot carry as such, become labelled user messages.
async fn continue_conversation(engine: &Engine, id: String) -> Result<GetPromptResult, ErrorData> {
    let not_found = |message: String| invalid(message);
    let header = engine
        .conversation(GetConversation {
            conversation_id: id.clone(),
            message_offset: None,
            message_limit: Some(1),
        })
        .await
        .map_err(|error| protocol_error(error, not_found))?
        .header;
    let offset = (header.total_messages - i64::from(REPLAYED_MESSAGES)).max(0);
    let conversation = engine
        .conversation(GetConversation {
            conversation_id: id.clone(),
            message_offset: Some(offset),
            message_limit: Some(REPLAYED_MESSAGES),
        })
        .await
        .map_err(|error| protocol_error(error, not_found))?;
    let messages = conversation
        .messages
        .into_iter()
        .map(|message| match message.role {
            Role::User => PromptMessage::new_text(PromptRole::User, message.content),
            Role::Assistant => PromptMessage::new_text(PromptRole::Assistant, message.content),
            Role::System | Role::Tool => PromptMessage::new_text(
                PromptRole::User,
                format!("[{} message]\n{}", message.role.as_str(), message.content),
            ),
        })
        .collect();
    Ok(GetPromptResult::new(messages).with_description(format!(
        "The last {} of {} messages of conversation {id}",
        header.total_messages - offset,
        header.total_messages
    )))
}

pub async fn complete(
    engine: &Engine,
    request: CompleteRequestParams,
) -> Result<CompleteResult, ErrorData> {
    let argument = request.argument.name.as_str();
    let value = request.argument.value.as_str();
    let values = match (&request.r#ref, argument) {
        (Reference::Resource(ResourceTemplateReference { uri, .. }), "conversation_id")
            if uri == CONVERSATION_TEMPLATE =>
        {
            conversation_ids(engine, value).await?
        }
        (Reference::Prompt(PromptReference { name, .. }), "conversation_id")
            if name == "continue_conversation" =>
        {
            conversation_ids(engine, value).await?
        }
        (Reference::Resource(ResourceTemplateReference { uri, .. }), "workspace")
            if uri == DOCUMENT_TEMPLATE =>
        {
            engine
                .workspace_names()
                .into_iter()
                .filter(|name| name.starts_with(value))
                .collect()
        }
        _ => Vec::new(),
    };
    // Completions are capped at 100 by the protocol and by the store query alike.
    let has_more = values.len() >= 100;
    let info = CompletionInfo::with_pagination(values, None, has_more)
        .map_err(|message| ErrorData::internal_error(message, None))?;
    Ok(CompleteResult::new(info))
}

async fn conversation_ids(engine: &Engine, prefix: &str) -> Result<Vec<String>, ErrorData> {
    engine
        .complete_conversation_ids(prefix)
        .await
        .map_err(|error| protocol_error(error, invalid))
}
