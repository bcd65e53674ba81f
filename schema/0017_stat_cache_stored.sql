-- cto-ledger schema 17: stat-cache rows for files that were hashed but not stored (a
-- build's tools, the executable offered to `run stage2`) have `stored = 0`. Such a row
-- names a file's bytes and vouches for nothing in the store, so `ingest` trusts only
-- rows with `stored = 1`, written after the journal committed their objects.
--
-- Before this, the offered executable's row was written like an ingested file's: a run
-- killed after hashing it, before storing it, left a row that let a later `ingest` of its
-- folder name the object without storing it. Which old rows are such is not known, so
-- all are dropped (the cache is safe to empty: the next ingest reads its files once).

ALTER TABLE stat_cache ADD COLUMN stored INTEGER NOT NULL DEFAULT 1;
DELETE FROM stat_cache;
