-- Cache invalidation across processes. Every invalidation bumps the generation of a scope
-- (e.g. `conversations:alice`) and stamps it with a database-wide sequence number, so that
-- each process can poll for what changed since the last sequence it saw. Cache keys fold in
-- the generations of the scopes they depend on, so an entry written under an old generation
-- is never read again once a process has seen the bump.
CREATE TABLE cache_generations (
    scope       TEXT    PRIMARY KEY NOT NULL,
    generation  INTEGER NOT NULL,
    seq         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX cache_generations_by_seq ON cache_generations (seq);
