//! `cto-ledger remote list` (and bare `remote`): remotes and how far this ledger is
//! ahead of each, without contacting them.

use super::super::{Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::sync;

pub(super) fn run(cx: &Context) -> Result<Output> {
    let rows = sync::statuses(&cx.open(Mode::ReadOnly)?, None, false)?;
    Ok(Output::doc(rows, |w, r| super::status::text(w, r)))
}
