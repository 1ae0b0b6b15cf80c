-- Conversations, their messages, and per-user preferences.
-- Times are Unix epoch milliseconds (UTC); JSON columns are checked on write.

CREATE TABLE conversations (
    id          TEXT    PRIMARY KEY NOT NULL,
    user_id     TEXT    NOT NULL,
    session_id  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);

-- History is read newest first per user, optionally per session, with a
-- keyset cursor on (updated_at, id).
CREATE INDEX conversations_by_user_recency
    ON conversations (user_id, updated_at DESC, id DESC);
CREATE INDEX conversations_by_session_recency
    ON conversations (user_id, session_id, updated_at DESC, id DESC);

-- A rowid table on purpose: later search indexes key messages by rowid.
CREATE TABLE messages (
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id              TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    PRIMARY KEY (conversation_id, id),
    UNIQUE (conversation_id, seq)
);

CREATE TABLE preferences (
    user_id     TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL CHECK (json_valid(value)),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
