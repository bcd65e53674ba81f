//! `cto-ledger trace REF`: everything upstream of a node, down to the source commit.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::lineage::{self, LNode};

pub(crate) type Args = super::RefArg;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.resolve(cx)?;
    Ok(Output::doc(lineage::trace(&home.ledger, &node)?, tree))
}

/// A lineage as an indented tree (shared with `impact`).
pub(crate) fn tree(w: &mut dyn Write, t: &LNode) -> R {
    let mut s = String::new();
    lineage::render_tree(t, &mut s, "", true, true);
    w.write_all(s.as_bytes())
}
