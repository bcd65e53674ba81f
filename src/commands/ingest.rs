//! `cto-ledger ingest PATH...`: store files and directories (as tree objects) and record them.

use std::io::Write;
use std::path::PathBuf;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::ingest::{self, IngestOut, Labels};
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// What the artifact is (source, binary, config, run-artifact, ...)
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    label: Option<String>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    ingest::check(&a.paths)?;
    let mut home = cx.open(Mode::ReadWrite)?;
    let progress = cx.progress();
    let labels = Labels {
        kind: a.kind.as_deref(),
        label: a.label.as_deref(),
    };
    let out = ingest::ingest(&mut home, &a.paths, &labels, &progress)?;
    progress.finish_and_clear();
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &IngestOut) -> R {
    for i in &r.items {
        let files = if i.files > 1 {
            format!(", {} files", i.files)
        } else {
            String::new()
        };
        writeln!(
            w,
            "{} {}  {}  {} ({} bytes{files})",
            i.kind.as_str(),
            i.object,
            i.sha256,
            i.path,
            i.size,
        )?;
    }
    writeln!(
        w,
        "recorded as event {} ({} new objects)",
        r.seq, r.new_objects
    )
}
