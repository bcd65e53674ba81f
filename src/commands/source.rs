//! `cto-ledger source add DIR`: record a git clone.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ledger::events::SourceRec;
use crate::ledger::Mode;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Record a git clone: remote, HEAD, branch, changed paths, snapshot of tracked files
    Add { dir: PathBuf },
}

#[derive(Serialize)]
pub(crate) struct SourceOut {
    source: SourceRec,
    recorded: bool,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    let Cmd::Add { dir } = cmd;
    let mut home = cx.open(Mode::ReadWrite)?;
    let progress = cx.progress();
    let (source, recorded) = crate::source::add(&mut home, &dir, &progress)?;
    progress.finish_and_clear();
    let out = SourceOut { source, recorded };
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &SourceOut) -> R {
    let s = &r.source;
    let again = if r.recorded {
        ""
    } else {
        " (already recorded)"
    };
    writeln!(w, "source {}{again}", s.id)?;
    writeln!(
        w,
        "  url       {}",
        s.url.as_deref().unwrap_or("(no remote)")
    )?;
    let branch = s
        .branch
        .as_deref()
        .map(|b| format!(" ({b})"))
        .unwrap_or_default();
    writeln!(w, "  commit    {}{branch}", s.commit)?;
    writeln!(w, "  snapshot  {}", s.snapshot)?;
    for c in &s.changes {
        writeln!(w, "  {:<10} {}", c.status.as_str(), c.path)?;
    }
    Ok(())
}
