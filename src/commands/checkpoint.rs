//! `cto-ledger checkpoint [--sign]`: the journal head (SEQ:HASH) to keep for
//! `audit --checkpoint`; with `--sign`, a C2SP signed note over the Merkle tree of the
//! whole journal, kept in the ledger and printed.

use serde::Serialize;

use super::{Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::tlog;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Sign the log's tree with this host's key and print the signed note
    #[arg(long)]
    sign: bool,
}

#[derive(Serialize)]
struct Signed {
    size: u64,
    root: String,
    keyid: String,
    note: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if !a.sign {
        let home = cx.open(Mode::ReadOnly)?;
        let head = home.ledger.head()?;
        return Ok(Output::doc(head, |w, h| {
            writeln!(w, "{}:{}", h.seq, h.hash)
        }));
    }
    let row = tlog::sign_head(&cx.open(Mode::ReadWrite)?)?;
    let out = Signed {
        size: row.size,
        root: row.root,
        keyid: row.keyid,
        note: row.note,
    };
    Ok(Output::doc(out, |w, s| write!(w, "{}", s.note)))
}
