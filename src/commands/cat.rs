//! `cto-ledger cat DIGEST`: an object's bytes on stdout, verified before the first byte.

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "DIGEST")]
    target: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let id = home.resolve_object(&a.target)?;
    // Verify before emitting a byte, so a corrupt object never reaches the reader.
    match home.store.rehash(&id)? {
        None => {
            return Err(Error::Integrity {
                message: format!("object {id} is recorded but missing from the store"),
            })
        }
        Some(m) if m.id != id => {
            return Err(Error::Integrity {
                message: format!("object {id} is corrupt: its bytes hash to {}", m.id),
            })
        }
        Some(_) => {}
    }
    Ok(Output::raw(move |w| {
        home.store.copy_verified(&id, w)?;
        Ok(())
    }))
}
