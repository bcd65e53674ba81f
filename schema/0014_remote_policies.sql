-- cto-ledger schema 14: the policies a remote requires (its `config/policies.json`), as
-- this host last read them. Local state like `remotes` (not a projection of the
-- journal): `pull` and `push` refresh it, and `admit` and `run stage2` refuse while a
-- required policy is not in force here as required (same file, same points).
CREATE TABLE remote_policies (
    remote  TEXT NOT NULL,
    name    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    applies TEXT NOT NULL,          -- JSON array: "admit", "run"
    fetched TEXT NOT NULL,
    PRIMARY KEY (remote, name)
) STRICT;
