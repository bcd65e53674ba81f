//! `cto-ledger serve`: the ledger as a read-only web page on loopback, behind a token.

use std::io::Write as _;

use std::path::PathBuf;

use super::{Context, Output, WitnessArgs};
use crate::error::{Error, Result};
use crate::serve::{BundleView, Server};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to listen; beyond loopback every request still needs the token
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    bind: String,
    /// Open the page in the desktop's browser (xdg-open)
    #[arg(long)]
    open: bool,
    /// Show this evidence bundle (`export run:ID --bundle FILE`) instead of a ledger,
    /// checked at start as `verify-bundle` checks it
    #[arg(long, value_name = "FILE", requires = "key")]
    bundle: Option<PathBuf>,
    /// With --bundle: the signer's public key, PEM, obtained from the signer
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    #[command(flatten)]
    witnesses: WitnessArgs,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (server, what) = match (&a.bundle, &a.key) {
        (Some(file), Some(key)) => {
            let key = crate::sign::keys::read_public(key)?;
            let view = BundleView::open(file, &key, &|n| a.witnesses.problems(n))?;
            let state = match view.verified() {
                true => "verified",
                false => "which FAILED verification (the page lists why)",
            };
            let what = format!("bundle {} {state}", file.display());
            (Server::bind_bundle(view, &a.bind)?, what)
        }
        (None, None) if !a.witnesses.given() && !a.witnesses.quorum_given() => {
            let dir = crate::home::locate(cx.ledger.as_deref())?;
            (
                Server::bind(dir.clone(), &a.bind)?,
                dir.display().to_string(),
            )
        }
        _ => {
            return Err(Error::bad_input(
                "--key, --witness-key and --quorum check a bundle, and no --bundle is given",
                "give --bundle FILE with them, or leave them out to serve the ledger",
            ))
        }
    };
    let url = server.url();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "serving {what} read-only at {url}");
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
