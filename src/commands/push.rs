//! `cto-ledger push [NAME]`: publish local events (and the objects they name), pulling first.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::sync::{self, PushOut};

pub(crate) type Args = super::RemoteArg;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (mut home, mut r) = a.connect(cx)?;
    Ok(Output::doc(
        sync::push(&mut home, &mut r, &cx.transfer_progress())?,
        text,
    ))
}

/// The line that says which local events moved after the remote's (shared with `pull`).
pub(crate) fn moved(w: &mut dyn Write, moved: &[(u64, u64)]) -> R {
    if let (Some(a), Some(b)) = (moved.first(), moved.last()) {
        writeln!(
            w,
            "re-appended {} local event(s) after the remote's: {}..{} are now {}..{} (checkpoints taken before still verify: docs/remote.md)",
            moved.len(), a.0, b.0, a.1, b.1
        )?;
    }
    Ok(())
}

fn text(w: &mut dyn Write, r: &PushOut) -> R {
    if r.pulled > 0 {
        writeln!(w, "pulled {} event(s) from {} first", r.pulled, r.remote)?;
    }
    moved(w, &r.moved)?;
    for c in &r.requirement_changes {
        writeln!(w, "remote {} requirement changed: {c}", r.remote)?;
    }
    let raced = if r.conflicts > 0 {
        format!(
            "; lost the race for the next event {} time(s) and went again",
            r.conflicts
        )
    } else {
        String::new()
    };
    writeln!(
        w,
        "published {} event(s) to {} ({} object(s) uploaded, {} bytes){raced}",
        r.published, r.url, r.objects_uploaded, r.bytes_uploaded,
    )?;
    writeln!(w, "head {}:{}", r.head.seq, r.head.hash)
}
