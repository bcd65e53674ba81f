//! `cto-ledger completions SHELL`: shell completions.

use clap::CommandFactory;

use super::{Context, Output};
use crate::cli::Cli;
use crate::error::Result;

#[derive(clap::Args)]
pub(crate) struct Args {
    shell: clap_complete::Shell,
}

pub(crate) fn run(_: &Context, a: Args) -> Result<Output> {
    Ok(Output::raw(move |w| {
        clap_complete::generate(a.shell, &mut Cli::command(), "cto-ledger", w);
        Ok(())
    }))
}
