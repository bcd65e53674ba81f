//! Evidence bundles: one file per run (or admission) that an auditor carries away and
//! checks with nothing but the signer's public key. A bundle is a POSIX tar file (no
//! compression) whose first member is `manifest.json`, listing every other member with
//! its role, size and SHA-256; a withheld member is listed with its digest and left out.
//!
//! What makes the members trustworthy is not the manifest (nobody signs it) but the
//! chain from the signed checkpoint: the checkpoint's signature, the inclusion proofs of
//! the journal events, the events' digests of `report.json`, the report's digests of every
//! other evidence file, and the tree objects that bind the diff. [`verify`] walks that
//! chain; [`write`] assembles it from a ledger.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

pub(crate) mod changes;
pub(crate) mod verify;
pub(crate) mod write;

pub(crate) const FORMAT: &str = "cto-ledger-bundle/v1";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const CHECKPOINT: &str = "log/checkpoint";
pub(crate) const REPORT: &str = "evidence/report.json";
pub(crate) const DIFF: &str = "changes/workspace.diff";
pub(crate) const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub(crate) const TLOG_PROOF: &str = "c2sp.org/tlog-proof@v1";

/// A bundle's whole size, and any one member's: a bundle is read into memory to be checked.
const MAX_BUNDLE_BYTES: u64 = 1 << 30;
const MAX_MEMBERS: usize = 100_000;

/// The journal events a bundle proves, by the name of their proof files
/// (`log/NAME.proof.json`, `log/NAME.tlog-proof`).
pub(crate) const RUN_START: &str = "run-start";
pub(crate) const RUN: &str = "run";
pub(crate) const PROVIDER_ADMISSION: &str = "provider-admission";
pub(crate) const MODEL_ADMISSION: &str = "model-admission";
pub(crate) const ADMISSION: &str = "admission";
/// The proofs a run's bundle may carry, and an admission's.
pub(crate) const RUN_PROOFS: &[&str] = &[RUN_START, RUN, PROVIDER_ADMISSION, MODEL_ADMISSION];
pub(crate) const ADMISSION_PROOFS: &[&str] = &[ADMISSION];

/// The longest member name: what a plain ustar header holds without extensions.
const MAX_NAME: usize = 100;

/// A member name every tar reader reads the same way: plain, at most 100 bytes of
/// printable ASCII other than `\` and space, so no PAX or GNU long-name header is ever
/// needed (readers disagree about those).
pub(crate) fn safe_name(p: &str) -> bool {
    plain(p) && p.len() <= MAX_NAME && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The member holding the run folder's file `path`: `evidence/PATH` when that is a safe
/// name, else `evidence/by-digest/<SHA-256 of the path>` (the report gives the path).
pub(crate) fn evidence_member(path: &str) -> String {
    let p = format!("evidence/{path}");
    if safe_name(&p) && !p.starts_with("evidence/by-digest/") && p != REPORT {
        p
    } else {
        format!(
            "evidence/by-digest/{}",
            crate::id::Sha256Digest::of(path.as_bytes()).hex()
        )
    }
}

/// What a member is, by its path alone (the manifest's word is not taken for it).
pub(crate) fn role_of(path: &str) -> Option<Role> {
    let hex64 = |h: &str| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    Some(match path {
        CHECKPOINT => Role::Checkpoint,
        REPORT => Role::Report,
        DIFF => Role::Diff,
        _ if path.starts_with("evidence/") => Role::Evidence,
        _ if path.strip_prefix("objects/").is_some_and(hex64) => Role::Object,
        _ if path.starts_with("keys/") && path.ends_with(".pem") => Role::Key,
        _ if path.starts_with("attestations/") && path.ends_with(".dsse.json") => Role::Attestation,
        _ if path.starts_with("attestations/") && path.ends_with(".sigstore.json") => {
            Role::SigstoreBundle
        }
        _ => {
            let name = path.strip_prefix("log/")?;
            if let Some(n) = name.strip_suffix(".proof.json") {
                RUN_PROOFS
                    .iter()
                    .chain(ADMISSION_PROOFS)
                    .find(|p| **p == n)?;
                Role::Proof
            } else {
                let n = name.strip_suffix(".tlog-proof")?;
                RUN_PROOFS
                    .iter()
                    .chain(ADMISSION_PROOFS)
                    .find(|p| **p == n)?;
                Role::TlogProof
            }
        }
    })
}

/// What may be left out of a bundle, its digest kept: evidence files and the diff (with
/// the objects that bind it). Everything else is what the rest is checked by.
pub(crate) fn withholdable(path: &str) -> bool {
    path == DIFF || (path.starts_with("evidence/") && path != REPORT)
}

/// An envelope as a Sigstore bundle v0.3: the key named by its id as the hint, no
/// transparency-log entries (the inclusion proofs travel beside it, in `log/`).
pub(crate) fn sigstore_bundle(env: &crate::sign::dsse::Envelope, keyid: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": keyid}, "tlogEntries": []},
        "dsseEnvelope": env,
    })
}

pub(crate) fn proof_json(name: &str) -> String {
    format!("log/{name}.proof.json")
}

pub(crate) fn proof_text(name: &str) -> String {
    format!("log/{name}.tlog-proof")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub format: String,
    /// `run:ID` or `admission:ID`.
    pub subject: String,
    pub created: String,
    pub log: LogInfo,
    /// Every member but the manifest, sorted by path.
    pub files: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogInfo {
    pub origin: String,
    /// The size of the signed checkpoint every proof is against.
    pub size: u64,
    pub keyid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    Attestation,
    SigstoreBundle,
    Checkpoint,
    Proof,
    TlogProof,
    Report,
    Evidence,
    Diff,
    Object,
    Key,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Member {
    pub path: String,
    pub role: Role,
    pub size: u64,
    /// `sha256:HEX`.
    pub sha256: String,
    /// Listed with its digest, its bytes left out (`export --withhold`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

/// A bundle's members, read into memory (bounded) with every path checked.
#[derive(Debug)]
pub(crate) struct Members(pub BTreeMap<String, Vec<u8>>);

/// Whether `path` is a plain relative member name: no `..`, `.`, empty or absolute parts.
fn plain(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && !path.chars().any(|c| c.is_control())
}

/// Reads a tar file whole: only regular members with plain, distinct paths; at most
/// [`MAX_BUNDLE_BYTES`] in all. The `Err` says what is wrong with it.
pub(crate) fn read(r: impl Read) -> std::result::Result<Members, String> {
    let mut archive = tar::Archive::new(r.take(MAX_BUNDLE_BYTES + 1));
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    // Raw: a PAX or GNU extension header is a member of its own, refused below, rather
    // than something this reader and others might apply differently.
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar file: {e}"))?
        .raw(true);
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a tar file: {e}"))?;
        let path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| "a member's name is not UTF-8")?;
        if !entry.header().entry_type().is_file() {
            return Err(format!(
                "member {} is not a regular file (links, folders and PAX or GNU extension headers have no place in a bundle)",
                crate::commands::text::shown(&path)
            ));
        }
        if !safe_name(&path) {
            return Err(format!(
                "member {} is not a plain relative path of at most {MAX_NAME} printable ASCII bytes",
                crate::commands::text::shown(&path)
            ));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > MAX_BUNDLE_BYTES || out.len() >= MAX_MEMBERS {
            return Err(format!(
                "the bundle holds more than {MAX_BUNDLE_BYTES} bytes or {MAX_MEMBERS} members"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("member {path:?} cannot be read: {e}"))?;
        if out.insert(path.clone(), bytes).is_some() {
            return Err(format!("member {path:?} appears twice"));
        }
    }
    Ok(Members(out))
}

/// A tar file of `members` in the given order (the manifest first), with fixed owners,
/// modes and times, so the same evidence is the same bytes.
pub(crate) fn tar_of(members: &[(String, Vec<u8>)], mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in members {
        debug_assert!(safe_name(path), "{path}");
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, bytes.as_slice())?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_only_plain_paths_are_read() {
        let tar = tar_of(
            &[("a".into(), b"1".to_vec()), ("b/c".into(), b"22".to_vec())],
            0,
        )
        .unwrap();
        let m = read(tar.as_slice()).unwrap();
        assert_eq!(m.0.len(), 2);
        assert_eq!(m.0["b/c"], b"22");
        for bad in ["../x", "/x", "a//b", "a/./b", ""] {
            assert!(!plain(bad), "{bad}");
        }
        for bad in ["a b", "a\\b", "\u{1b}x", &"x".repeat(101)] {
            assert!(!safe_name(bad), "{bad}");
        }
        assert_eq!(
            evidence_member("backend/tests.log"),
            "evidence/backend/tests.log"
        );
        assert!(evidence_member("a\nb").starts_with("evidence/by-digest/"));
        assert!(evidence_member("by-digest/x").starts_with("evidence/by-digest/"));
        assert_eq!(role_of("log/run.proof.json"), Some(Role::Proof));
        assert_eq!(role_of("log/checkpoint"), Some(Role::Checkpoint));
        assert_eq!(role_of("report-final.json"), None);
        assert_eq!(role_of("log/other.proof.json"), None);
        let twice = tar_of(&[("a".into(), vec![]), ("a".into(), vec![])], 0).unwrap();
        assert!(read(twice.as_slice()).unwrap_err().contains("twice"));
    }
}
