//! `cto-ledger key generate`: make (or take) this host's key and record its public half.

use std::io::Write;

use super::super::{text, Context, Output};
use crate::error::Result;
use crate::keyring::{self, Recorded};
use crate::ledger::Mode;

pub(super) fn run(cx: &Context) -> Result<Output> {
    let out = keyring::generate(&mut cx.open(Mode::ReadWrite)?)?;
    Ok(Output::doc(out, recorded_text))
}

/// `generate` and `rotate` say the same things about the key they recorded.
pub(super) fn recorded_text(w: &mut dyn Write, r: &Recorded) -> text::R {
    let verb = match (&r.replaces, r.generated) {
        (Some(_), _) => "rotated to new key",
        (None, true) => "generated key",
        (None, false) => "recorded existing key",
    };
    writeln!(w, "{verb} {} (event {})", r.keyid, r.seq)?;
    writeln!(w, "private key: {}", r.path.display())?;
    if let Some(old) = &r.replaces {
        writeln!(w, "retired key: {old} (still verifies what it signed)")?;
    }
    Ok(())
}
