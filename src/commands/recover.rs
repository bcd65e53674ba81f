//! `cto-ledger recover`: finalise and record run folders whose harness was killed; exit
//! 1 naming each folder that could not be recorded.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::stage2::{self, RecoverOut};

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(cx: &Context, _: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let out = stage2::recover(&mut home)?;
    let ok = out.failed.is_empty();
    Ok(Output::doc(out, text).negative_unless(ok))
}

fn text(w: &mut dyn Write, r: &RecoverOut) -> R {
    for n in &r.recovered {
        writeln!(w, "recovered run:{n} (interrupted)")?;
    }
    for n in &r.in_progress {
        writeln!(w, "in progress, left alone: {n}")?;
    }
    for f in &r.failed {
        writeln!(w, "could not record {}: {}", f.folder, f.error)?;
    }
    if !r.killed_pids.is_empty() {
        writeln!(w, "killed leftover processes: {:?}", r.killed_pids)?;
    }
    writeln!(w, "{} run folder(s) recovered", r.recovered.len())
}
