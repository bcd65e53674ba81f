-- cto-ledger schema 5: the tree cache. Like the stat cache, neither evidence nor a
-- projection: per directory ingested, a BLAKE3 digest of exactly what its manifest encodes
-- (every entry's name, kind, executable bit, size, both digests and link target, sorted)
-- and the tree object that encoding is, so an unchanged directory is not re-encoded and
-- re-hashed. Content decides a hit, so no timing rule is needed. Safe to delete at any time.

CREATE TABLE tree_cache (
    path        BLOB PRIMARY KEY,   -- absolute path of the directory, raw bytes
    fingerprint BLOB NOT NULL,      -- 32 bytes
    object      BLOB NOT NULL,      -- 32 bytes of BLAKE3
    sha256      BLOB NOT NULL,      -- 32 bytes of SHA-256
    size        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
