//! `cto-ledger init`: create the ledger home explicitly (any writing command also does).

use std::io::Write;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::{Head, Mode};
use crate::paths::lossy;

#[derive(clap::Args)]
pub(crate) struct Args {}

#[derive(Serialize)]
pub(crate) struct InitOut {
    home: String,
    created: bool,
    head: Head,
}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let created = home.init()?;
    let out = InitOut {
        home: lossy(&home.dir),
        created,
        head: home.ledger.head()?,
    };
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &InitOut) -> R {
    if r.created {
        writeln!(w, "created ledger at {}", r.home)
    } else {
        writeln!(
            w,
            "ledger at {} already exists (head {}:{})",
            r.home, r.head.seq, r.head.hash
        )
    }
}
