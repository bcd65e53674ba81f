//! `cto-ledger key revoke KEYID --reason TEXT`: nothing more is signed with the key.

use super::super::{Context, Output};
use crate::error::Result;
use crate::keyring;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    keyid: String,
    #[arg(long)]
    reason: String,
}

pub(super) fn run(cx: &Context, a: Args) -> Result<Output> {
    let row = keyring::revoke(&mut cx.open(Mode::ReadWrite)?, &a.keyid, a.reason)?;
    Ok(Output::doc(row, |w, k| {
        let r = k.revoked.as_ref().expect("just revoked");
        writeln!(w, "revoked key {} (event {}): {}", k.keyid, r.seq, r.reason)
    }))
}
