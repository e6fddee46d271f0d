-- 006: the latest contact action per (author, target), kept current on insert, so the
-- replication scope (follows within N hops, blocks) is one query, not a decode of every
-- contact entry. Filled for existing stores on first open after this migration.
CREATE TABLE contacts (
    author  BLOB NOT NULL,
    target  BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    action  TEXT NOT NULL,
    PRIMARY KEY (author, target)
) WITHOUT ROWID;
