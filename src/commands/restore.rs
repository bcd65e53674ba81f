//! `cto-ledger restore TREE DIR`: write a tree object into a new or empty directory.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::id::ObjectId;
use crate::ledger::Mode;
use crate::paths::lossy;
use crate::store::tree;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "TREE")]
    target: String,
    dir: PathBuf,
}

#[derive(Serialize)]
pub(crate) struct RestoreOut {
    tree: ObjectId,
    dir: String,
    entries: u64,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let id = home.resolve_object(&a.target)?;
    let entries = tree::restore(&home.store, &id, &a.dir)?;
    let out = RestoreOut {
        tree: id,
        dir: lossy(&a.dir),
        entries,
    };
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &RestoreOut) -> R {
    writeln!(
        w,
        "restored {} ({} entries) into {}",
        r.tree, r.entries, r.dir
    )
}
