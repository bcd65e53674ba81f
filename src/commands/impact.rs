//! `cto-ledger impact REF`: everything downstream of a node: builds, outputs, admissions, runs.

use super::{trace::tree, Context, Output};
use crate::error::Result;
use crate::lineage;

pub(crate) type Args = super::RefArg;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.resolve(cx)?;
    Ok(Output::doc(lineage::impact(&home.ledger, &node)?, tree))
}
