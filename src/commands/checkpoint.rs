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
    /// With --sign: ask this C2SP tlog-witness to cosign the checkpoint, given as its
    /// verifier key and URL prefix (VKEY@URL); its cosignature is kept with the checkpoint
    /// only when it verifies under that key; repeatable
    #[arg(long, value_name = "VKEY@URL", requires = "sign")]
    witness: Vec<String>,
    /// With --sign: also write the log as C2SP tlog-tiles under DIR (`checkpoint`, the
    /// hash tiles `tile/L/N` and entry bundles `tile/entries/N`, partial ones `.p/W`),
    /// for any tlog-tiles client to read and verify
    #[arg(long, value_name = "DIR", requires = "sign")]
    tiles: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Signed {
    size: u64,
    root: String,
    keyid: String,
    note: String,
    /// What each witness asked (`--witness`) answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    witnesses: Vec<crate::witness::client::Asked>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if !a.sign {
        let home = cx.open(Mode::ReadOnly)?;
        let head = home.ledger.head()?;
        return Ok(Output::doc(head, |w, h| {
            writeln!(w, "{}:{}", h.seq, h.hash)
        }));
    }
    let mut asking = a
        .witness
        .iter()
        .map(|w| crate::witness::client::Asking::parse(w))
        .collect::<Result<Vec<_>>>()?;
    let home = cx.open(Mode::ReadWrite)?;
    // Without --witness: the witnesses recorded for this log (`witness add VKEY@URL`).
    if asking.is_empty() {
        asking = crate::witness::client::Asking::recorded(&home)?;
    }
    let mut row = tlog::sign_head(&home)?;
    let witnesses = crate::witness::client::cosign_kept(&home, &mut row, &asking)?;
    if let Some(dir) = &a.tiles {
        for (path, bytes) in crate::ledger::tiles::tile_files(home.ledger.conn(), 0, row.size)? {
            let p = dir.join(&path);
            let parent = p.parent().expect("a tile path has a folder");
            std::fs::create_dir_all(parent).map_err(crate::error::Error::io("create", parent))?;
            super::attest::write_atomically(&p, &bytes)?;
        }
        super::attest::write_atomically(&dir.join("checkpoint"), row.note.as_bytes())?;
    }
    let all = witnesses.iter().all(|w| w.cosignature.is_some());
    let out = Signed {
        size: row.size,
        root: row.root,
        keyid: row.keyid,
        note: row.note,
        witnesses,
    };
    Ok(Output::doc(out, |w, s| {
        write!(w, "{}", s.note)?;
        for a in s.witnesses.iter().filter(|a| a.refused.is_some()) {
            let why = a.refused.as_deref().unwrap_or_default();
            writeln!(w, "witness {} refused to cosign: {why}", a.url)?;
        }
        Ok(())
    })
    .negative_unless(all))
}
