//! `cto-ledger key export [KEYID] [--format pem|raw|note]`: a public key, for auditors.

use super::super::{Context, Output};
use crate::error::Result;
use crate::keyring::{self, Format};
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A recorded key id or a unique prefix of one (default: this host's key)
    keyid: Option<String>,
    #[arg(long, value_enum, default_value = "pem")]
    format: FormatArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// SubjectPublicKeyInfo PEM
    Pem,
    /// The raw 32-byte key, base64
    Raw,
    /// A C2SP note verifier key
    Note,
}

pub(super) fn run(cx: &Context, a: Args) -> Result<Output> {
    let format = match a.format {
        FormatArg::Pem => Format::Pem,
        FormatArg::Raw => Format::Raw,
        FormatArg::Note => Format::Note,
    };
    let text = keyring::export(&cx.open(Mode::ReadOnly)?, a.keyid.as_deref(), format)?;
    Ok(Output::raw(move |w| Ok(w.write_all(text.as_bytes())?)))
}
