-- cto-ledger schema 13: Rego policies (`policy add`, `policy remove`) and every
-- decision one took.
--
-- `policy_events` projects `policy` events, one row per event; the policies in force
-- are each name's newest row that is not a removal. `policy_decisions` projects the
-- decisions admissions, refusals and runs record (their `policies` field).
CREATE TABLE policy_events (
    seq     INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    object  TEXT REFERENCES objects(id),
    sha256  TEXT,
    package TEXT,
    applies TEXT NOT NULL,          -- JSON array: "admit", "run"
    path    TEXT,
    removed INTEGER NOT NULL CHECK (removed IN (0, 1)),
    actor   TEXT NOT NULL,
    time    TEXT NOT NULL
) STRICT;
CREATE INDEX policy_events_name ON policy_events (name, seq);

CREATE TABLE policy_decisions (
    seq          INTEGER NOT NULL,  -- the event that records it
    subject      TEXT NOT NULL CHECK (subject IN ('admission', 'refusal', 'run')),
    subject_id   TEXT NOT NULL,
    ord          INTEGER NOT NULL,  -- its place among the subject's decisions
    policy       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    input        TEXT NOT NULL,
    input_object TEXT REFERENCES objects(id),
    result       TEXT NOT NULL CHECK (result IN ('allowed', 'denied', 'failed')),
    messages     TEXT NOT NULL,     -- JSON array of strings
    PRIMARY KEY (subject_id, ord)
) STRICT;
CREATE INDEX policy_decisions_seq ON policy_decisions (seq);
