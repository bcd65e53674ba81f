//! `cto-ledger remote remove NAME`: forget a remote (nothing on it is touched).

use serde::Serialize;

use super::super::{Context, Output};
use crate::error::Result;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    name: String,
}

#[derive(Serialize)]
struct Removed {
    removed: String,
}

pub(super) fn run(cx: &Context, a: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    home.ledger.remote_remove(&a.name)?;
    Ok(Output::doc(Removed { removed: a.name }, |w, r| {
        writeln!(w, "removed remote {}", r.removed)
    }))
}
