-- 005: the latest display name per author, kept current on insert, so showing names
-- never means decoding every profile entry in the store. Filled for existing stores
-- by the store on first open after this migration (names live inside CBOR payloads).
CREATE TABLE profiles (
    author  BLOB PRIMARY KEY,
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL
) WITHOUT ROWID;
