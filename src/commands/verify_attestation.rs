//! `cto-ledger verify-attestation FILE --key PEM [--subject PATH]`: checks DSSE
//! envelopes offline with nothing but a public key (`offline::attestation`). Exit 0 when
//! every envelope is signed by the key (and, with `--subject`, the file's SHA-256 is a
//! subject); exit 1 naming the line and the reason; exit 2 when the input cannot be read.

use super::{Context, OfflineArgs, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::offline::attestation::{self, AttestationCheck, Checked, Expect};
use crate::sign::keys;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    offline: OfflineArgs,
    /// Check the signatures only: do not require a run's statements to say PASSED
    #[arg(long, conflicts_with = "expect_result")]
    any_result: bool,
    /// Require every run statement (VSA, test result) to say this
    #[arg(long, value_name = "PASSED|FAILED", value_parser = ["PASSED", "FAILED"])]
    expect_result: Option<String>,
    /// Require a provenance statement naming this source commit (at least 7 hex digits)
    #[arg(long, value_name = "COMMIT")]
    expect_commit: Option<String>,
    /// Require a provenance statement naming this source URI (as recorded: e.g. https://github.com/workos/case.git)
    #[arg(long, value_name = "URI")]
    expect_source_uri: Option<String>,
    /// Require a valid statement of this predicate type
    #[arg(long, value_name = "URI")]
    predicate_type: Option<String>,
}

pub(crate) fn run(cx: &Context, args: Args) -> Result<Output> {
    let expect = Expect {
        any_result: args.any_result,
        result: args.expect_result,
        commit: args.expect_commit.map(|c| c.to_ascii_lowercase()),
        source_uri: args.expect_source_uri,
        predicate_type: args.predicate_type,
    };
    let a = args.offline;
    let key = keys::read_public(&a.key)?;
    // A ledger on this machine may know the key was revoked since it signed.
    let revoked = match cx.open(Mode::ReadOnly) {
        Ok(home) => crate::keyring::revocation(&home, &key.keyid())?,
        Err(_) => None,
    };
    let out = attestation::verify(&a.file, &key, a.subject.as_deref(), revoked, &expect)?;
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
                "line {}: signature OK {} ({}){}",
                c.line,
                c.predicate_type.as_deref().unwrap_or("?"),
                names.join(", "),
                claims_text(c)
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
    for u in &o.unmet {
        writeln!(w, "FAILED: {u}")?;
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

/// What a statement decides, in a few words (text after its signature check).
fn claims_text(c: &Checked) -> String {
    use super::text::shown;
    let k = &c.claims;
    let digests: Vec<String> = c
        .subjects
        .iter()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .map(|d| format!("sha256:{}", super::text::prefix(d, 16)))
        .collect();
    let mut out = String::new();
    if !digests.is_empty() {
        out.push_str(&format!(" [{}]", digests.join(", ")));
    }
    if let Some(r) = &k.result {
        out.push_str(&format!(": result {}", shown(r)));
        if !k.levels.is_empty() {
            out.push_str(&format!(", levels {}", shown(&k.levels.join(" "))));
        }
    }
    if k.source_uri.is_some() || k.commit.is_some() || k.builder.is_some() {
        let or = |v: &Option<String>| shown(v.as_deref().unwrap_or("-"));
        out.push_str(&format!(
            ": source {} at {}, builder {}",
            or(&k.source_uri),
            or(&k.commit),
            or(&k.builder)
        ));
    }
    out
}
