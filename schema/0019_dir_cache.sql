-- cto-ledger schema 19: the directory cache, in place of the stat cache's per-file rows
-- for ingested trees and of `tree_cache`. Like them, neither evidence nor a projection,
-- and safe to delete at any time. One row per directory an ingest encoded: a record of
-- its entries as they were (each file's stat and digests, each link's target, each
-- subdirectory's tree) and the tree they encoded to, laid out as
-- src/store/tree/dircache.rs writes it. An ingest loads the records under its path in
-- one range read (about 1,700 rows for a 17,000-file `node_modules`, where the stat cache
-- had 17,000), and matches each directory against its record as it reads it: a
-- directory whose every entry is as recorded keeps its tree without a file read or a
-- manifest built. A file is trusted only if it last changed more than 2 s before
-- `recorded_ns`, as before.
--
-- `stat_cache` keeps the rows of files hashed but not stored (`stored = 0`); the rows
-- ingests wrote are dropped, their directories are read once more.

-- A rowid table: records average 1.4 KB, and a WITHOUT ROWID table keeps at most about
-- 1 KB of a row on its b-tree page (the rest on overflow pages, read one by one), where a
-- rowid table keeps up to 4 KB.
CREATE TABLE dir_cache (
    path        BLOB NOT NULL UNIQUE, -- absolute path of the directory, raw bytes
    recorded_ns INTEGER NOT NULL,     -- when the record was written
    record      BLOB NOT NULL
) STRICT;

DROP TABLE tree_cache;
DELETE FROM stat_cache WHERE stored = 1;
