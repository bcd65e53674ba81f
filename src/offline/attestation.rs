//! Checking DSSE envelopes offline, with nothing but the signer's public key: every
//! envelope's signature, that its payload is an in-toto Statement v1 whose subjects carry
//! SHA-256 digests, and (optionally) that a given file is one of the subjects.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::sign::dsse::Envelope;
use crate::sign::keys::PublicKey;

const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// One envelope as checked.
#[derive(Serialize)]
pub(crate) struct Checked {
    pub line: usize,
    pub predicate_type: Option<String>,
    pub subjects: Vec<Value>,
    pub problem: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct SubjectCheck {
    pub path: PathBuf,
    pub sha256: String,
    pub found: bool,
}

#[derive(Serialize)]
pub(crate) struct AttestationCheck {
    pub ok: bool,
    pub file: PathBuf,
    pub keyid: String,
    pub envelopes: Vec<Checked>,
    pub subject: Option<SubjectCheck>,
}

/// What a ledger on this machine knows of the key: revoked since it signed (event, reason).
pub(crate) type KnownRevocation = Option<(u64, String)>;

fn check(env: &Envelope, key: &PublicKey, line: usize) -> Checked {
    let mut c = Checked {
        line,
        predicate_type: None,
        subjects: Vec::new(),
        problem: None,
    };
    let payload = match env.verify(key) {
        Ok(p) => p,
        Err(e) => {
            c.problem = Some(e);
            return c;
        }
    };
    match serde_json::from_slice::<Value>(&payload) {
        Ok(s) if s["_type"] == STATEMENT_V1 => {
            c.predicate_type = s["predicateType"].as_str().map(String::from);
            c.subjects = s["subject"].as_array().cloned().unwrap_or_default();
            if c.subjects
                .iter()
                .any(|s| s["digest"]["sha256"].as_str().is_none())
            {
                c.problem = Some("a subject has no sha256 digest".into());
            }
        }
        Ok(_) => {
            c.problem = Some(format!(
                "its payload is not an in-toto Statement v1 (`_type` is not {STATEMENT_V1})"
            ))
        }
        Err(e) => c.problem = Some(format!("its signed payload is not JSON: {e}")),
    }
    c
}

/// Checks every envelope of `file` (one per line, as `attest` writes) against `key`;
/// with `subject`, that file's SHA-256 must be a subject of a valid envelope.
pub(crate) fn verify(
    file: &Path,
    key: &PublicKey,
    subject: Option<&Path>,
    revoked: KnownRevocation,
) -> Result<AttestationCheck> {
    let keyid = key.keyid();
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::bad_input(
            format!("attestation file {} cannot be read: {e}", file.display()),
            "pass the .intoto.jsonl file written by `cto-ledger attest -o FILE`",
        )
    })?;
    let mut envelopes = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let env: Envelope = serde_json::from_str(line).map_err(|e| {
            Error::bad_input(
                format!(
                    "{} line {}: not a DSSE envelope: {e}",
                    file.display(),
                    i + 1
                ),
                "each line must be one JSON envelope {payload, payloadType, signatures}",
            )
        })?;
        envelopes.push(check(&env, key, i + 1));
    }
    if envelopes.is_empty() {
        return Err(Error::bad_input(
            format!("{} holds no envelopes", file.display()),
            "pass the .intoto.jsonl file written by `cto-ledger attest -o FILE`",
        ));
    }
    if let Some((seq, reason)) = revoked {
        for c in envelopes.iter_mut().filter(|c| c.problem.is_none()) {
            c.problem = Some(format!(
                "key {} was revoked in event {seq}: {reason}",
                &keyid[..16]
            ));
        }
    }
    let subject = match subject {
        Some(p) => {
            let sha256 = crate::store::hash_file(p)?.sha256.hex();
            let found = envelopes.iter().filter(|c| c.problem.is_none()).any(|c| {
                c.subjects
                    .iter()
                    .any(|s| s["digest"]["sha256"].as_str() == Some(&sha256))
            });
            Some(SubjectCheck {
                path: p.to_path_buf(),
                sha256,
                found,
            })
        }
        None => None,
    };
    let ok =
        envelopes.iter().all(|c| c.problem.is_none()) && subject.as_ref().is_none_or(|s| s.found);
    Ok(AttestationCheck {
        ok,
        file: file.to_path_buf(),
        keyid,
        envelopes,
        subject,
    })
}
