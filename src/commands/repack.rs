//! `cto-ledger repack`: move loose small objects into packs (docs/ledger.md, "The store").

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::{Error, Result};
use crate::ledger::Mode;
use crate::store::maintain::RepackOut;

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadWrite)?;
    let out = local_store(&home)?.repack()?;
    let ok = out.damaged.is_empty();
    Ok(Output::doc(out, text).negative_unless(ok))
}

/// The ledger home's own store, for what only a local store does (`repack`, `gc`).
pub(super) fn local_store(home: &crate::Home) -> Result<&crate::store::LocalBackend> {
    home.store.backend().local().ok_or_else(|| {
        Error::bad_input(
            "this ledger's store is not a local directory",
            "repack and gc work on the ledger home's own objects/",
        )
    })
}

fn text(w: &mut dyn Write, r: &RepackOut) -> R {
    writeln!(
        w,
        "moved {} loose object(s), {} bytes, into packs ({} pack(s) before, {} after); {} loose object(s) left (too large for a pack, or damaged)",
        r.moved, r.bytes, r.packs_before, r.packs_after, r.loose_left
    )?;
    for d in &r.damaged {
        writeln!(
            w,
            "left in place, does not hash to its name: {d} (`cto-ledger audit` names it)"
        )?;
    }
    Ok(())
}
