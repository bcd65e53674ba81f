//! `cto-ledger show REF`: any node of the graph and its neighbours.

use super::{text, Context, Output};
use crate::error::Result;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "REF")]
    target: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let node = home.resolve(&a.target)?;
    let doc = home.ledger.describe(&node)?;
    Ok(Output::doc(doc, |w, v| text::value(w, v, 0)))
}
