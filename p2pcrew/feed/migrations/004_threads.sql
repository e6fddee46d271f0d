-- 004: a summary row per thread, kept up to date on insert, so a thread list reads
-- a few rows instead of aggregating every post (first screen with a million entries).
CREATE TABLE threads (
    root        BLOB PRIMARY KEY,
    crew        BLOB,
    last_order  INTEGER NOT NULL,
    replies     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX threads_recent ON threads(crew, last_order);

INSERT INTO threads(root, crew, last_order, replies)
    SELECT e.id, c.crew, e.rowid, 0 FROM content c JOIN entries e ON e.rowid = c.entry_rowid
    WHERE c.type = 'post' AND c.root IS NULL;

INSERT INTO threads(root, crew, last_order, replies)
    SELECT c.root, c.crew, MAX(c.entry_rowid), COUNT(*) FROM content c
    WHERE c.type = 'post' AND c.root IS NOT NULL GROUP BY c.root
    ON CONFLICT(root) DO UPDATE SET
        last_order = max(last_order, excluded.last_order), replies = excluded.replies;
