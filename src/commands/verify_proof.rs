//! `cto-ledger verify-proof FILE --key PEM [--subject PATH]`: checks a proof from
//! `prove` offline: the checkpoint's signature, the Merkle path to its root, and (for
//! an inclusion proof) that the entry's bytes hash to the proven leaf. Exit 0 when it
//! holds, 1 when it does not, 2 when the proof or key cannot be read.

use std::path::PathBuf;

use serde::Serialize;

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::sign::keys;
use crate::tlog::{self, Proof, ProofCheck};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A proof written by `cto-ledger prove`
    file: PathBuf,
    /// The log signer's public key, PEM (`cto-ledger key export --format pem`)
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// Require the proven event to name this file (by SHA-256 or BLAKE3 digest)
    #[arg(long, value_name = "PATH")]
    subject: Option<PathBuf>,
}

#[derive(Serialize)]
struct Out {
    #[serde(flatten)]
    check: ProofCheck,
    subject: Option<Subject>,
}

#[derive(Serialize)]
struct Subject {
    path: PathBuf,
    sha256: String,
    named: bool,
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

pub(crate) fn run(_: &Context, a: Args) -> Result<Output> {
    let key = keys::read_public(&a.key)?;
    let bad = |why: String| {
        Error::bad_input(
            format!("proof {}: {why}", a.file.display()),
            "pass the JSON written by `cto-ledger prove`",
        )
    };
    let text = std::fs::read_to_string(&a.file).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let proof: Proof =
        serde_json::from_str(&text).map_err(|e| bad(format!("is not a proof: {e}")))?;
    let mut check = tlog::verify_proof(&proof, &key).map_err(bad)?;
    let subject = match &a.subject {
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
                path: p.clone(),
                sha256: digests[0].clone(),
                named,
            })
        }
        None => None,
    };
    check.ok = check.problems.is_empty();
    let ok = check.ok;
    Ok(Output::doc(Out { check, subject }, |w, o| {
        let c = &o.check;
        if let Some(e) = &c.event {
            writeln!(
                w,
                "event {} ({}) at {} by {}",
                e["seq"],
                e["kind"].as_str().unwrap_or("?"),
                e["time"].as_str().unwrap_or("?"),
                e["actor"]["user"].as_str().unwrap_or("?")
            )?;
        }
        for p in &c.problems {
            writeln!(w, "FAILED: {p}")?;
        }
        if c.ok {
            writeln!(
                w,
                "{} proof verified against {} at tree size {}",
                c.kind,
                c.origin.as_deref().unwrap_or("?"),
                c.tree_size.unwrap_or(0)
            )?;
        }
        Ok(())
    })
    .negative_unless(ok))
}
