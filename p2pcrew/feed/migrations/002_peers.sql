-- 002: what replication remembers about peers.
-- Per-peer vector clocks (notes received from / sent to the peer), so a reconnect
-- sends only what changed. Stored as canonical CBOR lists of [feed, note].
CREATE TABLE peer_clocks (
    peer      BLOB PRIMARY KEY,
    received  BLOB NOT NULL,
    sent      BLOB NOT NULL
) WITHOUT ROWID;

-- Addresses we know, how we learnt them, and how the last attempt went.
CREATE TABLE peers (
    address         TEXT PRIMARY KEY,
    feed            BLOB NOT NULL,
    source          TEXT NOT NULL,
    last_connected  INTEGER,
    last_error      TEXT
) WITHOUT ROWID;
