-- Messages are searched for get_context: by words through FTS5, kept in step by triggers in
-- the saving transaction (so a search never misses a committed message), and by meaning
-- through a vector per message, made in the background like passages' (see 0004).

ALTER TABLE messages ADD COLUMN embedder TEXT;
ALTER TABLE messages ADD COLUMN vector BLOB;
ALTER TABLE messages ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_by_version ON messages (version);
CREATE INDEX messages_waiting ON messages (claimed_until) WHERE vector IS NULL;

-- Porter stemming: history is prose, and "indexing" should find "indexed".
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (NEW.rowid, NEW.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', OLD.rowid, OLD.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', OLD.rowid, OLD.content);
    INSERT INTO messages_fts (rowid, content) VALUES (NEW.rowid, NEW.content);
END;

-- Message vectors share `vector_state` with passages, so one version follows both.
-- Message rowids can be reused after a delete: followers apply removals before additions.
CREATE TABLE message_vector_removals (
    message_rowid INTEGER NOT NULL,
    version       INTEGER NOT NULL
);
CREATE INDEX message_vector_removals_by_version ON message_vector_removals (version);

CREATE TRIGGER message_embedded AFTER UPDATE OF vector ON messages
WHEN NEW.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    UPDATE messages SET version = (SELECT version FROM vector_state) WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER message_unembedded AFTER UPDATE OF vector ON messages
WHEN NEW.vector IS NULL AND OLD.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    INSERT INTO message_vector_removals (message_rowid, version)
        SELECT OLD.rowid, version FROM vector_state;
END;

CREATE TRIGGER message_removed AFTER DELETE ON messages
WHEN OLD.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    INSERT INTO message_vector_removals (message_rowid, version)
        SELECT OLD.rowid, version FROM vector_state;
END;
