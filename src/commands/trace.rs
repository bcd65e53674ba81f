//! `cto-ledger trace REF`: everything upstream of a node, down to the source commit.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::lineage::{self, LNode};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "REF")]
    target: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let node = home.resolve(&a.target)?;
    Ok(Output::doc(lineage::trace(&home.ledger, &node)?, tree))
}

/// A lineage as an indented tree (shared with `impact`).
pub(crate) fn tree(w: &mut dyn Write, t: &LNode) -> R {
    let mut s = String::new();
    lineage::render_tree(t, &mut s, "", true, true);
    w.write_all(s.as_bytes())
}
