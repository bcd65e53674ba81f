//! `cto-ledger health`: the built-in Stage 2 checks, in a throwaway ledger.

use std::io::Write;

use super::{text::R, Context, Output};
use crate::error::Result;
use crate::health::{self, HealthOut};

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_: &Context, _: Args) -> Result<Output> {
    let r = health::run()?;
    let ok = r.ok;
    Ok(Output::doc(r, text).negative_unless(ok))
}

fn text(w: &mut dyn Write, r: &HealthOut) -> R {
    for c in &r.checks {
        let pass = if c.pass { "PASS" } else { "FAIL" };
        writeln!(w, "{pass} {:<32} {}", c.name, c.detail)?;
    }
    let verdict = if r.ok {
        "health: all checks passed"
    } else {
        "health: FAILED"
    };
    writeln!(w, "{verdict}")
}
