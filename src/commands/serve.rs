//! `cto-ledger serve`: the ledger as a read-only web page on loopback, behind a token.

use std::io::Write as _;

use std::path::PathBuf;

use super::{Context, Output, WitnessArgs};
use crate::error::{Error, Result};
use crate::serve::{BundleView, Server};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to listen (default: a random address in 127.0.0.0/8, any free port); beyond
    /// loopback every request still needs the token
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
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
    let bind = match &a.bind {
        Some(b) => b.clone(),
        None => private_loopback()?,
    };
    let (server, what) = match (&a.bundle, &a.key) {
        (Some(file), Some(key)) => {
            let key = crate::sign::keys::read_public(key)?;
            let view = BundleView::open(file, &key, &|n| a.witnesses.problems(n))?;
            let state = match view.verified() {
                true => "verified",
                false => "which FAILED verification (the page lists why)",
            };
            let what = format!("bundle {} {state}", file.display());
            (Server::bind_bundle(view, &bind)?, what)
        }
        (None, None) if !a.witnesses.given() && !a.witnesses.quorum_given() => {
            let dir = crate::home::locate(cx.ledger.as_deref())?;
            (Server::bind(dir.clone(), &bind)?, dir.display().to_string())
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

/// A loopback address of this server's own: browsers send a cookie to every port of the
/// host that set it, so on 127.0.0.1 the token's cookie would reach any other local web
/// server the browser visits. Linux answers on all of 127.0.0.0/8; an address drawn at
/// random from it is a host no other page names. Falls back to 127.0.0.1 when it cannot
/// be bound.
fn private_loopback() -> Result<String> {
    let mut b = [0u8; 3];
    crate::sign::keys::random_bytes(&mut b, "draw the address from")?;
    let addr = format!("127.{}.{}.{}:0", b[0], b[1], b[2].clamp(2, 254));
    Ok(match std::net::TcpListener::bind(&addr) {
        Ok(_) => addr,
        Err(_) => "127.0.0.1:0".into(),
    })
}
