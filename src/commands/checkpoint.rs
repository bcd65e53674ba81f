//! `cto-ledger checkpoint`: print the journal head (SEQ:HASH) to keep for `audit --checkpoint`.

use super::{Context, Output};
use crate::error::Result;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let head = home.ledger.head()?;
    Ok(Output::doc(head, |w, h| {
        writeln!(w, "{}:{}", h.seq, h.hash)
    }))
}
