//! `cto-ledger revoke REF --reason TEXT`: a later event; nothing is edited.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::admission::{self, RevokeOut};
use crate::error::Result;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// An admission (name or id), a model admission, or an admitted digest
    #[arg(value_name = "REF")]
    target: String,
    #[arg(long)]
    reason: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let out = admission::revoke(&mut home, &a.target, &a.reason)?;
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &RevokeOut) -> R {
    for v in &r.revoked {
        writeln!(w, "revoked {} ({}): {}", v.target, v.id, v.reason)?;
    }
    Ok(())
}
