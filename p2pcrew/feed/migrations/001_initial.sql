-- 001: entries, feed tips, fork proofs, tombstones and the content index.
CREATE TABLE feeds (
    author      BLOB PRIMARY KEY,
    latest_seq  INTEGER NOT NULL,
    latest_id   BLOB NOT NULL,
    forked      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- rowid is the local arrival order: "newest activity" sorts by it.
CREATE TABLE entries (
    rowid       INTEGER PRIMARY KEY,
    author      BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    id          BLOB NOT NULL UNIQUE,
    header      BLOB NOT NULL,
    payload     BLOB,
    received_at INTEGER NOT NULL,
    UNIQUE (author, seq)
);

CREATE TABLE forks (
    author  BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    first   BLOB NOT NULL,
    second  BLOB NOT NULL,
    PRIMARY KEY (author, seq)
) WITHOUT ROWID;

-- A deleted payload is never accepted again; only its author may delete it.
CREATE TABLE tombstones (
    target  BLOB PRIMARY KEY,
    author  BLOB NOT NULL
) WITHOUT ROWID;

-- One row per entry whose payload decoded as known content.
CREATE TABLE content (
    entry_rowid  INTEGER PRIMARY KEY REFERENCES entries(rowid),
    type         TEXT NOT NULL,
    claimed_time INTEGER NOT NULL,
    root         BLOB,
    parent       BLOB,
    target       BLOB
);
CREATE INDEX content_type ON content(type, entry_rowid);
CREATE INDEX content_root ON content(root) WHERE root IS NOT NULL;
CREATE INDEX content_target ON content(target) WHERE target IS NOT NULL;

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  BLOB
) WITHOUT ROWID;
