//! `cto-ledger verify-proof FILE --key PEM [--subject PATH]`: checks a proof from
//! `prove` offline (`offline::proof`): the checkpoint's signature, the Merkle path to its
//! root, and (for an inclusion proof) that the entry's bytes hash to the proven leaf.
//! Exit 0 when it holds, 1 when it does not, 2 when the proof or key cannot be read.

use super::{Context, OfflineArgs, Output};
use crate::error::Result;
use crate::offline::proof;
use crate::sign::keys;

pub(crate) fn run(_: &Context, a: OfflineArgs) -> Result<Output> {
    let key = keys::read_public(&a.key)?;
    let out = proof::verify_file(&a.file, &key, a.subject.as_deref())?;
    let ok = out.check.ok;
    Ok(Output::doc(out, |w, o| {
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
