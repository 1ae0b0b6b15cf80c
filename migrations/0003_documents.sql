-- Indexed documents, one row per file under a workspace root. The passages themselves live in
-- the search index, keyed by this id. A NULL checksum marks a document whose passages were
-- being written when the process stopped: the next pass indexes it again.
CREATE TABLE documents (
    id          INTEGER PRIMARY KEY,
    workspace   TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    file_type   TEXT    NOT NULL,
    checksum    TEXT,
    chunks      INTEGER NOT NULL DEFAULT 0,
    indexed_at  INTEGER NOT NULL,
    embedder    TEXT,
    UNIQUE (workspace, path)
);
