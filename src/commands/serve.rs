//! `cto-ledger serve`: the ledger as a read-only web page on loopback, behind a token.

use std::io::Write as _;

use super::{Context, Output};
use crate::error::Result;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to listen; beyond loopback every request still needs the token
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    bind: String,
    /// Open the page in the desktop's browser (xdg-open)
    #[arg(long)]
    open: bool,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let dir = crate::home::locate(cx.ledger.as_deref())?;
    let server = crate::serve::Server::bind(dir.clone(), &a.bind)?;
    let url = server.url();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "serving {} read-only at {url}", dir.display());
    if !server.loopback() {
        let _ = writeln!(
            out,
            "warning: listening on {} beyond loopback: anyone who can reach it still needs the token, which plain HTTP carries in clear",
            server.addr
        );
    }
    let _ = out.flush();
    if a.open {
        if let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn() {
            let _ = writeln!(
                std::io::stderr(),
                "could not start xdg-open ({e}): open the URL above"
            );
        }
    }
    server.serve()?;
    Ok(Output::raw(|_| Ok(())))
}
