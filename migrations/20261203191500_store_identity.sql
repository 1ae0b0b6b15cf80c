-- Who this database is, to a Redis cache it may share with other deployments: a random id
-- that every Redis key folds in, so that no deployment reads another's entries, and a random
-- secret that authenticates the values this store's processes write there. Made once, with
-- the table, in the migration's own transaction under the setup lock, so processes started
-- at once all read the same row.
CREATE TABLE store_identity (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    store_id TEXT NOT NULL,
    cache_secret BLOB NOT NULL
);

INSERT INTO store_identity (only_row, store_id, cache_secret)
VALUES (1, lower(hex(randomblob(16))), randomblob(32));
