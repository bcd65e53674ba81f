-- cto-ledger schema 12: the witnesses this log's checkpoints are cosigned by.
--
-- A projection of `witness` events, one row per event (an addition, a change of URL,
-- or a removal), so replaying or undoing events after a sequence number is exact; the
-- witnesses in force are each name's newest row that is not a removal.
CREATE TABLE witness_events (
    seq     INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    vkey    TEXT NOT NULL,
    url     TEXT,
    removed INTEGER NOT NULL CHECK (removed IN (0, 1)),
    actor   TEXT NOT NULL,
    time    TEXT NOT NULL
) STRICT;
CREATE INDEX witness_events_name ON witness_events (name, seq);
