//! `cto-ledger man`: the man page (roff); with `--json`, `{"format": "roff", "page": ...}`.

use clap::CommandFactory;
use serde::Serialize;

use super::{Context, Output};
use crate::cli::Cli;
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub(crate) struct Args {}

#[derive(Serialize)]
pub(crate) struct ManOut {
    format: &'static str,
    page: String,
}

pub(crate) fn run(_: &Context, _: Args) -> Result<Output> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut roff)
        .map_err(|e| {
            Error::bad_input(
                format!("the man page could not be rendered: {e}"),
                "report this as a bug",
            )
        })?;
    let out = ManOut {
        format: "roff",
        page: String::from_utf8_lossy(&roff).into_owned(),
    };
    Ok(Output::doc(out, |w, m| w.write_all(m.page.as_bytes())))
}
