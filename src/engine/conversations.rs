//! Saving, reading and deleting conversations.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Engine,
    budget::ResponseBudget,
    caching::conversation_scopes,
    cursor::HistoryCursor,
    error::{EngineError, Result},
    validate,
};
use crate::{
    cache::{Lookup, Scope, TtlClass},
    model::{ConversationHeader, Message, Metadata, Role, to_millis},
    store::{HistoryQuery, NewConversation, NewMessage, SaveOutcome},
};

const DEFAULT_HISTORY_LIMIT: u32 = 50;
const MAX_HISTORY_LIMIT: u32 = 500;
const DEFAULT_MESSAGE_LIMIT: u32 = 100;
const MAX_MESSAGE_LIMIT: u32 = 1000;
/// Messages read from the store per query while filling a response.
const MESSAGE_READ_BATCH: u32 = 100;

/// Arguments of `save_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveConversation {
    /// Conversation to append to. A new id (UUIDv7) is generated when absent; an unknown id
    /// starts a new conversation under that id.
    pub conversation_id: Option<String>,
    /// Owner of the conversation. Defaults to the server's configured user.
    pub user_id: Option<String>,
    /// Client session the conversation belongs to; fixed once set.
    pub session_id: Option<String>,
    /// Messages to append, in order (at least one). Messages whose `message_id` is already
    /// stored in this conversation are skipped, so a retried call stores nothing twice.
    #[schemars(length(min = 1))]
    pub messages: Vec<MessageInput>,
    /// JSON object stored with the conversation; replaces the stored one when given.
    pub metadata: Option<Metadata>,
}

/// One message to save.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// Id unique within the conversation; give one to make retries idempotent. Generated when absent.
    pub message_id: Option<String>,
    /// Who wrote it: user, assistant, system or tool.
    pub role: Role,
    /// The message text (1 MiB at most by default).
    pub content: String,
    /// When the message was written (RFC 3339, e.g. 2024-01-02T03:04:05Z; at most a day
    /// ahead). Defaults to the time of the save.
    pub created_at: Option<validate::Rfc3339>,
    /// JSON object stored with the message.
    pub metadata: Option<Metadata>,
}

/// Result of `save_conversation`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SavedConversation {
    pub conversation_id: String,
    /// Messages this call added.
    pub stored_messages: u64,
    /// Messages of this call that were already stored (same `message_id`) and were skipped.
    pub skipped_messages: u64,
    /// Messages in the conversation after this call.
    pub total_messages: i64,
}

/// Arguments of `get_conversation_history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationHistory {
    /// Whose conversations. Defaults to the server's configured user.
    pub user_id: Option<String>,
    /// Only conversations of this session.
    pub session_id: Option<String>,
    /// Most conversations to return, 1 to 500. Default 50.
    #[schemars(range(min = 1, max = MAX_HISTORY_LIMIT))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A conversation with (some of) its messages.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    #[serde(flatten)]
    pub header: ConversationHeader,
    pub messages: Vec<Message>,
    /// Set when `messages` stops short of the end: the `message_offset` to pass to
    /// `get_conversation` for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_message_offset: Option<i64>,
}

/// Result of `get_conversation_history`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPage {
    pub user_id: String,
    /// Newest first.
    pub conversations: Vec<Conversation>,
    /// True when the response size cap cut conversations or messages short.
    pub truncated: bool,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Arguments of `get_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConversation {
    /// Id of the conversation, as `save_conversation` returned it.
    pub conversation_id: String,
    /// First message to return, by position from 0. Default 0.
    #[schemars(range(min = 0))]
    pub message_offset: Option<i64>,
    /// Most messages to return, 1 to 1000. Default 100.
    #[schemars(range(min = 1, max = MAX_MESSAGE_LIMIT))]
    pub message_limit: Option<u32>,
}

/// Arguments of `delete_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConversation {
    /// Id of the conversation to delete with all its messages.
    pub conversation_id: String,
}

/// Result of `delete_conversation`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeletedConversation {
    pub conversation_id: String,
    /// Messages deleted with it.
    pub deleted_messages: i64,
}

impl Engine {
    pub async fn save_conversation(&self, request: SaveConversation) -> Result<SavedConversation> {
        let user_id = self.user_or_default(request.user_id.as_deref())?;
        let now = crate::model::now();
        self.check_save(&request, now)?;
        let conversation_id = request.conversation_id.clone().unwrap_or_else(new_id);
        let messages = to_new_messages(request.messages, now);
        let invalidates = conversation_scopes(&user_id);
        let batch = NewConversation {
            id: &conversation_id,
            user_id: &user_id,
            session_id: request.session_id.as_deref(),
            metadata: request.metadata.as_ref(),
            messages: &messages,
            now: to_millis(now),
            invalidates: &invalidates,
        };
        match self.store().save_conversation(&batch).await? {
            SaveOutcome::Saved {
                stored,
                total,
                generations,
            } => {
                self.after_write(&generations).await;
                if stored > 0 {
                    self.wake_embedder();
                    self.wake_history_words();
                }
                Ok(SavedConversation {
                    conversation_id,
                    stored_messages: stored,
                    skipped_messages: messages.len() as u64 - stored,
                    total_messages: total,
                })
            }
            SaveOutcome::OwnedByAnotherUser => Err(EngineError::conflict(
                "conversation_id",
                format!("conversation {conversation_id:?} belongs to another user"),
            )),
            SaveOutcome::OtherSession { stored } => Err(EngineError::conflict(
                "session_id",
                format!("conversation {conversation_id:?} belongs to session {stored:?}"),
            )),
        }
    }

    /// Most messages one `save_conversation` takes.
    pub fn messages_per_call(&self) -> usize {
        self.limits().max_messages_per_call
    }

    /// Checks a save as `save_conversation` would, without saving: an importer checks every
    /// part of a long conversation before saving any.
    pub fn check_save(&self, request: &SaveConversation, now: DateTime<Utc>) -> Result<()> {
        if let Some(id) = &request.conversation_id {
            validate::id("conversation_id", id)?;
        }
        if let Some(session) = &request.session_id {
            validate::id("session_id", session)?;
        }
        validate::metadata("metadata", request.metadata.as_ref())?;
        let limits = self.limits();
        if request.messages.is_empty() {
            return Err(EngineError::invalid(
                "messages",
                "is empty; a conversation is saved with at least one message",
            ));
        }
        if request.messages.len() > limits.max_messages_per_call {
            return Err(EngineError::invalid(
                "messages",
                format!(
                    "has {} messages; the limit is {} per call (send the rest in another call)",
                    request.messages.len(),
                    limits.max_messages_per_call
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (index, message) in request.messages.iter().enumerate() {
            self.check_message(index, message, now)?;
            if let Some(id) = &message.message_id
                && !seen.insert(id.as_str())
            {
                return Err(EngineError::invalid(
                    format!("messages[{index}].message_id"),
                    format!("{id:?} appears twice in this call"),
                ));
            }
        }
        Ok(())
    }

    fn check_message(
        &self,
        index: usize,
        message: &MessageInput,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if let Some(validate::Rfc3339(created_at)) = message.created_at {
            validate::not_future(&format!("messages[{index}].created_at"), created_at, now)?;
        }
        let max = self.limits().max_message_bytes;
        if message.content.len() > max {
            return Err(EngineError::invalid(
                format!("messages[{index}].content"),
                format!("is {} bytes; the limit is {max}", message.content.len()),
            ));
        }
        if let Some(id) = &message.message_id {
            validate::id(&format!("messages[{index}].message_id"), id)?;
        }
        validate::metadata(
            &format!("messages[{index}].metadata"),
            message.metadata.as_ref(),
        )
    }

    pub async fn conversation_history(&self, request: ConversationHistory) -> Result<HistoryPage> {
        let user_id = self.user_or_default(request.user_id.as_deref())?;
        if let Some(session) = &request.session_id {
            validate::id("session_id", session)?;
        }
        let limit = validate::count(
            "limit",
            request.limit,
            DEFAULT_HISTORY_LIMIT,
            MAX_HISTORY_LIMIT,
        )?;
        let cursor = request
            .cursor
            .as_deref()
            .map(HistoryCursor::parse)
            .transpose()?;
        let lookup = Lookup {
            operation: "get_conversation_history",
            params: json!({
                "user_id": user_id,
                "session_id": request.session_id,
                "limit": limit,
                "cursor": cursor.as_ref().map(HistoryCursor::encode),
            }),
            class: TtlClass::Records,
            scopes: vec![Scope::Conversations(user_id.clone())],
        };
        let load = self.load_history(user_id, request.session_id, limit, cursor);
        self.cached(lookup, load).await
    }

    async fn load_history(
        &self,
        user_id: String,
        session_id: Option<String>,
        limit: u32,
        cursor: Option<HistoryCursor>,
    ) -> Result<HistoryPage> {
        let query = HistoryQuery {
            user_id: &user_id,
            session_id: session_id.as_deref(),
            before: cursor
                .as_ref()
                .map(|cursor| (cursor.updated_at, cursor.id.as_str())),
            limit: limit + 1,
        };
        let mut headers = self.store().conversation_page(&query).await?;
        let more_pages = headers.len() > limit as usize;
        headers.truncate(limit as usize);
        self.fill_history(user_id, headers, more_pages).await
    }

    /// Adds messages to each conversation until the response budget runs out.
    async fn fill_history(
        &self,
        user_id: String,
        headers: Vec<ConversationHeader>,
        more_pages: bool,
    ) -> Result<HistoryPage> {
        let mut budget = ResponseBudget::new(self.limits().max_response_bytes);
        let mut conversations = Vec::with_capacity(headers.len());
        let mut truncated = false;
        let total = headers.len();
        // Each conversation's first messages in one read, not one read per conversation.
        let ids: Vec<&str> = headers
            .iter()
            .map(|header| header.conversation_id.as_str())
            .collect();
        let firsts = self
            .store()
            .first_messages(&ids, MESSAGE_READ_BATCH)
            .await?;
        for (header, first) in headers.into_iter().zip(firsts) {
            if !budget.take(&header) && !conversations.is_empty() {
                truncated = true;
                break;
            }
            let (messages, next_message_offset) = self
                .messages_within(&header, 0, u32::MAX, &mut budget, false, Some(first))
                .await?;
            truncated |= next_message_offset.is_some();
            conversations.push(Conversation {
                header,
                messages,
                next_message_offset,
            });
            if truncated {
                break;
            }
        }
        let has_rest = more_pages || conversations.len() < total;
        let next_cursor = has_rest
            .then(|| conversations.last())
            .flatten()
            .map(|last| HistoryCursor::after(&last.header).encode());
        Ok(HistoryPage {
            user_id,
            conversations,
            truncated,
            next_cursor,
        })
    }

    /// Reads messages from `offset` while they fit in the budget (at most `limit`). With
    /// `at_least_one`, the first message is taken even when it alone exceeds the budget, so
    /// that paging always moves on. Returns the messages and, if the conversation has more,
    /// the offset to continue from. `read` holds the messages from `offset` when the caller
    /// has already read them.
    async fn messages_within(
        &self,
        header: &ConversationHeader,
        offset: i64,
        limit: u32,
        budget: &mut ResponseBudget,
        at_least_one: bool,
        mut read: Option<Vec<Message>>,
    ) -> Result<(Vec<Message>, Option<i64>)> {
        let mut taken = Vec::new();
        let mut next = offset;
        while next < header.total_messages && (taken.len() as u32) < limit {
            let batch_size = MESSAGE_READ_BATCH.min(limit - taken.len() as u32);
            let batch = match read.take() {
                Some(batch) => batch,
                None => {
                    self.store()
                        .messages(&header.conversation_id, next, batch_size)
                        .await?
                }
            };
            if batch.is_empty() {
                break;
            }
            for message in batch {
                let forced = at_least_one && taken.is_empty();
                if !budget.take(&message) && !forced {
                    return Ok((taken, Some(next)));
                }
                next = message.seq + 1;
                taken.push(message);
            }
        }
        let more = next < header.total_messages;
        Ok((taken, more.then_some(next)))
    }

    pub async fn conversation(&self, request: GetConversation) -> Result<Conversation> {
        validate::id("conversation_id", &request.conversation_id)?;
        let offset = request.message_offset.unwrap_or(0);
        if offset < 0 {
            return Err(EngineError::invalid("message_offset", "must be 0 or more"));
        }
        let limit = validate::count(
            "message_limit",
            request.message_limit,
            DEFAULT_MESSAGE_LIMIT,
            MAX_MESSAGE_LIMIT,
        )?;
        let header = self.existing_conversation(&request.conversation_id).await?;
        let mut budget = ResponseBudget::new(self.limits().max_response_bytes);
        budget.take(&header);
        let (messages, next_message_offset) = self
            .messages_within(&header, offset, limit, &mut budget, true, None)
            .await?;
        Ok(Conversation {
            header,
            messages,
            next_message_offset,
        })
    }

    pub async fn delete_conversation(
        &self,
        request: DeleteConversation,
    ) -> Result<DeletedConversation> {
        validate::id("conversation_id", &request.conversation_id)?;
        // The owner never changes, so reading it first names the scope the delete bumps.
        let owner = self
            .existing_conversation(&request.conversation_id)
            .await?
            .user_id;
        let invalidates = conversation_scopes(&owner);
        let deleted = self
            .store()
            .delete_conversation(&request.conversation_id, &invalidates)
            .await?;
        let Some((deleted_messages, generations)) = deleted else {
            return Err(unknown_conversation(&request.conversation_id));
        };
        self.after_write(&generations).await;
        self.wake_history_words();
        Ok(DeletedConversation {
            conversation_id: request.conversation_id,
            deleted_messages,
        })
    }

    async fn existing_conversation(&self, id: &str) -> Result<ConversationHeader> {
        self.store()
            .conversation(id)
            .await?
            .ok_or_else(|| unknown_conversation(id))
    }
}

fn unknown_conversation(id: &str) -> EngineError {
    EngineError::not_found("conversation_id", format!("no conversation with id {id:?}"))
}

fn to_new_messages(messages: Vec<MessageInput>, now: DateTime<Utc>) -> Vec<NewMessage> {
    messages
        .into_iter()
        .map(|message| NewMessage {
            id: message.message_id.unwrap_or_else(new_id),
            role: message.role,
            content: message.content,
            created_at: to_millis(message.created_at.map_or(now, |time| time.0)),
            metadata: message.metadata.unwrap_or_default(),
        })
        .collect()
}

/// UUIDv7: time-ordered, so generated ids sort by creation.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
