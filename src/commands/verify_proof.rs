//! `cto-ledger verify-proof FILE --key PEM [--subject PATH]`: checks a proof from
//! `prove` offline (`offline::proof`): the checkpoint's signature, the Merkle path to its
//! root, and (for an inclusion proof) that the entry's bytes hash to the proven leaf.
//! Exit 0 when it holds, 1 when it does not, 2 when the proof or key cannot be read.

use super::{Context, OfflineArgs, Output, WitnessArgs};
use crate::error::Result;
use crate::offline::proof;
use crate::sign::keys;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    offline: OfflineArgs,
    #[command(flatten)]
    witnesses: WitnessArgs,
}

pub(crate) fn run(_: &Context, a: Args) -> Result<Output> {
    let (a, witnesses) = (a.offline, a.witnesses);
    let key = keys::read_public(&a.key)?;
    let out = proof::verify_file(&a.file, &key, a.subject.as_deref(), &|n| {
        witnesses.problems(n)
    })?;
    let ok = out.check.ok;
    Ok(Output::doc(out, |w, o| {
        let c = &o.check;
        for p in &c.problems {
            writeln!(w, "FAILED: {p}")?;
        }
        if !c.ok {
            return writeln!(w, "verification FAILED");
        }
        let origin = c.origin.as_deref().unwrap_or("?");
        let size = c.tree_size.unwrap_or(0);
        let Some(e) = &c.event else {
            return writeln!(w, "{} proof verified against {origin} at tree size {size}", c.kind);
        };
        let kind = e["kind"].as_str().unwrap_or("?");
        writeln!(
            w,
            "event {} ({kind}) at {} by {}: included in the log {origin} at tree size {size}",
            e["seq"],
            e["time"].as_str().unwrap_or("?"),
            e["actor"]["user"].as_str().unwrap_or("?")
        )?;
        if kind == "admission" || kind == "model_admission" {
            let text = |k: &str| super::text::shown(e[k].as_str().unwrap_or("-"));
            if kind == "admission" {
                writeln!(
                    w,
                    "  admission {} of {} {}, pin {}, commit {}",
                    text("id"),
                    text("name"),
                    text("sha256"),
                    text("pin"),
                    text("commit")
                )?;
            } else {
                writeln!(w, "  model admission {} of {}/{}", text("id"), text("provider"), text("model"))?;
            }
            writeln!(
                w,
                "  the proof carries no revocation of it up to size {size} (`prove` attaches one the checkpoint covers)"
            )?;
        }
        Ok(())
    })
    .negative_unless(ok))
}
