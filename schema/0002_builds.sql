-- cto-ledger schema 2: builds (`cto-ledger build`), their outputs, the tracked files
-- they modified, the untracked files they created, and reproducibility checks.

CREATE TABLE builds (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    name            TEXT,            -- --name, e.g. `ca`
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'interrupted')),
    reason          TEXT,
    source_id       TEXT NOT NULL REFERENCES sources(id),   -- the clone before the build
    source_after_id TEXT REFERENCES sources(id),            -- and after it
    commit_id       TEXT NOT NULL,
    url             TEXT,
    argv            TEXT NOT NULL,   -- JSON array
    cwd             TEXT NOT NULL,
    started         TEXT NOT NULL,
    finished        TEXT NOT NULL,
    exit_code       INTEGER,
    signal          INTEGER,
    tools           TEXT NOT NULL,   -- JSON array of {name, version, path}
    env             TEXT NOT NULL,   -- JSON array of {name, value}
    stdout_object   TEXT REFERENCES objects(id),
    stderr_object   TEXT REFERENCES objects(id),
    check_of        TEXT REFERENCES builds(id),             -- set on `build --check` records
    check_result    TEXT CHECK (check_result IN ('reproduces', 'diverges', 'failed')),
    check_outputs   TEXT             -- JSON array of per-output comparisons
) STRICT;
CREATE INDEX builds_by_commit ON builds(commit_id);
CREATE INDEX builds_by_check_of ON builds(check_of);

CREATE TABLE build_outputs (
    build_id      TEXT NOT NULL REFERENCES builds(id),
    path          TEXT NOT NULL,     -- absolute path when it was written
    object        TEXT NOT NULL REFERENCES objects(id),
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    kind          TEXT NOT NULL,     -- blob or tree
    inside_source INTEGER NOT NULL,
    ignored       INTEGER NOT NULL,  -- matched by the clone's .gitignore
    PRIMARY KEY (build_id, path)
) STRICT;
CREATE INDEX build_outputs_by_object ON build_outputs(object);

CREATE TABLE build_modified (
    build_id   TEXT NOT NULL REFERENCES builds(id),
    path       TEXT NOT NULL,
    status     TEXT NOT NULL,
    old_object TEXT REFERENCES objects(id),
    new_object TEXT REFERENCES objects(id),
    PRIMARY KEY (build_id, path)
) STRICT;

CREATE TABLE build_created (
    build_id TEXT NOT NULL REFERENCES builds(id),
    path     TEXT NOT NULL,
    PRIMARY KEY (build_id, path)
) STRICT;
