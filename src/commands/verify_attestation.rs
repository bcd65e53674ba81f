//! `cto-ledger verify-attestation FILE --key PEM [--subject PATH]`: checks DSSE
//! envelopes offline with nothing but a public key (`offline::attestation`). Exit 0 when
//! every envelope is signed by the key (and, with `--subject`, the file's SHA-256 is a
//! subject); exit 1 naming the line and the reason; exit 2 when the input cannot be read.

use super::{Context, OfflineArgs, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::offline::attestation::{self, AttestationCheck};
use crate::sign::keys;

pub(crate) fn run(cx: &Context, a: OfflineArgs) -> Result<Output> {
    let key = keys::read_public(&a.key)?;
    // A ledger on this machine may know the key was revoked since it signed.
    let revoked = match cx.open(Mode::ReadOnly) {
        Ok(home) => crate::keyring::revocation(&home, &key.keyid())?,
        Err(_) => None,
    };
    let out = attestation::verify(&a.file, &key, a.subject.as_deref(), revoked)?;
    let ok = out.ok;
    Ok(Output::doc(out, text_out).negative_unless(ok))
}

fn text_out(w: &mut dyn std::io::Write, o: &AttestationCheck) -> std::io::Result<()> {
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
