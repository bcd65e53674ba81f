//! `cto-ledger reindex`: rebuild every projection table from the journal.

use std::io::Write;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::{Head, Mode};

#[derive(clap::Args)]
pub(crate) struct Args {}

#[derive(Serialize)]
pub(crate) struct ReindexOut {
    events_replayed: u64,
    head: Head,
}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let events_replayed = home.ledger.reindex()?;
    let head = home.ledger.head()?;
    Ok(Output::doc(
        ReindexOut {
            events_replayed,
            head,
        },
        text,
    ))
}

fn text(w: &mut dyn Write, r: &ReindexOut) -> R {
    writeln!(
        w,
        "rebuilt projections from {} journal events",
        r.events_replayed
    )
}
