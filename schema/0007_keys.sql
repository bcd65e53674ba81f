-- cto-ledger schema 7: signing keys and signed checkpoints.
--
-- `keys` and `key_revocations` are projections of `key` and `key_revocation` events.
-- `checkpoints` (signed notes this host made or took from a remote) and
-- `remote_checkpoints` (which of them each remote published) are this host's
-- bookkeeping, not projections: each is checked against the journal by `audit`.
CREATE TABLE keys (
    keyid      TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL UNIQUE,
    algorithm  TEXT NOT NULL,
    public_key TEXT NOT NULL,
    replaces   TEXT,
    actor      TEXT NOT NULL,
    time       TEXT NOT NULL
) STRICT;

CREATE TABLE key_revocations (
    keyid  TEXT PRIMARY KEY REFERENCES keys(keyid),
    seq    INTEGER NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL,
    time   TEXT NOT NULL
) STRICT;

CREATE TABLE checkpoints (
    size   INTEGER NOT NULL,
    keyid  TEXT NOT NULL,
    root   TEXT NOT NULL,
    note   TEXT NOT NULL,
    time   TEXT NOT NULL,
    PRIMARY KEY (size, keyid)
) STRICT;

CREATE TABLE remote_checkpoints (
    remote TEXT NOT NULL,
    size   INTEGER NOT NULL,
    keyid  TEXT NOT NULL,
    root   TEXT NOT NULL,
    note   TEXT NOT NULL,
    time   TEXT NOT NULL,
    PRIMARY KEY (remote, size, keyid)
) STRICT;
