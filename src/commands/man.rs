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
    let mut page = String::from_utf8_lossy(&roff).into_owned();
    page.push_str(&environment_section());
    let out = ManOut {
        format: "roff",
        page,
    };
    Ok(Output::doc(out, |w, m| w.write_all(m.page.as_bytes())))
}

/// `ENVIRONMENT`: every variable cto-ledger reads, from the one list of them.
fn environment_section() -> String {
    // Roff: a leading `.` or `'` would start a request, and `\` an escape.
    let text = |s: &str| s.replace('\\', "\\e").replace('-', "\\-");
    let mut out = String::from(".SH ENVIRONMENT\n");
    for v in crate::env::VARS {
        let audience = match v.audience {
            crate::env::Audience::TestHook => " (test hook)",
            _ => "",
        };
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR{audience}\n\\&{}\n",
            text(v.name),
            text(v.purpose)
        ));
    }
    out
}
