//! The signing log: the Merkle tree over the journal, signed checkpoints, inclusion and
//! consistency proofs, and the keys that sign them. The pure parts (hashing, notes,
//! envelopes) are in [`crate::sign`]; this module binds them to a ledger.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::{Body, KeyRec};
use crate::ledger::query::Node;
use crate::ledger::tlog::{CheckpointRow, KeyRow};
use crate::ledger::Ledger;
use crate::offline::proof::{ConsistencyProof, InclusionProof, Proof, ProvenEntry};
use crate::sign::keys::{self, PublicKey, SecretKey};
use crate::sign::merkle::{self, Hash};
use crate::sign::note::{Checkpoint, SignedNote};

/// The log's name in its checkpoints: `cto-ledger/` and the first 32 hex digits of the
/// hash of event 1 (shared by every host of one ledger, unique between ledgers).
pub(crate) fn origin(l: &Ledger) -> Result<String> {
    let first = l.row_at(1)?.ok_or_else(|| {
        Error::bad_input(
            "the ledger has no events yet, so there is no log to sign",
            "record something first (e.g. `cto-ledger init`)",
        )
    })?;
    Ok(origin_of(&first.hash))
}

/// The origin of the log whose event 1 has chain hash `first` (hex).
pub(crate) fn origin_of(first: &str) -> String {
    format!("cto-ledger/{}", &first[..32.min(first.len())])
}

/// The leaves of the tree of the first `size` events.
pub(crate) fn leaves(l: &Ledger, size: u64) -> Result<Vec<Hash>> {
    crate::ledger::tiles::level_hashes(l.conn(), 0, 0, size)
}

/// The Merkle tree over the journal, read from its tiles.
pub(crate) fn tree(l: &Ledger) -> crate::ledger::tiles::Tiles<'_> {
    crate::ledger::tiles::Tiles(l.conn())
}

/// The root of the tree of the first `size` events (`size` no larger than the journal).
pub(crate) fn root_of(l: &Ledger, size: u64) -> Result<Hash> {
    if size > l.head()?.seq {
        return Err(Error::bad_input(
            format!("the journal has fewer than {size} events"),
            "give a size no larger than the journal (see `cto-ledger checkpoint`)",
        ));
    }
    merkle::Subtrees::range(&tree(l), 0, size as usize)
}

/// A recorded key's public half.
pub(crate) fn public_of(k: &KeyRow) -> Result<PublicKey> {
    PublicKey::from_raw_b64(&k.public_key).map_err(|e| Error::Integrity {
        message: format!(
            "key {} recorded in event {} is damaged: {e}",
            k.keyid, k.seq
        ),
    })
}

/// The key this host signs with, loaded and checked against the journal (see
/// [`current_key`]).
pub(crate) fn signer(home: &Home) -> Result<(SecretKey, KeyRow)> {
    let path = keys::key_path()?;
    settle_rotation(home, &path)?;
    let key = keys::load(&path, &home.dir)?;
    let row = current_key(home, &key, &path)?;
    Ok((key, row))
}

/// Finishes a `key rotate` killed after the journal named the new key: its private half
/// waits beside the key file (`keys::pending_path`), and takes the file's place when the
/// journal records it as the active key replacing the file's. A pending key the journal
/// does not name (killed before recording) is left for the next `key rotate` to replace.
pub(crate) fn settle_rotation(
    home: &Home,
    path: &std::path::Path,
) -> Result<Option<crate::keyring::Recorded>> {
    let next = keys::pending_path(path);
    if std::fs::symlink_metadata(&next).is_err() {
        return Ok(None);
    }
    let pending = keys::load(&next, &home.dir)?.public().keyid();
    let Some(row) = home.ledger.keys_matching(&pending)?.into_iter().next() else {
        return Ok(None);
    };
    let current = keys::load(path, &home.dir).ok().map(|k| k.public().keyid());
    let takes_over = row.replaced_by.is_none()
        && row.revoked.is_none()
        && (current.is_none() || row.replaces == current);
    if !takes_over {
        return Ok(None);
    }
    keys::promote(path)?;
    Ok(Some(crate::keyring::Recorded {
        keyid: row.keyid,
        path: path.to_path_buf(),
        generated: true,
        replaces: row.replaces,
        seq: row.seq,
    }))
}

/// `key`'s record, if it may sign: recorded (by `key generate`), not revoked and not
/// retired by `key rotate`.
pub(crate) fn current_key(home: &Home, key: &SecretKey, path: &std::path::Path) -> Result<KeyRow> {
    let keyid = key.public().keyid();
    let row = home
        .ledger
        .keys_matching(&keyid)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::bad_input(
                format!(
                    "signing key {} ({}) is not recorded in this ledger",
                    &keyid[..16],
                    path.display()
                ),
                "run `cto-ledger key generate`: it records an existing key's public half",
            )
        })?;
    if let Some(r) = &row.revoked {
        return Err(Error::bad_input(
            format!(
                "signing key {} was revoked (event {}: {})",
                &keyid[..16],
                r.seq,
                r.reason
            ),
            "make a new key with `cto-ledger key rotate`",
        ));
    }
    if let Some(by) = &row.replaced_by {
        return Err(Error::bad_input(
            format!(
                "signing key {} at {} was retired: key {} replaced it",
                &keyid[..16],
                path.display(),
                &by[..16]
            ),
            "point CTO_LEDGER_KEY at the current key (or `key rotate` again)",
        ));
    }
    Ok(row)
}

/// The `key` event recording `key`'s public half.
pub(crate) fn key_event(key: &PublicKey, replaces: Option<String>) -> Body {
    Body::Key(KeyRec {
        keyid: key.keyid(),
        algorithm: keys::ALGORITHM.into(),
        public_key: key.raw_b64(),
        replaces,
    })
}

/// Signs the tree of the first `size` events and keeps the note in the ledger.
pub(crate) fn sign_checkpoint(home: &Home, key: &SecretKey, size: u64) -> Result<CheckpointRow> {
    let origin = origin(&home.ledger)?;
    let root = root_of(&home.ledger, size)?;
    let cp = Checkpoint {
        origin: origin.clone(),
        size,
        root,
    };
    let row = CheckpointRow {
        size,
        keyid: key.public().keyid(),
        root: hex::encode(root),
        note: cp.sign(&origin, key),
        time: crate::ledger::now(),
    };
    home.ledger.save_checkpoint(&row)?;
    Ok(row)
}

/// `checkpoint --sign`: signs the journal's head with this host's key, unless events
/// past what some remote holds could still be re-numbered by a pull.
pub(crate) fn sign_head(home: &Home) -> Result<CheckpointRow> {
    let (key, _) = signer(home)?;
    let head = home.ledger.head()?;
    // A pull re-numbers events no remote has yet; a signed tree must never move.
    if let Some(r) = home
        .ledger
        .remotes()?
        .into_iter()
        .max_by_key(|r| r.synced.seq)
    {
        if r.synced.seq < head.seq {
            return Err(Error::bad_input(
                format!(
                    "events {}..{} are not on any remote yet (remote `{}` has up to {}); a pull could still re-number them",
                    r.synced.seq + 1,
                    head.seq,
                    r.name,
                    r.synced.seq
                ),
                "run `cto-ledger push` first: it publishes the events and signs a checkpoint of them",
            ));
        }
    }
    sign_checkpoint(home, &key, head.seq)
}

/// What checking a signed note against a ledger found.
#[derive(Debug, Serialize)]
pub(crate) struct NoteCheck {
    pub size: u64,
    pub root: String,
    pub keyid: Option<String>,
    /// Empty when the note is signed by a recorded key and commits to this journal.
    pub problems: Vec<String>,
    /// Signed by a recorded, unrevoked key, for this log, and yet not a checkpoint of
    /// this journal: proof that the log showed someone a different history.
    pub contradicts: bool,
}

/// What checking signed notes against one ledger needs, read once: the log's origin,
/// its recorded keys and the leaves of the whole journal (`audit` checks every kept note,
/// `pull` every new one: one read of the journal serves them all).
pub(crate) struct NoteChecker {
    origin: String,
    keys: Vec<(PublicKey, KeyRow)>,
    leaves: Vec<Hash>,
}

impl NoteChecker {
    pub(crate) fn new(l: &Ledger) -> Result<NoteChecker> {
        let keys = l
            .keys()?
            .into_iter()
            .map(|k| Ok((public_of(&k)?, k)))
            .collect::<Result<_>>()?;
        Ok(NoteChecker {
            origin: origin(l)?,
            keys,
            leaves: leaves(l, l.head()?.seq)?,
        })
    }

    /// Checks a signed note: its origin is this ledger's, a recorded key signed it, and
    /// the tree of the journal's first `size` events has its root. `Err` is a note that
    /// does not parse.
    pub(crate) fn check(&self, text: &str) -> std::result::Result<NoteCheck, String> {
        let note = SignedNote::parse(text)?;
        let cp = &note.checkpoint;
        let mut out = NoteCheck {
            size: cp.size,
            root: hex::encode(cp.root),
            keyid: None,
            problems: Vec::new(),
            contradicts: false,
        };
        if cp.origin != self.origin {
            out.problems.push(format!(
                "its origin is `{}`, this ledger's is `{}`",
                cp.origin, self.origin
            ));
        }
        let mut revoked = false;
        if let Some((_, k)) = self.keys.iter().find(|(p, _)| note.verify(p).is_ok()) {
            if let Some(r) = &k.revoked {
                revoked = true;
                out.problems.push(format!(
                    "it is signed by key {}, revoked in event {}: {}",
                    &k.keyid[..16],
                    r.seq,
                    r.reason
                ));
            }
            out.keyid = Some(k.keyid.clone());
        } else {
            out.problems.push(
                "no key recorded in this ledger made its signature (or the note was altered)"
                    .into(),
            );
        }
        match self.leaves.get(..cp.size as usize) {
            None => out.problems.push(format!(
                "it covers {} events but the journal has only {}: the journal was truncated",
                cp.size,
                self.leaves.len()
            )),
            Some(prefix) => {
                let root = merkle::root(prefix);
                if root != cp.root {
                    out.problems.push(format!(
                        "the journal's first {} events have root {}, not the note's {}: history was rewritten",
                        cp.size,
                        B64.encode(root),
                        B64.encode(cp.root)
                    ));
                }
            }
        }
        // Problems beyond the journal's own are the origin's, the signature's or the
        // key's revocation: then the note vouches for nothing.
        let vouches = out.keyid.is_some() && cp.origin == self.origin && !revoked;
        out.contradicts = vouches && !out.problems.is_empty();
        Ok(out)
    }
}

fn b64_all(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(|h| B64.encode(h)).collect()
}

/// The newest of `kept` (smallest first) covering the first `at_least` events.
fn newest_covering(kept: &[CheckpointRow], at_least: u64) -> Option<&CheckpointRow> {
    kept.iter().rev().find(|c| c.size >= at_least)
}

/// The newest kept checkpoint covering the first `at_least` events.
pub(crate) fn covering(l: &Ledger, at_least: u64) -> Result<Option<CheckpointRow>> {
    Ok(newest_covering(&l.checkpoints()?, at_least).cloned())
}

/// The event `prove REF` proves: for a file, its newest admission that a kept
/// checkpoint covers (that of size `size` when given), else the event of the node.
pub(crate) fn event_to_prove(l: &Ledger, node: &Node, size: Option<u64>) -> Result<Option<u64>> {
    let covered = size.or(l.checkpoints()?.last().map(|c| c.size));
    if let (Node::Object(o), Some(size)) = (node, covered) {
        let admitted = l.admissions_of_object(o)?;
        if let Some(a) = admitted.iter().rev().find(|v| v.admission.seq <= size) {
            return Ok(Some(a.admission.seq));
        }
    }
    l.event_of(node)
}

/// The kept checkpoint to prove against: the one at `size` when given, else the
/// newest one covering event `at_least`.
fn checkpoint_for(
    kept: &[CheckpointRow],
    size: Option<u64>,
    at_least: u64,
) -> Result<CheckpointRow> {
    let found = match size {
        Some(n) => kept.iter().rev().find(|c| c.size == n),
        None => newest_covering(kept, at_least),
    };
    found.cloned().ok_or_else(|| {
        let what = match size {
            Some(n) => format!("no signed checkpoint of size {n} is kept in this ledger"),
            None => format!("no signed checkpoint covers event {at_least} yet"),
        };
        Error::bad_input(
            what,
            "sign one with `cto-ledger checkpoint --sign`, then prove again",
        )
    })
}

/// The inclusion proof of event `seq` in a kept signed checkpoint; for an admission,
/// with the proof of its revocation when the checkpoint covers one.
pub(crate) fn prove_inclusion(l: &Ledger, seq: u64, size: Option<u64>) -> Result<Proof> {
    let cp = checkpoint_for(&l.checkpoints()?, size, seq)?;
    let mut proof = inclusion(l, &cp, seq)?;
    let target = serde_json::from_str::<crate::ledger::events::Event>(&proof.entry.event)
        .ok()
        .and_then(|e| e.body.revocable());
    if let Some(rev) = target.map(|t| l.revocation_of(&t)).transpose()?.flatten() {
        if rev.seq <= cp.size {
            proof.revoked_by = Some(Box::new(inclusion(l, &cp, rev.seq)?));
        }
    }
    Ok(Proof::Inclusion(proof))
}

fn inclusion(l: &Ledger, cp: &CheckpointRow, seq: u64) -> Result<InclusionProof> {
    if seq == 0 || seq > cp.size {
        return Err(Error::bad_input(
            format!("event {seq} is not in the checkpoint of size {}", cp.size),
            "prove an event between 1 and the checkpoint's size",
        ));
    }
    let row = l.row_at(seq)?.expect("within the journal");
    let index = (seq - 1) as usize;
    let tree = tree(l);
    Ok(InclusionProof {
        leaf_index: seq - 1,
        tree_size: cp.size,
        leaf_hash: B64.encode(merkle::Subtrees::range(&tree, index, index + 1)?),
        hashes: b64_all(&merkle::inclusion_proof_in(&tree, cp.size as usize, index)?),
        entry: ProvenEntry {
            seq,
            prev_hash: row.prev_hash,
            hash: row.hash,
            event: row.event,
        },
        checkpoint: cp.note.clone(),
        revoked_by: None,
    })
}

/// The consistency proof from the tree of `old` events to a kept signed checkpoint.
pub(crate) fn prove_consistency(l: &Ledger, old: u64, new: Option<u64>) -> Result<Proof> {
    let kept = l.checkpoints()?;
    let newest = kept.iter().map(|c| c.size).max();
    let cp = checkpoint_for(&kept, Some(new.or(newest).unwrap_or(0)), 0)?;
    if old > cp.size {
        return Err(Error::bad_input(
            format!(
                "old size {old} is larger than the checkpoint's size {}",
                cp.size
            ),
            "give an old size no larger than the new one",
        ));
    }
    let tree = tree(l);
    let old_checkpoint = kept
        .iter()
        .rev()
        .find(|c| c.size == old)
        .map(|c| c.note.clone());
    Ok(Proof::Consistency(ConsistencyProof {
        old_size: old,
        new_size: cp.size,
        old_root: B64.encode(merkle::Subtrees::range(&tree, 0, old as usize)?),
        hashes: b64_all(&merkle::consistency_proof_in(
            &tree,
            cp.size as usize,
            old as usize,
        )?),
        old_checkpoint,
        checkpoint: cp.note,
    }))
}
