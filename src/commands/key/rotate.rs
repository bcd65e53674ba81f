//! `cto-ledger key rotate`: a new key for this host; the old one is retired, still
//! verifying what it signed.

use super::super::{Context, Output};
use super::generate::recorded_text;
use crate::error::Result;
use crate::keyring;
use crate::ledger::Mode;

pub(super) fn run(cx: &Context) -> Result<Output> {
    let out = keyring::rotate(&mut cx.open(Mode::ReadWrite)?)?;
    Ok(Output::doc(out, recorded_text))
}
