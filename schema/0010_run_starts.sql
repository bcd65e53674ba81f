-- cto-ledger schema 10: every Stage 2 attempt is registered in the journal before its
-- provider starts (a `run_start` event), so an attempt that was killed, or whose folder
-- and `run_folders` row were removed, still stands in the signed history. Projection of
-- `run_start` events; the `run` event that ends the attempt names its start by digest.
CREATE TABLE run_starts (
    id                 TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    fixture            TEXT NOT NULL,
    fixture_tree       TEXT NOT NULL,
    lane               TEXT NOT NULL,
    provider_object    TEXT NOT NULL,
    provider_admission TEXT,
    model              TEXT,
    model_admission    TEXT,
    timeout_ms         INTEGER NOT NULL,
    run_dir            TEXT NOT NULL,
    digest             TEXT NOT NULL,  -- sha256: of the event's body, what the run event names
    time               TEXT NOT NULL
) STRICT;
ALTER TABLE runs ADD COLUMN start TEXT;
