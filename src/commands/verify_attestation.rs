//! `cto-ledger verify-attestation FILE --key PEM [--subject PATH]`: checks DSSE
//! envelopes offline with nothing but a public key. Exit 0 when every envelope is
//! signed by the key (and, with `--subject`, the file's SHA-256 is a subject); exit 1
//! naming the line and the reason; exit 2 when the input cannot be read or parsed.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::ledger::Mode;
use crate::sign::dsse::Envelope;
use crate::sign::keys;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A file of DSSE envelopes, one JSON object per line (`.intoto.jsonl`), as `attest` writes
    file: PathBuf,
    /// The signer's public key, PEM (`cto-ledger key export --format pem`)
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// Require this file's SHA-256 to be a subject of an envelope
    #[arg(long, value_name = "PATH")]
    subject: Option<PathBuf>,
}

#[derive(Serialize)]
struct Checked {
    line: usize,
    predicate_type: Option<String>,
    subjects: Vec<Value>,
    problem: Option<String>,
}

#[derive(Serialize)]
struct SubjectCheck {
    path: PathBuf,
    sha256: String,
    found: bool,
}

#[derive(Serialize)]
struct Out {
    ok: bool,
    file: PathBuf,
    keyid: String,
    envelopes: Vec<Checked>,
    subject: Option<SubjectCheck>,
}

const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

fn check(env: &Envelope, key: &keys::PublicKey, line: usize) -> Checked {
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

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let key = keys::read_public(&a.key)?;
    let keyid = key.keyid();
    let text = std::fs::read_to_string(&a.file).map_err(|e| {
        Error::bad_input(
            format!("attestation file {} cannot be read: {e}", a.file.display()),
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
                    a.file.display(),
                    i + 1
                ),
                "each line must be one JSON envelope {payload, payloadType, signatures}",
            )
        })?;
        envelopes.push(check(&env, &key, i + 1));
    }
    if envelopes.is_empty() {
        return Err(Error::bad_input(
            format!("{} holds no envelopes", a.file.display()),
            "pass the .intoto.jsonl file written by `cto-ledger attest -o FILE`",
        ));
    }
    // A ledger on this machine may know the key was revoked since it signed.
    if let Ok(home) = cx.open(Mode::ReadOnly) {
        if let Some(r) = home
            .ledger
            .keys_matching(&keyid)?
            .first()
            .and_then(|k| k.revoked.clone())
        {
            for c in envelopes.iter_mut().filter(|c| c.problem.is_none()) {
                c.problem = Some(format!(
                    "key {} was revoked in event {}: {}",
                    &keyid[..16],
                    r.seq,
                    r.reason
                ));
            }
        }
    }
    let subject = match &a.subject {
        Some(p) => {
            let sha256 = crate::store::hash_file(p)?.sha256.hex();
            let found = envelopes.iter().filter(|c| c.problem.is_none()).any(|c| {
                c.subjects
                    .iter()
                    .any(|s| s["digest"]["sha256"].as_str() == Some(&sha256))
            });
            Some(SubjectCheck {
                path: p.clone(),
                sha256,
                found,
            })
        }
        None => None,
    };
    let ok =
        envelopes.iter().all(|c| c.problem.is_none()) && subject.as_ref().is_none_or(|s| s.found);
    let out = Out {
        ok,
        file: a.file,
        keyid,
        envelopes,
        subject,
    };
    Ok(Output::doc(out, text_out).negative_unless(ok))
}

fn text_out(w: &mut dyn std::io::Write, o: &Out) -> std::io::Result<()> {
    for c in &o.envelopes {
        let names: Vec<&str> = c
            .subjects
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        match &c.problem {
            None => writeln!(
                w,
                "line {}: OK {} ({})",
                c.line,
                c.predicate_type.as_deref().unwrap_or("?"),
                names.join(", ")
            )?,
            Some(p) => writeln!(w, "line {}: FAILED: {p}", c.line)?,
        }
    }
    if let Some(s) = &o.subject {
        let verdict = if s.found {
            "is a subject"
        } else {
            "is NOT a subject of any valid envelope"
        };
        writeln!(w, "{} (sha256 {}) {verdict}", s.path.display(), s.sha256)?;
    }
    writeln!(
        w,
        "{}",
        if o.ok {
            format!("verified with key {}", o.keyid)
        } else {
            "verification FAILED".into()
        }
    )
}
