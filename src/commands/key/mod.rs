//! `cto-ledger key generate|list|export|rotate|revoke`: the Ed25519 keys that sign
//! checkpoints and attestations (`crate::keyring`), one file per subcommand. Private
//! keys live outside the ledger home; their public halves are journal events.

mod export;
mod generate;
mod list;
mod revoke;
mod rotate;

use super::{Context, Output};
use crate::error::Result;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Make a signing key (or record the existing one at the key path) and record its public half
    Generate,
    /// List recorded keys: current, retired or revoked
    List,
    /// Print a public key: PEM (SubjectPublicKeyInfo), raw base64, or a C2SP note verifier key
    Export(export::Args),
    /// Replace this host's key with a new one; the old key stays recorded and still verifies what it signed
    Rotate,
    /// Revoke a key: nothing more is signed with it, and `audit` flags checkpoints it signed
    Revoke(revoke::Args),
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::Generate => generate::run(cx),
        Cmd::List => list::run(cx),
        Cmd::Export(a) => export::run(cx, a),
        Cmd::Rotate => rotate::run(cx),
        Cmd::Revoke(a) => revoke::run(cx, a),
    }
}
