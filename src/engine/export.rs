//! Reading a user's conversations and preferences out whole, for `context-store export`.
//! Pages go straight to the store: an export is neither cached nor cut to a response size.

use super::{Engine, error::Result};
use crate::{
    model::{ConversationHeader, Message, Preference, to_millis},
    store::HistoryQuery,
};

/// Messages read per query while exporting a conversation.
const MESSAGE_PAGE: u32 = 1000;

/// A conversation with every message, in order.
#[derive(Debug, Clone)]
pub struct ExportedConversation {
    pub header: ConversationHeader,
    pub messages: Vec<Message>,
}

/// Where the next page of an export starts: after this conversation, newest first.
#[derive(Debug, Clone)]
pub struct ExportCursor {
    updated_at_ms: i64,
    conversation_id: String,
}

/// One page of an export and where the next one starts (None after the last).
#[derive(Debug)]
pub struct ExportPage {
    pub conversations: Vec<ExportedConversation>,
    pub next: Option<ExportCursor>,
}

impl Engine {
    /// Up to `limit` of the user's conversations after `after`, newest first, whole.
    pub async fn export_conversations(
        &self,
        user_id: Option<&str>,
        after: Option<&ExportCursor>,
        limit: u32,
    ) -> Result<ExportPage> {
        let user_id = self.user_or_default(user_id)?;
        let query = HistoryQuery {
            user_id: &user_id,
            session_id: None,
            before: after.map(|cursor| (cursor.updated_at_ms, cursor.conversation_id.as_str())),
            limit,
        };
        let headers = self.store().conversation_page(&query).await?;
        let next = (headers.len() == limit as usize)
            .then(|| headers.last())
            .flatten()
            .map(|last| ExportCursor {
                updated_at_ms: to_millis(last.updated_at),
                conversation_id: last.conversation_id.clone(),
            });
        let mut conversations = Vec::with_capacity(headers.len());
        for header in headers {
            let messages = self.all_messages(&header.conversation_id).await?;
            conversations.push(ExportedConversation { header, messages });
        }
        Ok(ExportPage {
            conversations,
            next,
        })
    }

    /// The user's preferences (the user checked, or the configured one) and whose they are.
    pub async fn export_preferences(&self, user_id: Option<&str>) -> Result<UserPreferences> {
        let user_id = self.user_or_default(user_id)?;
        let preferences = self.store().preferences(&user_id, None).await?;
        Ok(UserPreferences {
            user_id,
            preferences,
        })
    }

    async fn all_messages(&self, conversation_id: &str) -> Result<Vec<Message>> {
        let mut messages = Vec::new();
        loop {
            let page = self
                .store()
                .messages(conversation_id, messages.len() as i64, MESSAGE_PAGE)
                .await?;
            let last_page = page.len() < MESSAGE_PAGE as usize;
            messages.extend(page);
            if last_page {
                return Ok(messages);
            }
        }
    }
}

/// A user's preferences, for export.
#[derive(Debug)]
pub struct UserPreferences {
    pub user_id: String,
    pub preferences: Vec<Preference>,
}
