//! `verify-bundle FILE --key PEM`: checks a bundle with nothing but the signer's public
//! key, walking the chain of [`super`]: the members against the manifest, the checkpoint's
//! signature, each event's inclusion proof (JSON and C2SP text), the events against each
//! other (the run names its registration, which precedes it and names the same fixture,
//! provider and model), the report against the run, every evidence file against the
//! report, the diff against the recorded trees, and every attestation's signature and
//! claims against the proven events.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;

use super::*;
use crate::error::{Error, Result};
use crate::id::Sha256Digest;
use crate::ledger::events::{Body, Event};
use crate::offline::proof::{self, Proof};
use crate::sign::keys::PublicKey;
use crate::sign::merkle::{self, Hash};
use crate::sign::note::{Checkpoint, SignedNote};

mod claims;
mod run;

#[derive(Debug, Serialize)]
pub(crate) struct Problem {
    /// The member (or argument) that failed.
    pub piece: String,
    pub problem: String,
}

/// What a bundle proves, once every check held.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Proven {
    pub verdict: Option<String>,
    pub reason: Option<String>,
    pub provider_sha256: Option<String>,
    pub provider_name: Option<String>,
    pub source_commit: Option<String>,
    pub source_url: Option<String>,
    pub admission: Option<String>,
    pub model: Option<String>,
    pub model_admission: Option<String>,
    pub sandbox_enforced: Vec<String>,
    pub sandbox_not_enforced: Vec<String>,
    pub tests_tree: Option<String>,
    /// Zero-based log indexes of the events.
    pub registered_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub admitted_at: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BundleCheck {
    pub ok: bool,
    pub file: PathBuf,
    pub subject: Option<String>,
    pub keyid: String,
    pub origin: Option<String>,
    pub checkpoint_size: Option<u64>,
    pub members: usize,
    pub withheld: Vec<String>,
    pub attestations: Vec<String>,
    pub proven: Proven,
    /// Empty when the bundle verifies; the first is the first piece that failed.
    pub problems: Vec<Problem>,
}

pub(super) struct Checker<'a> {
    key: &'a PublicKey,
    /// Members whose bytes match the manifest.
    good: BTreeMap<String, Vec<u8>>,
    manifest: BTreeMap<String, Member>,
    out: BundleCheck,
}

/// A proven journal event.
pub(super) struct Proved {
    pub(super) seq: u64,
    pub(super) body: Body,
}

impl Checker<'_> {
    pub(super) fn fail(&mut self, piece: &str, problem: impl Into<String>) {
        self.out.problems.push(Problem {
            piece: piece.into(),
            problem: problem.into(),
        });
    }

    /// A member that is present and matches the manifest; a failure when it is
    /// missing (not when it was withheld: then `None` quietly).
    pub(super) fn need(&mut self, path: &str) -> Option<Vec<u8>> {
        if let Some(b) = self.good.get(path) {
            return Some(b.clone());
        }
        match self.manifest.get(path) {
            Some(m) if m.withheld => {}
            Some(_) => {} // present but altered: already failed
            None => self.fail(path, "missing from the bundle"),
        }
        None
    }
}

/// Checks the bundle at `file` against `key`. `Err` only when the file cannot be read.
/// `witnessed` adds what the caller requires of the checkpoint's cosignatures.
pub(crate) fn verify(
    file: &Path,
    key: &PublicKey,
    witnessed: &dyn Fn(&str) -> Result<Vec<String>>,
) -> Result<BundleCheck> {
    Ok(verify_keeping(file, key, witnessed)?.check)
}

/// A checked bundle with what it holds: the manifest's entries, and the members whose
/// bytes match them (the rest are left out, and named among the problems).
pub(crate) struct Checked {
    pub check: BundleCheck,
    pub manifest: BTreeMap<String, Member>,
    pub good: BTreeMap<String, Vec<u8>>,
}

/// [`verify`], keeping the members for a viewer (`serve --bundle`).
pub(crate) fn verify_keeping(
    file: &Path,
    key: &PublicKey,
    witnessed: &dyn Fn(&str) -> Result<Vec<String>>,
) -> Result<Checked> {
    let f = std::fs::File::open(file).map_err(|e| {
        Error::bad_input(
            format!("bundle {} cannot be read: {e}", file.display()),
            "pass the file written by `cto-ledger export run:ID --bundle FILE`",
        )
    })?;
    let mut c = Checker {
        key,
        good: BTreeMap::new(),
        manifest: BTreeMap::new(),
        out: BundleCheck {
            ok: false,
            file: file.to_path_buf(),
            subject: None,
            keyid: key.keyid(),
            origin: None,
            checkpoint_size: None,
            members: 0,
            withheld: Vec::new(),
            attestations: Vec::new(),
            proven: Proven::default(),
            problems: Vec::new(),
        },
    };
    match read(std::io::BufReader::new(f)) {
        Ok(members) => check(&mut c, members),
        Err(e) => c.fail("bundle", e),
    }
    if let Some(note) = c
        .good
        .get(CHECKPOINT)
        .map(|b| String::from_utf8_lossy(b).into_owned())
    {
        for p in witnessed(&note)? {
            c.fail(CHECKPOINT, p);
        }
    }
    c.out.ok = c.out.problems.is_empty();
    Ok(Checked {
        check: c.out,
        manifest: c.manifest,
        good: c.good,
    })
}

fn check(c: &mut Checker, members: Members) {
    let Some(manifest) = check_members(c, members) else {
        return;
    };
    c.out.subject = Some(manifest.subject.clone());
    c.out.origin = Some(manifest.log.origin.clone());
    c.out.checkpoint_size = Some(manifest.log.size);
    if manifest.log.keyid != c.key.keyid() {
        let (theirs, ours) = (manifest.log.keyid.clone(), c.key.keyid());
        c.fail(
            "--key",
            format!(
                "the bundle says it was signed by key {}, not by the key given ({})",
                crate::commands::text::prefix(&theirs, 16),
                &ours[..16]
            ),
        );
    }
    check_keys(c);
    let Some(checkpoint) = check_checkpoint(c, &manifest) else {
        if c.out.problems.is_empty() {
            c.fail(CHECKPOINT, "no checkpoint to check the bundle against");
        }
        return;
    };
    let events = check_proofs(c, &checkpoint);
    let subject = manifest.subject.clone();
    match subject.split_once(':') {
        Some(("run", id)) => run::check_run(c, id, &events),
        Some(("admission", id)) => run::check_admission(c, id, &events),
        _ => c.fail(
            MANIFEST,
            format!("subject {subject:?} is neither run:ID nor admission:ID"),
        ),
    }
}

/// The manifest, and every member against it: listed, present unless withheld, of its
/// size and SHA-256. Members that match are kept for the checks that follow.
fn check_members(c: &mut Checker, members: Members) -> Option<Manifest> {
    let mut members = members.0;
    let Some(bytes) = members.remove(MANIFEST) else {
        c.fail(MANIFEST, "missing: this is not a cto-ledger bundle");
        return None;
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            c.fail(MANIFEST, format!("not a bundle manifest: {e}"));
            return None;
        }
    };
    if manifest.format != FORMAT {
        c.fail(
            MANIFEST,
            format!("format {:?}, not {FORMAT}", manifest.format),
        );
        return None;
    }
    c.out.members = members.len();
    let run = manifest.subject.starts_with("run:");
    for m in &manifest.files {
        if c.manifest.insert(m.path.clone(), m.clone()).is_some() {
            let shown = crate::commands::text::shown(&m.path);
            c.fail(MANIFEST, format!("{shown} is listed twice"));
        }
        check_listing(c, m, run, &manifest.subject);
    }
    for m in &manifest.files {
        match (members.remove(&m.path), m.withheld) {
            (Some(_), true) => c.fail(&m.path, "listed as withheld, yet present"),
            (None, true) => c.out.withheld.push(m.path.clone()),
            (None, false) => c.fail(&m.path, "missing from the bundle"),
            (Some(b), false) => {
                let sha256 = Sha256Digest::of(&b).to_string();
                if b.len() as u64 != m.size || sha256 != m.sha256 {
                    c.fail(
                        &m.path,
                        format!(
                            "its bytes ({} bytes, {sha256}) are not the ones listed ({} bytes, {})",
                            b.len(),
                            m.size,
                            m.sha256
                        ),
                    );
                } else {
                    c.good.insert(m.path.clone(), b);
                }
            }
        }
    }
    for extra in members.keys() {
        c.fail(extra, "not listed in the manifest");
    }
    // A text proof is checked beside its JSON twin, a Sigstore bundle beside its DSSE
    // envelope: neither stands alone.
    let lonely: Vec<(String, String)> = c
        .manifest
        .keys()
        .filter_map(|p| {
            let twin = match role_of(p) {
                Some(Role::TlogProof) => p.replace(".tlog-proof", ".proof.json"),
                Some(Role::SigstoreBundle) => p.replace(".sigstore.json", ".dsse.json"),
                _ => return None,
            };
            (!c.manifest.contains_key(&twin)).then(|| (twin, p.clone()))
        })
        .collect();
    for (twin, p) in lonely {
        c.fail(
            &twin,
            format!("missing from the bundle, yet {p} (checked beside it) is there"),
        );
    }
    Some(manifest)
}

/// One manifest entry: what a member is and whether it may be withheld follow from its
/// path (the manifest is not signed, so its word is not taken for either), and a member
/// must be one a bundle of its subject has.
fn check_listing(c: &mut Checker, m: &Member, run: bool, subject: &str) {
    let shown = crate::commands::text::shown(&m.path);
    let role = role_of(&m.path).filter(|_| safe_name(&m.path));
    let admission_has =
        |r: &Role| !matches!(r, Role::Report | Role::Evidence | Role::Diff | Role::Object);
    let proof_fits = |p: &str| {
        let names = if run { RUN_PROOFS } else { ADMISSION_PROOFS };
        let stem = p
            .trim_start_matches("log/")
            .split('.')
            .next()
            .unwrap_or_default();
        !matches!(role_of(p), Some(Role::Proof | Role::TlogProof)) || names.contains(&stem)
    };
    match role {
        None => c.fail(MANIFEST, format!("it lists {shown}, which is no member a bundle has")),
        Some(r) if r != m.role => c.fail(
            &m.path,
            format!("listed as {:?}, but a bundle's {shown} is {r:?}", m.role),
        ),
        Some(r) if !run && !admission_has(&r) || !proof_fits(&m.path) => c.fail(
            &m.path,
            format!("a bundle of {} has no such member", crate::commands::text::shown(subject)),
        ),
        Some(_) if m.withheld && !withholdable(&m.path) => c.fail(
            &m.path,
            "listed as withheld, but only evidence files and the diff can be: the rest is what they are checked by",
        ),
        Some(_) => {}
    }
}

/// The public keys the bundle carries are a convenience, never trusted: each must be the
/// key given.
fn check_keys(c: &mut Checker) {
    let keys: Vec<String> = c
        .manifest
        .values()
        .filter(|m| m.role == Role::Key)
        .map(|m| m.path.clone())
        .collect();
    for path in keys {
        let Some(bytes) = c.need(&path) else { continue };
        let key = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(PublicKey::from_pem);
        match key {
            Ok(k) if k.keyid() == c.key.keyid() => {}
            Ok(k) => c.fail(
                &path,
                format!("it is key {}, not the key given", &k.keyid()[..16]),
            ),
            Err(e) => c.fail(&path, format!("not a public key: {e}")),
        }
    }
}

fn check_checkpoint(c: &mut Checker, manifest: &Manifest) -> Option<(String, Checkpoint)> {
    let text = String::from_utf8(c.need(CHECKPOINT)?).ok();
    let Some(text) = text else {
        c.fail(CHECKPOINT, "not UTF-8 text");
        return None;
    };
    let note = match SignedNote::parse(&text) {
        Ok(n) => n,
        Err(e) => {
            c.fail(CHECKPOINT, format!("not a signed note: {e}"));
            return None;
        }
    };
    if let Err(e) = note.verify(c.key) {
        c.fail(CHECKPOINT, e);
    }
    if note.checkpoint.origin != manifest.log.origin || note.checkpoint.size != manifest.log.size {
        c.fail(
            CHECKPOINT,
            format!(
                "it is the checkpoint of {} at size {}, the manifest says {} at {}",
                note.checkpoint.origin,
                note.checkpoint.size,
                manifest.log.origin,
                manifest.log.size
            ),
        );
    }
    Some((text, note.checkpoint))
}

/// The C2SP `tlog-proof` text, parsed: extra data, index, hashes, checkpoint.
struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Hash>,
    checkpoint: String,
}

fn parse_tlog_proof(text: &str) -> std::result::Result<TlogProof, String> {
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or("no empty line before the checkpoint")?;
    let mut lines = head.split('\n');
    if lines.next() != Some(TLOG_PROOF) {
        return Err(format!("its first line is not {TLOG_PROOF}"));
    }
    let mut line = lines.next();
    let extra = match line.and_then(|l| l.strip_prefix("extra ")) {
        Some(b) => {
            line = lines.next();
            Some(B64.decode(b).map_err(|_| "its extra data is not base64")?)
        }
        None => None,
    };
    let index = merkle::number_line(line, "index").ok_or("no `index N` line")?;
    let hashes = merkle::hash_lines(lines)?;
    Ok(TlogProof {
        extra,
        index,
        hashes,
        checkpoint: checkpoint.to_string(),
    })
}

/// Every proof the bundle carries, checked (JSON and text, against the one checkpoint);
/// returns the proven events by name.
fn check_proofs(c: &mut Checker, (text, cp): &(String, Checkpoint)) -> BTreeMap<String, Proved> {
    let mut out = BTreeMap::new();
    let names: BTreeSet<String> = c
        .manifest
        .keys()
        .filter_map(|p| p.strip_prefix("log/")?.strip_suffix(".proof.json"))
        .map(String::from)
        .collect();
    for name in names {
        let json = proof_json(&name);
        let Some(bytes) = c.need(&json) else { continue };
        let p = match serde_json::from_slice::<Proof>(&bytes) {
            Ok(Proof::Inclusion(p)) => p,
            Ok(_) => {
                c.fail(&json, "not an inclusion proof");
                continue;
            }
            Err(e) => {
                c.fail(&json, format!("not a proof: {e}"));
                continue;
            }
        };
        match proof::verify(&Proof::Inclusion(p.clone()), c.key) {
            Ok(check) => {
                for why in check.problems {
                    c.fail(&json, why);
                }
            }
            Err(e) => c.fail(&json, e),
        }
        if p.checkpoint != *text {
            c.fail(
                &json,
                "it is against another checkpoint than log/checkpoint",
            );
        }
        check_text_proof(c, &name, &p, cp);
        match serde_json::from_str::<Event>(&p.entry.event) {
            Ok(e) if e.seq == p.entry.seq => {
                out.insert(
                    name,
                    Proved {
                        seq: e.seq,
                        body: e.body,
                    },
                );
            }
            Ok(e) => c.fail(
                &json,
                format!(
                    "the event says it is number {}, the proof {}",
                    e.seq, p.entry.seq
                ),
            ),
            Err(e) => c.fail(&json, format!("its entry is not a journal event: {e}")),
        }
    }
    out
}

/// The text proof beside a JSON one: the same index, path and checkpoint, and on its
/// own a valid path from its record (the entry's hash) to the checkpoint's root.
fn check_text_proof(
    c: &mut Checker,
    name: &str,
    p: &crate::offline::proof::InclusionProof,
    cp: &Checkpoint,
) {
    let path = proof_text(name);
    let Some(bytes) = c.need(&path) else { return };
    let t = match std::str::from_utf8(&bytes)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(parse_tlog_proof)
    {
        Ok(t) => t,
        Err(e) => return c.fail(&path, e),
    };
    let hashes: Vec<String> = t.hashes.iter().map(|h| B64.encode(h)).collect();
    if t.index != p.leaf_index || hashes != p.hashes || t.checkpoint != p.checkpoint {
        c.fail(&path, "it does not say what the JSON proof beside it says");
    }
    let record = t.extra.unwrap_or_default();
    if hex::encode(&record) != p.entry.hash {
        c.fail(&path, "its extra data is not the proven entry's hash");
    }
    let leaf = merkle::leaf_hash(&record);
    if let Err(e) = merkle::verify_inclusion(t.index, cp.size, &leaf, &t.hashes, &cp.root) {
        c.fail(&path, e);
    }
}

pub(super) fn proven<'a>(
    c: &mut Checker,
    events: &'a BTreeMap<String, Proved>,
    name: &str,
) -> Option<&'a Proved> {
    let e = events.get(name);
    if e.is_none() && !c.out.problems.iter().any(|p| p.piece == proof_json(name)) {
        c.fail(&proof_json(name), "missing from the bundle");
    }
    e
}
