-- 003: crews. Crew content is indexed like any other once opened, tagged with its crew.
ALTER TABLE content ADD COLUMN crew BLOB;
CREATE INDEX content_crew ON content(crew, type, entry_rowid) WHERE crew IS NOT NULL;

-- Epoch keys we hold. Secrets: the data directory is 0700 and the database 0600.
CREATE TABLE crew_keys (
    crew   BLOB NOT NULL,
    epoch  INTEGER NOT NULL,
    key    BLOB NOT NULL,
    PRIMARY KEY (crew, epoch)
) WITHOUT ROWID;

-- Plaintext of crew envelopes we opened, so queries never decrypt twice.
CREATE TABLE opened (
    entry_rowid  INTEGER PRIMARY KEY REFERENCES entries(rowid),
    plaintext    BLOB NOT NULL
);

-- Envelopes none of our keys opened yet; retried when we learn new keys.
CREATE TABLE sealed (
    entry_rowid  INTEGER PRIMARY KEY REFERENCES entries(rowid)
);

-- What the person has seen: per thread root (or request), the newest arrival order seen.
CREATE TABLE read_marks (
    target      BLOB PRIMARY KEY,
    seen_order  INTEGER NOT NULL
) WITHOUT ROWID;
