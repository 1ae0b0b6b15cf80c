-- History by words moves from FTS5 to an index each process keeps in memory
-- (`src/words.rs`): FTS5 scores every message that matches a query, about 1.2 µs each for
-- its document-size lookup, so a topic query over 40,000 messages took 10 ms.
-- Every process follows the messages through this log, written in the saving transaction:
-- one row per message inserted, edited or deleted; a follower reads the rows after the last
-- one it applied and takes each message's current state (absent: removed).

CREATE TABLE message_changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_rowid INTEGER NOT NULL
);

CREATE TRIGGER message_words_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO message_changes (message_rowid) VALUES (NEW.rowid);
END;

CREATE TRIGGER message_words_update AFTER UPDATE OF content, conversation_id ON messages
BEGIN
    INSERT INTO message_changes (message_rowid) VALUES (NEW.rowid);
END;

CREATE TRIGGER message_words_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO message_changes (message_rowid) VALUES (OLD.rowid);
END;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
