//! `cto-ledger checkpoint [--sign]`: the journal head (SEQ:HASH) to keep for
//! `audit --checkpoint`; with `--sign`, a C2SP signed note over the Merkle tree of the
//! whole journal, kept in the ledger and printed.

use serde::Serialize;

use super::{Context, Output};
use crate::error::{Error, Result};
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
    let home = cx.open(Mode::ReadWrite)?;
    let (key, _) = tlog::signer(&home)?;
    let head = home.ledger.head()?;
    // A pull re-numbers events no remote has yet; a signed tree must never move.
    if let Some(r) = home
        .ledger
        .remotes()?
        .into_iter()
        .max_by_key(|r| r.synced.seq)
    {
        if r.synced.seq < head.seq {
            return Err(Error::bad_input(
                format!(
                    "events {}..{} are not on any remote yet (remote `{}` has up to {}); a pull could still re-number them",
                    r.synced.seq + 1,
                    head.seq,
                    r.name,
                    r.synced.seq
                ),
                "run `cto-ledger push` first: it publishes the events and signs a checkpoint of them",
            ));
        }
    }
    let row = tlog::sign_checkpoint(&home, &key, head.seq)?;
    let out = Signed {
        size: row.size,
        root: row.root,
        keyid: row.keyid,
        note: row.note,
    };
    Ok(Output::doc(out, |w, s| write!(w, "{}", s.note)))
}
