-- The change logs that every process follows (`message_changes`, `vector_removals`,
-- `message_vector_removals`) are pruned while serving, so that they do not grow with every
-- message and passage ever saved. A floor records the last position pruned from each log;
-- a follower whose position is below it has missed rows and loads everything again.

CREATE TABLE change_log_floors (
    log   TEXT PRIMARY KEY,
    floor INTEGER NOT NULL
) WITHOUT ROWID;

-- 'messages': positions in message_changes (seq); 'vectors': vector_state versions, which
-- both removal logs share.
INSERT INTO change_log_floors (log, floor) VALUES ('messages', 0), ('vectors', 0);
