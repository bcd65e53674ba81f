//! `cto-ledger impact REF`: everything downstream of a node: builds, outputs, admissions, runs.

use super::{trace::tree, Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::lineage;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "REF")]
    target: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let node = home.resolve(&a.target)?;
    Ok(Output::doc(lineage::impact(&home.ledger, &node)?, tree))
}
