//! `cto-ledger verify-bundle FILE --key PEM`: checks an evidence bundle from `export
//! --bundle` with nothing but the signer's public key (`bundle::verify`), then says what
//! it proves. Exit 0 when every piece verifies, 1 naming the first that does not, 2 when
//! the file or key cannot be read.

use std::path::PathBuf;

use super::text::shown;
use super::{Context, Output, WitnessArgs};
use crate::bundle::verify::{self, BundleCheck};
use crate::error::Result;
use crate::sign::keys;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle (`cto-ledger export run:ID --bundle FILE`)
    file: PathBuf,
    /// The signer's public key, PEM (`cto-ledger key export --format pem`), obtained
    /// from the signer, not from the bundle
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    #[command(flatten)]
    witnesses: WitnessArgs,
}

pub(crate) fn run(_cx: &Context, a: Args) -> Result<Output> {
    let key = keys::read_public(&a.key)?;
    let out = verify::verify(&a.file, &key, &|n| a.witnesses.problems(n))?;
    let ok = out.ok;
    Ok(Output::doc(out, text_out).negative_unless(ok))
}

fn text_out(w: &mut dyn std::io::Write, o: &BundleCheck) -> std::io::Result<()> {
    // Every string below came out of the bundle: control characters are shown escaped.
    let subject = shown(o.subject.as_deref().unwrap_or("?"));
    if let Some(first) = o.problems.first() {
        writeln!(
            w,
            "verification FAILED: {}: {}",
            shown(&first.piece),
            shown(&first.problem)
        )?;
        for p in &o.problems[1..] {
            writeln!(w, "  also: {}: {}", shown(&p.piece), shown(&p.problem))?;
        }
        return Ok(());
    }
    let p = &o.proven;
    let short = |s: &Option<String>| shown(s.as_deref().unwrap_or("-"));
    writeln!(
        w,
        "bundle of {subject}: verified with key {}",
        &o.keyid[..16]
    )?;
    if let Some(v) = &p.verdict {
        match &p.reason {
            Some(r) => writeln!(w, "  verdict     {v} ({})", shown(r))?,
            None => writeln!(w, "  verdict     {v}")?,
        }
    }
    writeln!(
        w,
        "  provider    {} {}",
        short(&p.provider_name),
        short(&p.provider_sha256)
    )?;
    if p.source_commit.is_some() || p.source_url.is_some() {
        writeln!(
            w,
            "  source      {} at commit {}",
            short(&p.source_url),
            short(&p.source_commit)
        )?;
    }
    if let Some(a) = &p.admission {
        writeln!(
            w,
            "  admitted    {a} at log index {}; no revocation of it is in this bundle (up to log size {})",
            short(&p.admitted_at.map(|i| i.to_string())),
            o.checkpoint_size.unwrap_or(0)
        )?;
    }
    if p.model.is_some() {
        writeln!(
            w,
            "  model       {} ({})",
            short(&p.model),
            short(&p.model_admission)
        )?;
    }
    if !p.sandbox_enforced.is_empty() || !p.sandbox_not_enforced.is_empty() {
        let not = if p.sandbox_not_enforced.is_empty() {
            String::new()
        } else {
            format!("; not enforced: {}", p.sandbox_not_enforced.join(", "))
        };
        writeln!(
            w,
            "  sandbox     enforced: {}{not}",
            p.sandbox_enforced.join(", ")
        )?;
    }
    if let Some(t) = &p.tests_tree {
        writeln!(w, "  tests       the fixture's, tree {t}")?;
    }
    if let Some(i) = p.registered_at {
        writeln!(w, "  registered  at log index {i}")?;
    }
    if let Some(j) = p.ended_at {
        writeln!(w, "  ended       at log index {j}")?;
    }
    writeln!(
        w,
        "  log         {} checkpoint of size {}, {} attestation(s), {} member(s)",
        shown(o.origin.as_deref().unwrap_or("?")),
        o.checkpoint_size.unwrap_or(0),
        o.attestations.len(),
        o.members
    )?;
    for h in &o.withheld {
        writeln!(
            w,
            "  withheld    {h} (digest checked against the signed record)"
        )?;
    }
    Ok(())
}
