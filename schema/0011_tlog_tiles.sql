-- The journal's Merkle tree above its leaves, as C2SP tlog-tiles keeps it: at tile level
-- L >= 1, the hash of every complete subtree of 256^L leaves, in order. With the leaves
-- (the journal's own hashes) these are every hash tile's rows: any checkpoint, inclusion
-- or consistency proof reads O(log n) of them. Derived from the journal: `reindex`
-- rebuilds it and `audit` recomputes it.
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
