//! `cto-ledger completions SHELL`: shell completions; with `--json`, `{"shell", "script"}`.

use clap::CommandFactory;
use serde::Serialize;

use super::{Context, Output};
use crate::cli::Cli;
use crate::error::Result;

#[derive(clap::Args)]
pub(crate) struct Args {
    shell: clap_complete::Shell,
}

#[derive(Serialize)]
pub(crate) struct CompletionsOut {
    shell: String,
    script: String,
}

pub(crate) fn run(_: &Context, a: Args) -> Result<Output> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "cto-ledger", &mut script);
    let out = CompletionsOut {
        shell: a.shell.to_string(),
        script: String::from_utf8_lossy(&script).into_owned(),
    };
    Ok(Output::doc(out, |w, c| w.write_all(c.script.as_bytes())))
}
