//! `cto-ledger recover`: finalise and record run folders whose harness was killed.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::stage2::{self, RecoverOut};

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    Ok(Output::doc(stage2::recover(&mut home)?, text))
}

fn text(w: &mut dyn Write, r: &RecoverOut) -> R {
    for n in &r.recovered {
        writeln!(w, "recovered run:{n} (interrupted)")?;
    }
    for n in &r.in_progress {
        writeln!(w, "in progress, left alone: {n}")?;
    }
    if !r.killed_pids.is_empty() {
        writeln!(w, "killed leftover processes: {:?}", r.killed_pids)?;
    }
    writeln!(w, "{} run folder(s) recovered", r.recovered.len())
}
