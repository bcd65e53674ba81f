//! `cto-ledger show REF`: any node of the graph and its neighbours.

use super::{text, Context, Output};
use crate::error::Result;

pub(crate) type Args = super::RefArg;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.resolve(cx)?;
    let doc = home.ledger.describe(&node)?;
    Ok(Output::doc(doc, |w, v| text::value(w, v, 0)))
}
