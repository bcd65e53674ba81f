-- cto-ledger schema 4: remotes (S3-compatible object storage shared by many hosts).
--
-- None of these tables is a projection: they are this host's own state, like git's
-- remote-tracking refs, and `reindex` leaves them alone.

-- A configured remote and how far this ledger is known to agree with it: local
-- events 1..synced_seq are byte for byte the remote's journal/1..synced_seq.
CREATE TABLE remotes (
    name        TEXT PRIMARY KEY,
    url         TEXT NOT NULL,     -- s3://bucket/prefix
    endpoint    TEXT,              -- http(s)://host:port for S3-compatible servers
    region      TEXT,
    added       TEXT NOT NULL,
    synced_seq  INTEGER NOT NULL DEFAULT 0,
    synced_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    synced_time TEXT
) STRICT;

-- Local events that were not yet on the remote when another host's events arrived
-- (or that the remote no longer holds) are re-appended after the remote's head. Their
-- old form is kept so a checkpoint taken before can still be proven (docs/remote.md).
CREATE TABLE rebases (
    id            INTEGER PRIMARY KEY,
    time          TEXT NOT NULL,
    remote        TEXT NOT NULL,
    reason        TEXT NOT NULL,   -- `behind` (remote moved on) or `replaced` (remote lost events it had)
    base_seq      INTEGER NOT NULL,
    base_hash     TEXT NOT NULL,
    old_head_seq  INTEGER NOT NULL,
    old_head_hash TEXT NOT NULL,
    new_head_seq  INTEGER NOT NULL,
    new_head_hash TEXT NOT NULL
) STRICT;

CREATE TABLE rebased_events (
    rebase        INTEGER NOT NULL REFERENCES rebases(id),
    old_seq       INTEGER NOT NULL,
    old_prev_hash TEXT NOT NULL,
    old_hash      TEXT NOT NULL,
    old_event     TEXT NOT NULL,
    new_seq       INTEGER NOT NULL, -- where the same event stands now
    PRIMARY KEY (rebase, old_seq)
) STRICT;
CREATE INDEX rebased_by_hash ON rebased_events(old_hash);
