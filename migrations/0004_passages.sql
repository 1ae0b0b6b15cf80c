-- Passages: the pieces documents are cut into, with their embedding vectors. The full-text
-- index holds the same passages keyed by (document id, start line); this table is what
-- semantic search and context assembly read.
--
-- A NULL vector (or one made by another model than the server's) is waiting to be embedded.
-- `claimed_until` lets one process at a time embed a passage. AUTOINCREMENT keeps ids from
-- being reused, so that a process following changes by id never confuses two passages.
CREATE TABLE passages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id   INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal       INTEGER NOT NULL,
    start_line    INTEGER NOT NULL,
    end_line      INTEGER NOT NULL,
    text          TEXT    NOT NULL,
    embedder      TEXT,
    vector        BLOB,
    version       INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX passages_by_version ON passages (version);
CREATE INDEX passages_waiting ON passages (id) WHERE vector IS NULL;

-- Every process keeps the vectors in memory and follows changes: `version` grows with each
-- vector written or removed; a vector carries the version that wrote it, a removal is logged.
CREATE TABLE vector_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO vector_state (id, version) VALUES (1, 0);

CREATE TABLE vector_removals (
    passage_id INTEGER NOT NULL,
    version    INTEGER NOT NULL
);
CREATE INDEX vector_removals_by_version ON vector_removals (version);

CREATE TRIGGER passage_embedded AFTER UPDATE OF vector ON passages
WHEN NEW.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    UPDATE passages SET version = (SELECT version FROM vector_state) WHERE id = NEW.id;
END;

CREATE TRIGGER passage_unembedded AFTER UPDATE OF vector ON passages
WHEN NEW.vector IS NULL AND OLD.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    INSERT INTO vector_removals (passage_id, version) SELECT OLD.id, version FROM vector_state;
END;

CREATE TRIGGER passage_removed AFTER DELETE ON passages
WHEN OLD.vector IS NOT NULL
BEGIN
    UPDATE vector_state SET version = version + 1;
    INSERT INTO vector_removals (passage_id, version) SELECT OLD.id, version FROM vector_state;
END;

CREATE INDEX documents_by_type ON documents (file_type);

-- Documents whose passages the full-text index must take (or drop, when the document is gone).
-- Any process stages documents here; the one process holding tantivy's writer drains it.
-- `seq` tells a drain whether a row was queued again while it was being indexed.
CREATE TABLE index_outbox (
    document_id INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL
);

-- Documents indexed before passages were kept here have none: clearing their checksums makes
-- the next pass read them again (an unchanged size and time alone no longer skip them).
UPDATE documents SET checksum = NULL;
