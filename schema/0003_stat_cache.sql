-- cto-ledger schema 3: the stat cache. Not a projection and not evidence: a cache of
-- (path, device, inode, size, mtime, ctime, mode) -> object, so `ingest` of an unchanged
-- tree does not re-read its files (as git's index does). Safe to delete at any time.

CREATE TABLE stat_cache (
    path     BLOB PRIMARY KEY,   -- absolute path, raw bytes
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    mode     INTEGER NOT NULL,
    object   BLOB NOT NULL,      -- 32 bytes of BLAKE3
    sha256   BLOB NOT NULL,      -- 32 bytes of SHA-256
    recorded_ns INTEGER NOT NULL  -- entries whose mtime is within 2 s of this are not trusted
) STRICT, WITHOUT ROWID;
