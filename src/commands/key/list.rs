//! `cto-ledger key list`: every recorded key and its status.

use std::io::Write;

use super::super::{text, Context, Output};
use crate::error::Result;
use crate::keyring::{self, Listed};
use crate::ledger::Mode;

pub(super) fn run(cx: &Context) -> Result<Output> {
    let rows = keyring::list(&cx.open(Mode::ReadOnly)?)?;
    Ok(Output::doc(rows, |w, r| list_text(w, r)))
}

fn list_text(w: &mut dyn Write, rows: &[Listed]) -> text::R {
    let headers = ["KEYID", "STATUS", "EVENT", "ADDED", "BY"].map(String::from);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{}{}", r.key.keyid, if r.current { " *" } else { "" }),
                r.status.to_string(),
                r.key.seq.to_string(),
                r.key.time.clone(),
                r.key.actor.clone(),
            ]
        })
        .collect();
    text::table(w, &headers, &body)
}
