//! `cto-ledger pull [NAME]`: take a remote's new events, re-hashing every object they name.

use std::io::Write;

use super::{push::moved, text::R, Context, Output};
use crate::error::Result;
use crate::sync::{self, PullOut};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    remote: super::RemoteArg,
    /// Take nothing unless the remote's checkpoint of exactly the journal taken carries
    /// these witnesses' cosignatures
    #[command(flatten)]
    witnesses: super::WitnessArgs,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let policy = &a.witnesses;
    if policy.quorum_given() && !policy.given() {
        policy.problems("")?; // says what is missing, before anything is asked
    }
    let (mut home, mut r) = a.remote.connect(cx)?;
    let check = |note: &str| policy.problems(note);
    let quorum: Option<sync::Quorum<'_>> = match policy.given() || policy.quorum_given() {
        true => Some(&check),
        false => None,
    };
    Ok(Output::doc(
        sync::pull(&mut home, &mut r, &cx.transfer_progress(), quorum)?,
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
    for c in &r.requirement_changes {
        writeln!(w, "remote {} requirement changed: {c}", r.remote)?;
    }
    if !r.ignored_checkpoints.is_empty() {
        writeln!(
            w,
            "passed over {} key(s) under checkpoints/ that are not notes signed by a recorded key (`cto-ledger audit --remote` lists them)",
            r.ignored_checkpoints.len()
        )?;
    }
    writeln!(w, "head {}:{}", r.head.seq, r.head.hash)
}
