//! `cto-ledger man`: the man page (roff).

use clap::CommandFactory;

use super::{Context, Output};
use crate::cli::Cli;
use crate::error::Result;

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_: &Context, _: Args) -> Result<Output> {
    Ok(Output::raw(|w| {
        clap_mangen::Man::new(Cli::command()).render(w)?;
        Ok(())
    }))
}
