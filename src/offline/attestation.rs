//! Checking DSSE envelopes offline, with nothing but the signer's public key: every
//! envelope's signature, that its payload is an in-toto Statement v1 whose subjects carry
//! SHA-256 digests, and (optionally) that a given file is one of the subjects.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lineage::attest::{PROVENANCE, TEST_RESULT, VSA};
use crate::sign::dsse::Envelope;
use crate::sign::keys::PublicKey;

const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// One envelope as checked.
#[derive(Serialize)]
pub(crate) struct Checked {
    pub line: usize,
    pub predicate_type: Option<String>,
    pub subjects: Vec<Value>,
    /// What the statement decides, once its signature holds.
    pub claims: Claims,
    pub problem: Option<String>,
}

/// The decisive content of a statement: a VSA's result and levels, a test result's
/// result, a provenance's source and builder.
#[derive(Serialize, Default)]
pub(crate) struct Claims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
}

/// What the verifier requires of the statements, in the slsa-verifier manner.
#[derive(Default)]
pub(crate) struct Expect {
    /// Do not require run statements to say PASSED.
    pub any_result: bool,
    pub result: Option<String>,
    pub commit: Option<String>,
    pub source_uri: Option<String>,
    pub predicate_type: Option<String>,
}

fn claims_of(s: &Value) -> Claims {
    let p = &s["predicate"];
    let text = |v: &Value| v.as_str().map(String::from);
    match s["predicateType"].as_str() {
        Some(VSA) => Claims {
            result: text(&p["verificationResult"]),
            levels: p["verifiedLevels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            ..Claims::default()
        },
        Some(TEST_RESULT) => Claims {
            result: text(&p["result"]),
            ..Claims::default()
        },
        _ => {
            let source = &p["buildDefinition"]["externalParameters"]["source"];
            Claims {
                source_uri: text(&source["uri"]),
                commit: text(&source["gitCommit"]),
                builder: text(&p["runDetails"]["builder"]["id"]),
                ..Claims::default()
            }
        }
    }
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
    /// What the requirements (`--expect-*`, and PASSED for run statements) found wanting.
    pub unmet: Vec<String>,
}

/// What a ledger on this machine knows of the key: revoked since it signed (event, reason).
pub(crate) type KnownRevocation = Option<(u64, String)>;

fn check(env: &Envelope, key: &PublicKey, line: usize) -> Checked {
    let mut c = Checked {
        line,
        predicate_type: None,
        subjects: Vec::new(),
        claims: Claims::default(),
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
            c.claims = claims_of(&s);
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
    expect: &Expect,
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
    let unmet = unmet(&envelopes, expect);
    let ok = envelopes.iter().all(|c| c.problem.is_none())
        && subject.as_ref().is_none_or(|s| s.found)
        && unmet.is_empty();
    Ok(AttestationCheck {
        ok,
        file: file.to_path_buf(),
        keyid,
        envelopes,
        subject,
        unmet,
    })
}

/// The requirements the valid statements do not meet.
fn unmet(envelopes: &[Checked], e: &Expect) -> Vec<String> {
    let valid: Vec<&Checked> = envelopes.iter().filter(|c| c.problem.is_none()).collect();
    let mut out = Vec::new();
    fn of_type<'a>(
        valid: &'a [&'a Checked],
        t: &'a str,
    ) -> impl Iterator<Item = &'a &'a Checked> + 'a {
        valid
            .iter()
            .filter(move |c| c.predicate_type.as_deref() == Some(t))
    }
    if let Some(t) = &e.predicate_type {
        if of_type(&valid, t).next().is_none() {
            out.push(format!("no valid statement has predicate type {t}"));
        }
    }
    let provenance: Vec<&Claims> = of_type(&valid, PROVENANCE).map(|c| &c.claims).collect();
    if let Some(want) = &e.commit {
        let holds = |c: &&Claims| {
            c.commit
                .as_deref()
                .is_some_and(|got| want.len() >= 7 && got.starts_with(want.as_str()))
        };
        if !provenance.iter().any(holds) {
            out.push(format!("no provenance names source commit {want}"));
        }
    }
    if let Some(want) = &e.source_uri {
        let holds = |c: &&Claims| c.source_uri.as_deref() == Some(want.as_str());
        if !provenance.iter().any(holds) {
            out.push(format!("no provenance names source {want}"));
        }
    }
    let want = e
        .result
        .clone()
        .or((!e.any_result).then(|| "PASSED".to_string()));
    for c in valid
        .iter()
        .filter(|c| matches!(c.predicate_type.as_deref(), Some(VSA | TEST_RESULT)))
    {
        let got = c.claims.result.as_deref().unwrap_or("no result");
        if let Some(w) = &want {
            if got != w {
                let hint = if e.result.is_none() {
                    " (pass --any-result to check the signatures only)"
                } else {
                    ""
                };
                out.push(format!(
                    "line {}: the statement says {got}, not {w}{hint}",
                    c.line
                ));
            }
        }
    }
    out
}
