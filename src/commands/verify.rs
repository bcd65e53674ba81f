//! `cto-ledger verify PATH|DIGEST`: exit 0 only if that exact digest is admitted and not revoked.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::admission::{self, VerifyOut};
use crate::error::Result;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A file, or a digest (sha256:, blake3: or a hex prefix of 7+ digits)
    target: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let out = admission::verify(&home, &a.target)?;
    let admitted = out.admitted;
    Ok(Output::doc(out, text).negative_unless(admitted))
}

fn text(w: &mut dyn Write, r: &VerifyOut) -> R {
    let verdict = if r.admitted {
        "ADMITTED"
    } else {
        "NOT ADMITTED"
    };
    writeln!(w, "{verdict} {}", r.input)?;
    if let Some(s) = &r.sha256 {
        writeln!(w, "  {s}")?;
    }
    writeln!(w, "  {}", r.object)?;
    for v in &r.admissions {
        let a = &v.admission;
        writeln!(
            w,
            "  admission {} name {} pin {} commit {} source {} ({})",
            a.id,
            a.name,
            a.pin.as_deref().unwrap_or(""),
            a.commit_id.as_ref().map(|c| c.as_str()).unwrap_or(""),
            v.url.as_deref().or(v.source_path.as_deref()).unwrap_or("-"),
            a.time
        )?;
    }
    for v in &r.revoked {
        let reason = v
            .revocation
            .as_ref()
            .map(|r| r.reason.as_str())
            .unwrap_or("");
        writeln!(
            w,
            "  revoked admission {} ({}): {reason}",
            v.admission.id, v.admission.name
        )?;
    }
    Ok(())
}
