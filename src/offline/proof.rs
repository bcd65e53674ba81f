//! Checking a proof from `prove` with nothing but the log's public key: the
//! checkpoint's signature, the Merkle path to its root, and (inclusion) that the entry's
//! bytes hash to the proven leaf. No ledger is opened.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ledger::chain_hash;
use crate::ledger::events::{Body, Event};
use crate::sign::keys::PublicKey;
use crate::sign::merkle::{self, Hash};
use crate::sign::note::{Checkpoint, SignedNote};

/// The journal entry a proof is about, as it was hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvenEntry {
    pub seq: u64,
    /// Hex, as the journal stores it.
    pub prev_hash: String,
    pub hash: String,
    /// The event's canonical JSON, byte for byte.
    pub event: String,
}

/// An inclusion or consistency proof, with the signed checkpoint(s) it verifies against.
/// Merkle hashes are base64 (as in the notes); entry hashes are hex (as in the journal).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Proof {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
    pub entry: ProvenEntry,
    pub checkpoint: String,
    /// For an admission: the inclusion proof, against the same checkpoint, of the event
    /// that revoked it, when the checkpoint covers one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_by: Option<Box<InclusionProof>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: String,
    pub hashes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old_checkpoint: Option<String>,
    pub checkpoint: String,
}

/// What `verify-proof` established.
#[derive(Debug, Serialize)]
pub(crate) struct ProofCheck {
    pub ok: bool,
    pub kind: &'static str,
    pub origin: Option<String>,
    pub tree_size: Option<u64>,
    /// The proven event, decoded (inclusion proofs).
    pub event: Option<serde_json::Value>,
    /// The proven admission's revocation (event, reason), when the proof carries one.
    pub revoked: Option<(u64, String)>,
    pub problems: Vec<String>,
}

fn hash_of(s: &str, what: &str) -> std::result::Result<Hash, String> {
    B64.decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} is not a base64 SHA-256 hash"))
}

fn hashes_of(v: &[String]) -> std::result::Result<Vec<Hash>, String> {
    v.iter()
        .enumerate()
        .map(|(i, h)| hash_of(h, &format!("hashes[{i}]")))
        .collect()
}

/// A note, parsed and checked against `key`; a parse error is the `Err`.
fn checked_note(
    text: &str,
    key: &PublicKey,
    what: &str,
    problems: &mut Vec<String>,
) -> std::result::Result<Checkpoint, String> {
    let note = SignedNote::parse(text).map_err(|e| format!("{what} is not a signed note: {e}"))?;
    if let Err(e) = note.verify(key) {
        problems.push(format!("{what}: {e}"));
    }
    Ok(note.checkpoint)
}

/// Checks a proof offline with nothing but `key`. `Err` is a malformed proof.
pub(crate) fn verify(proof: &Proof, key: &PublicKey) -> std::result::Result<ProofCheck, String> {
    match proof {
        Proof::Inclusion(p) => verify_inclusion(p, key),
        Proof::Consistency(p) => verify_consistency(p, key),
    }
}

fn verify_inclusion(
    p: &InclusionProof,
    key: &PublicKey,
) -> std::result::Result<ProofCheck, String> {
    let entry = &p.entry;
    let mut problems = Vec::new();
    let cp = checked_note(&p.checkpoint, key, "the checkpoint", &mut problems)?;
    let path = hashes_of(&p.hashes)?;
    let claimed_leaf = hash_of(&p.leaf_hash, "leaf_hash")?;
    let mut entry_hash = [0u8; 32];
    hex::decode_to_slice(&entry.hash, &mut entry_hash)
        .map_err(|_| "entry.hash is not 64 hex digits".to_string())?;
    if chain_hash(&entry.prev_hash, entry.event.as_bytes()).0 != entry_hash {
        problems.push(format!("entry {}: its event bytes and prev_hash do not hash to its hash (the event was altered)", entry.seq));
    }
    let leaf = merkle::leaf_hash(&entry_hash);
    if leaf != claimed_leaf {
        problems.push("leaf_hash is not the hash of the entry".into());
    }
    if entry.seq != p.leaf_index + 1 {
        problems.push(format!("entry {} is not leaf {}", entry.seq, p.leaf_index));
    }
    if p.tree_size != cp.size {
        problems.push(format!(
            "the proof is for a tree of {} but the checkpoint has {}",
            p.tree_size, cp.size
        ));
    }
    if let Err(e) = merkle::verify_inclusion(p.leaf_index, cp.size, &leaf, &path, &cp.root) {
        problems.push(e);
    }
    // Bytes that do not hash are reported above; what they say is then moot.
    let event = match serde_json::from_str::<Event>(&entry.event) {
        Ok(e) if e.seq != entry.seq => {
            problems.push(format!(
                "the event says it is event {}, the entry says {}",
                e.seq, entry.seq
            ));
            None
        }
        Ok(_) => serde_json::from_str(&entry.event).ok(),
        Err(e) => {
            problems.push(format!("entry.event is not a journal event: {e}"));
            None
        }
    };
    let revoked = match &p.revoked_by {
        Some(r) => check_revocation(r, p, key, &mut problems)?,
        None => None,
    };
    Ok(ProofCheck {
        ok: problems.is_empty(),
        kind: "inclusion",
        origin: Some(cp.origin),
        tree_size: Some(cp.size),
        event,
        revoked,
        problems,
    })
}

/// The revocation a proof carries: proven against the same checkpoint, and a revocation
/// of the proven admission. A revoked admission is a failed check: the proof shows the
/// admission no longer holds.
fn check_revocation(
    r: &InclusionProof,
    p: &InclusionProof,
    key: &PublicKey,
    problems: &mut Vec<String>,
) -> std::result::Result<Option<(u64, String)>, String> {
    let check = verify_inclusion(r, key)?;
    problems.extend(check.problems.iter().map(|e| format!("revoked_by: {e}")));
    if r.checkpoint != p.checkpoint {
        problems.push("revoked_by is proven against another checkpoint".into());
    }
    let target = serde_json::from_str::<Event>(&p.entry.event)
        .ok()
        .and_then(|e| e.body.revocable());
    match serde_json::from_str::<Event>(&r.entry.event).map(|e| e.body) {
        Ok(Body::Revocation(rev)) if Some(&rev.target) == target.as_ref() => {
            problems.push(format!(
                "the admission was revoked in event {} (in the same checkpoint): {}",
                r.entry.seq, rev.reason
            ));
            Ok(Some((r.entry.seq, rev.reason)))
        }
        _ => {
            problems.push("revoked_by is not a revocation of the proven admission".into());
            Ok(None)
        }
    }
}

fn verify_consistency(
    p: &ConsistencyProof,
    key: &PublicKey,
) -> std::result::Result<ProofCheck, String> {
    let mut problems = Vec::new();
    let cp = checked_note(&p.checkpoint, key, "the checkpoint", &mut problems)?;
    let old_root = hash_of(&p.old_root, "old_root")?;
    if let Some(o) = &p.old_checkpoint {
        let old = checked_note(o, key, "the old checkpoint", &mut problems)?;
        if old.size != p.old_size || old.root != old_root {
            problems.push("the old checkpoint's size or root is not the proof's".into());
        }
        if old.origin != cp.origin {
            problems.push(format!(
                "the old checkpoint is of log `{}`, the new of `{}`",
                old.origin, cp.origin
            ));
        }
    }
    if p.new_size != cp.size {
        problems.push(format!(
            "the proof is for a tree of {} but the checkpoint has {}",
            p.new_size, cp.size
        ));
    }
    if let Err(e) = merkle::verify_consistency(
        p.old_size,
        cp.size,
        &old_root,
        &cp.root,
        &hashes_of(&p.hashes)?,
    ) {
        problems.push(e);
    }
    Ok(ProofCheck {
        ok: problems.is_empty(),
        kind: "consistency",
        origin: Some(cp.origin),
        tree_size: Some(cp.size),
        event: None,
        revoked: None,
        problems,
    })
}

/// `verify-proof`'s answer: the proof's check and, if asked, the subject's.
#[derive(Serialize)]
pub(crate) struct ProofFileCheck {
    #[serde(flatten)]
    pub check: ProofCheck,
    pub subject: Option<Subject>,
}

#[derive(Serialize)]
pub(crate) struct Subject {
    pub path: PathBuf,
    pub sha256: String,
    pub named: bool,
}

/// Whether any string in `v` is one of `digests` (bare or after a `prefix:`).
fn names(v: &serde_json::Value, digests: &[String]) -> bool {
    match v {
        serde_json::Value::String(s) => digests
            .iter()
            .any(|d| s == d || s.rsplit(':').next() == Some(d.as_str())),
        serde_json::Value::Array(a) => a.iter().any(|x| names(x, digests)),
        serde_json::Value::Object(m) => m.values().any(|x| names(x, digests)),
        _ => false,
    }
}

/// Reads and checks the proof in `file` against `key`; with `subject`, the proven event
/// must name that file's digest.
/// `witnessed` adds what the caller requires of the checkpoint's cosignatures.
pub(crate) fn verify_file(
    file: &Path,
    key: &PublicKey,
    subject: Option<&Path>,
    witnessed: &dyn Fn(&str) -> Result<Vec<String>>,
) -> Result<ProofFileCheck> {
    let bad = |why: String| {
        Error::bad_input(
            format!("proof {}: {why}", file.display()),
            "pass the JSON written by `cto-ledger prove`",
        )
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let proof: Proof =
        serde_json::from_str(&text).map_err(|e| bad(format!("is not a proof: {e}")))?;
    let mut check = verify(&proof, key).map_err(bad)?;
    let note = match &proof {
        Proof::Inclusion(p) => &p.checkpoint,
        Proof::Consistency(p) => &p.checkpoint,
    };
    check.problems.extend(witnessed(note)?);
    let subject = match subject {
        Some(p) => {
            let m = crate::store::hash_file(p)?;
            let digests = [m.sha256.hex(), m.id.hex()];
            let named = check.event.as_ref().is_some_and(|e| names(e, &digests));
            if !named {
                check.problems.push(format!(
                    "the proven event does not name {} (sha256 {})",
                    p.display(),
                    digests[0]
                ));
            }
            Some(Subject {
                path: p.to_path_buf(),
                sha256: digests[0].clone(),
                named,
            })
        }
        None => None,
    };
    check.ok = check.problems.is_empty();
    Ok(ProofFileCheck { check, subject })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::events::{Actor, Body};
    use crate::sign::keys::test_key;

    /// A three-event journal, its tree signed by a known key, and the inclusion proof of
    /// event 2, made the way `prove` makes them.
    fn proof_of_event_2() -> (InclusionProof, PublicKey) {
        let key = test_key("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let mut prev = "0".repeat(64);
        let mut entries = Vec::new();
        for seq in 1..=3 {
            let e = Event {
                seq,
                time: "2026-12-01T00:00:00.000Z".into(),
                actor: Actor {
                    user: "t".into(),
                    uid: 1,
                    host: "h".into(),
                },
                body: Body::Init { format: 1 },
            };
            let event = String::from_utf8(serde_jcs::to_vec(&e).unwrap()).unwrap();
            let hash = chain_hash(&prev, event.as_bytes()).to_string();
            entries.push(ProvenEntry {
                seq,
                prev_hash: prev.clone(),
                hash: hash.clone(),
                event,
            });
            prev = hash;
        }
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|e| merkle::leaf_hash(&hex::decode(&e.hash).unwrap()))
            .collect();
        let cp = Checkpoint {
            origin: "cto-ledger/test".into(),
            size: 3,
            root: merkle::root(&leaves),
        };
        let proof = InclusionProof {
            leaf_index: 1,
            tree_size: 3,
            leaf_hash: B64.encode(leaves[1]),
            hashes: merkle::inclusion_proof(&leaves, 1)
                .iter()
                .map(|h| B64.encode(h))
                .collect(),
            entry: entries.swap_remove(1),
            checkpoint: cp.sign("cto-ledger/test", &key),
            revoked_by: None,
        };
        (proof, key.public())
    }

    fn problems(p: InclusionProof, key: &PublicKey) -> Vec<String> {
        verify(&Proof::Inclusion(p), key).unwrap().problems
    }

    #[test]
    fn an_inclusion_proof_verifies_and_each_altered_piece_is_named() {
        let (p, key) = proof_of_event_2();
        let ok = verify(&Proof::Inclusion(p.clone()), &key).unwrap();
        assert!(ok.ok && ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(
            (ok.tree_size, ok.event.unwrap()["seq"].as_u64()),
            (Some(3), Some(2))
        );

        let mut altered = p.clone();
        altered.entry.event = altered.entry.event.replace("\"format\":1", "\"format\":2");
        assert!(problems(altered, &key)[0].contains("the event was altered"));
        let mut moved = p.clone();
        moved.leaf_index = 2;
        assert!(problems(moved, &key)
            .iter()
            .any(|m| m.contains("is not leaf 2")));
        let mut short = p.clone();
        short.hashes.pop();
        assert!(!problems(short, &key).is_empty());
        let other = test_key("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        assert!(problems(p.clone(), &other.public())[0]
            .contains("the checkpoint: it has no signature by key"));
        let mut garbled = p;
        garbled.leaf_hash = "not base64".into();
        assert!(verify(&Proof::Inclusion(garbled), &key)
            .unwrap_err()
            .contains("leaf_hash is not a base64 SHA-256 hash"));
    }
}
