//! What the signing log reads and keeps: recorded keys, the journal's entry hashes (the
//! Merkle tree's leaves) and signed checkpoints.

use rusqlite::{params, OptionalExtension as _, Row};
use serde::Serialize;

use super::query::Node;
use super::rows::FromRow;
use super::Ledger;
use crate::error::{Error, Result};

/// A recorded signing key, with its revocation if any.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyRow {
    pub keyid: String,
    pub seq: u64,
    pub algorithm: String,
    /// Raw public key, base64.
    pub public_key: String,
    pub replaces: Option<String>,
    /// The key that replaced this one (`key rotate`), if any.
    pub replaced_by: Option<String>,
    pub actor: String,
    pub time: String,
    pub revoked: Option<KeyRevocationRow>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyRevocationRow {
    pub seq: u64,
    pub reason: String,
    pub actor: String,
    pub time: String,
}

/// A witness in force (`witness add`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WitnessRow {
    pub name: String,
    pub vkey: String,
    pub url: Option<String>,
    pub seq: u64,
}

/// A signed checkpoint kept in the ledger.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckpointRow {
    pub size: u64,
    pub keyid: String,
    /// Hex.
    pub root: String,
    pub note: String,
    pub time: String,
}

impl FromRow for KeyRow {
    const COLUMNS: &'static str = "k.keyid, k.seq, k.algorithm, k.public_key, k.replaces,
        (SELECT n.keyid FROM keys n WHERE n.replaces = k.keyid ORDER BY n.seq LIMIT 1),
        k.actor, k.time, r.seq, r.reason, r.actor, r.time";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let revoked = match r.get::<_, Option<i64>>(8)? {
            Some(seq) => Some(KeyRevocationRow {
                seq: seq as u64,
                reason: r.get(9)?,
                actor: r.get(10)?,
                time: r.get(11)?,
            }),
            None => None,
        };
        Ok(KeyRow {
            keyid: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            algorithm: r.get(2)?,
            public_key: r.get(3)?,
            replaces: r.get(4)?,
            replaced_by: r.get(5)?,
            actor: r.get(6)?,
            time: r.get(7)?,
            revoked,
        })
    }
}

impl FromRow for CheckpointRow {
    const COLUMNS: &'static str = "size, keyid, root, note, time";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(CheckpointRow {
            size: r.get::<_, i64>(0)? as u64,
            keyid: r.get(1)?,
            root: r.get(2)?,
            note: r.get(3)?,
            time: r.get(4)?,
        })
    }
}

const KEYS: &str = "keys k LEFT JOIN key_revocations r ON r.keyid = k.keyid";

impl Ledger {
    /// The journal event that records `node`: the event that created it; for a file,
    /// its newest admission (else the event that first named it); for a commit, its
    /// newest source snapshot.
    pub(crate) fn event_of(&self, node: &Node) -> Result<Option<u64>> {
        let (sql, id) = match node {
            Node::Object(o) => (
                "SELECT coalesce((SELECT max(seq) FROM admissions WHERE object = ?1), (SELECT seq FROM objects WHERE id = ?1))",
                o.to_string(),
            ),
            Node::Admission(i) => ("SELECT seq FROM admissions WHERE id = ?1", i.to_string()),
            Node::ModelAdmission(i) => ("SELECT seq FROM model_admissions WHERE id = ?1", i.to_string()),
            Node::Source(i) => ("SELECT seq FROM sources WHERE id = ?1", i.to_string()),
            Node::Commit(c) => ("SELECT max(seq) FROM sources WHERE commit_id = ?1", c.to_string()),
            Node::Run(r) => ("SELECT seq FROM runs WHERE id = ?1", r.to_string()),
            Node::Refusal(i) => ("SELECT seq FROM refusals WHERE id = ?1", i.to_string()),
            Node::Revocation(i) => ("SELECT seq FROM revocations WHERE id = ?1", i.to_string()),
            Node::Build(i) => ("SELECT seq FROM builds WHERE id = ?1", i.to_string()),
        };
        let seq: Option<Option<i64>> = self
            .conn
            .query_row(sql, [id], |r| r.get(0))
            .optional()
            .map_err(Error::sql("find the event of a node"))?;
        Ok(seq.flatten().map(|s| s as u64))
    }

    /// Every recorded key, oldest first.
    pub(crate) fn keys(&self) -> Result<Vec<KeyRow>> {
        self.rows_of("read keys", &format!("{KEYS} ORDER BY k.seq"), [])
    }

    /// The keys whose id starts with `prefix`.
    pub(crate) fn keys_matching(&self, prefix: &str) -> Result<Vec<KeyRow>> {
        Ok(self
            .keys()?
            .into_iter()
            .filter(|k| k.keyid.starts_with(prefix))
            .collect())
    }

    /// The witnesses in force: each name's newest `witness` event that is not a
    /// removal, by name.
    pub(crate) fn witnesses(&self) -> Result<Vec<WitnessRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT w.name, w.vkey, w.url, w.seq FROM witness_events w
                 WHERE w.seq = (SELECT MAX(seq) FROM witness_events WHERE name = w.name)
                   AND w.removed = 0 ORDER BY w.name",
            )
            .map_err(Error::sql("read witnesses"))?;
        let rows = st
            .query_map([], |r| {
                Ok(WitnessRow {
                    name: r.get(0)?,
                    vkey: r.get(1)?,
                    url: r.get(2)?,
                    seq: r.get::<_, i64>(3)? as u64,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(Error::sql("read witnesses"))?;
        Ok(rows)
    }

    /// Keeps a signed checkpoint (once per size and key).
    pub(crate) fn save_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO checkpoints (size, keyid, root, note, time) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.size as i64, c.keyid, c.root, c.note, c.time],
            )
            .map_err(Error::sql("keep checkpoint"))?;
        Ok(())
    }

    /// Replaces a kept checkpoint's note (the same note with witnesses' cosignatures).
    pub(crate) fn update_checkpoint_note(&self, size: u64, keyid: &str, note: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE checkpoints SET note = ?3 WHERE size = ?1 AND keyid = ?2",
                params![size as i64, keyid, note],
            )
            .map_err(Error::sql("keep the cosigned checkpoint"))?;
        Ok(())
    }

    /// Kept checkpoints, smallest first.
    pub(crate) fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        self.rows_of("read checkpoints", "checkpoints ORDER BY size, time", [])
    }

    /// Records that remote `remote` published checkpoint `c`.
    pub(crate) fn save_remote_checkpoint(&self, remote: &str, c: &CheckpointRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO remote_checkpoints (remote, size, keyid, root, note, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![remote, c.size as i64, c.keyid, c.root, c.note, c.time],
            )
            .map_err(Error::sql("keep remote checkpoint"))?;
        Ok(())
    }

    /// The largest checkpoint seen from `remote`.
    pub(crate) fn latest_remote_checkpoint(&self, remote: &str) -> Result<Option<CheckpointRow>> {
        self.row_of(
            "read remote checkpoints",
            "remote_checkpoints WHERE remote = ?1 ORDER BY size DESC LIMIT 1",
            [remote],
        )
    }

    /// Every checkpoint seen from `remote`, smallest first.
    pub(crate) fn remote_checkpoints(&self, remote: &str) -> Result<Vec<CheckpointRow>> {
        self.rows_of(
            "read remote checkpoints",
            "remote_checkpoints WHERE remote = ?1 ORDER BY size",
            [remote],
        )
    }

    /// Whether `remote` published a checkpoint of `size` signed by a key whose id is or
    /// starts with `keyid` (the remote's key names carry 16 hex digits of it).
    pub(crate) fn has_remote_checkpoint(
        &self,
        remote: &str,
        size: u64,
        keyid: &str,
    ) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM remote_checkpoints WHERE remote = ?1 AND size = ?2 AND substr(keyid, 1, 16) = substr(?3, 1, 16)",
                params![remote, size as i64, keyid],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(Error::sql("read remote checkpoints"))
    }
}

/// The largest tree size any signed checkpoint (made here or seen on a remote) commits
/// to: events up to it can never move. Inside the caller's transaction.
pub(super) fn signed_size(conn: &rusqlite::Connection) -> Result<u64> {
    let n: Option<i64> = conn
            .query_row(
                "SELECT max(size) FROM (SELECT size FROM checkpoints UNION ALL SELECT size FROM remote_checkpoints)",
                [],
                |r| r.get(0),
            )
            .map_err(Error::sql("read checkpoints"))?;
    Ok(n.unwrap_or(0) as u64)
}
