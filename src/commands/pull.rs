//! `cto-ledger pull [NAME]`: take a remote's new events, re-hashing every object they name.

use std::io::Write;

use super::{push::moved, text::R, Context, Output};
use crate::error::Result;
use crate::sync::{self, PullOut};

pub(crate) type Args = super::RemoteArg;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (mut home, mut r) = a.connect(cx)?;
    Ok(Output::doc(
        sync::pull(&mut home, &mut r, &cx.transfer_progress())?,
        text,
    ))
}

fn text(w: &mut dyn Write, r: &PullOut) -> R {
    if r.remote_replaced {
        writeln!(w, "warning: the remote no longer holds events this host saw there; this ledger's own events were kept and re-appended")?;
    }
    writeln!(
        w,
        "pulled {} event(s) from {} ({} object(s), {} bytes, each re-hashed)",
        r.pulled, r.remote, r.objects_fetched, r.bytes_fetched
    )?;
    moved(w, &r.moved)?;
    if !r.ignored_checkpoints.is_empty() {
        writeln!(
            w,
            "passed over {} key(s) under checkpoints/ that are not notes signed by a recorded key (`cto-ledger audit --remote` lists them)",
            r.ignored_checkpoints.len()
        )?;
    }
    writeln!(w, "head {}:{}", r.head.seq, r.head.hash)
}
