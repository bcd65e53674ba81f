-- cto-ledger schema 6: where each Stage 2 run folder is, recorded when the run starts
-- (before its `run` event exists), so `audit` and `recover` find the folder of a
-- harness that was killed wherever it is (`--runs-dir`). This host's bookkeeping,
-- not a projection of the journal.
CREATE TABLE run_folders (
    id      TEXT PRIMARY KEY,
    path    TEXT NOT NULL,
    started TEXT NOT NULL
) STRICT;
