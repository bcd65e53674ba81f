-- cto-ledger schema 1. Never edit a migration that has shipped; add the next file.
--
-- `journal` is the source of truth: one canonical JSON (RFC 8785) event per row,
-- chained by hash = SHA-256(prev_hash || event). Every other table is a projection
-- of the journal that `cto-ledger reindex` rebuilds and `cto-ledger audit` checks.

CREATE TABLE journal (
    seq       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    time      TEXT NOT NULL,
    event     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

CREATE TRIGGER journal_is_append_only_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: UPDATE refused'); END;
CREATE TRIGGER journal_is_append_only_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: DELETE refused'); END;

-- Every object the ledger names: BLAKE3 id, SHA-256, size, blob or tree.
CREATE TABLE objects (
    id     TEXT PRIMARY KEY,   -- blake3:<hex>
    sha256 TEXT NOT NULL,      -- sha256:<hex>
    size   INTEGER NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('blob', 'tree')),
    seq    INTEGER NOT NULL    -- the event that first named it
) STRICT;
CREATE INDEX objects_by_sha256 ON objects(sha256);

CREATE TABLE ingests (
    seq    INTEGER NOT NULL,
    path   TEXT NOT NULL,
    object TEXT NOT NULL REFERENCES objects(id),
    kind   TEXT NOT NULL,          -- blob or tree
    artifact_kind TEXT,            -- what the user said it is (--kind)
    label  TEXT,
    PRIMARY KEY (seq, path)
) STRICT;
CREATE INDEX ingests_by_object ON ingests(object);

-- A git clone as it was when recorded: commit, branch, remote, snapshot of tracked files.
CREATE TABLE sources (
    id        TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    path      TEXT NOT NULL,
    url       TEXT,
    commit_id TEXT NOT NULL,
    branch    TEXT,
    tree_id   TEXT NOT NULL,
    snapshot  TEXT NOT NULL REFERENCES objects(id),
    time      TEXT NOT NULL
) STRICT;
CREATE INDEX sources_by_commit ON sources(commit_id);

-- Tracked paths that differed from the commit (modified, deleted, ...) and untracked files.
CREATE TABLE source_changes (
    source_id TEXT NOT NULL REFERENCES sources(id),
    path      TEXT NOT NULL,
    status    TEXT NOT NULL,
    object    TEXT REFERENCES objects(id),
    PRIMARY KEY (source_id, path)
) STRICT;

CREATE TABLE admissions (
    id        TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    object    TEXT NOT NULL REFERENCES objects(id),
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    path      TEXT NOT NULL,
    pin       TEXT,            -- as typed; NULL only for the bundled fake provider
    commit_id TEXT,
    source_id TEXT REFERENCES sources(id),
    scope     TEXT NOT NULL CHECK (scope IN ('any', 'fake-lane')),
    build_id  TEXT,
    decisions TEXT NOT NULL,   -- JSON array of the policy decisions taken
    actor     TEXT NOT NULL,
    time      TEXT NOT NULL
) STRICT;
CREATE INDEX admissions_by_object ON admissions(object);
CREATE INDEX admissions_by_sha256 ON admissions(sha256);
CREATE INDEX admissions_by_name ON admissions(name);

-- Modified tracked files an admission accepted, with their contents.
CREATE TABLE admission_modified (
    admission_id TEXT NOT NULL REFERENCES admissions(id),
    path         TEXT NOT NULL,
    status       TEXT NOT NULL,
    object       TEXT REFERENCES objects(id),
    PRIMARY KEY (admission_id, path)
) STRICT;

CREATE TABLE refusals (
    id        TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    subject   TEXT NOT NULL,
    path      TEXT,
    object    TEXT,
    sha256    TEXT,
    pin       TEXT,
    source_id TEXT REFERENCES sources(id),
    reason    TEXT NOT NULL,
    message   TEXT NOT NULL,
    actor     TEXT NOT NULL,
    time      TEXT NOT NULL
) STRICT;

CREATE TABLE model_admissions (
    id       TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model    TEXT NOT NULL,
    actor    TEXT NOT NULL,
    time     TEXT NOT NULL
) STRICT;
CREATE INDEX model_admissions_by_pair ON model_admissions(provider, model);

CREATE TABLE revocations (
    id     TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    target TEXT NOT NULL,      -- an admission or model admission id
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL,
    time   TEXT NOT NULL
) STRICT;
CREATE INDEX revocations_by_target ON revocations(target);

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    fixture            TEXT NOT NULL,
    lane               TEXT NOT NULL,
    status             TEXT NOT NULL,
    verdict            TEXT NOT NULL,
    provider_started   INTEGER NOT NULL,
    provider_path      TEXT,
    provider_object    TEXT,
    provider_admission TEXT,
    model              TEXT,
    model_admission    TEXT,
    config_object      TEXT,
    report_object      TEXT,
    tree_object        TEXT,
    run_dir            TEXT NOT NULL,
    started            TEXT NOT NULL,
    finished           TEXT NOT NULL
) STRICT;
CREATE INDEX runs_by_provider_admission ON runs(provider_admission);
CREATE INDEX runs_by_provider_object ON runs(provider_object);
CREATE INDEX runs_by_model_admission ON runs(model_admission);

CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    path   TEXT NOT NULL,
    object TEXT NOT NULL REFERENCES objects(id),
    PRIMARY KEY (run_id, path)
) STRICT;
CREATE INDEX run_artifacts_by_object ON run_artifacts(object);
