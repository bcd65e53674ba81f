//! `cto-ledger sql "SELECT ..."`: one read-only query over the ledger's tables.

use std::io::Write;

use serde_json::Value;

use super::{
    text::{table, R},
    Context, Output,
};
use crate::error::Result;
use crate::ledger::query::SqlOut;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    query: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadOnly)?;
    Ok(Output::doc(home.ledger.sql_readonly(&a.query)?, text))
}

fn text(w: &mut dyn Write, r: &SqlOut) -> R {
    let cell = |v: &Value| match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let body: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect())
        .collect();
    table(w, &r.columns, &body)?;
    let s = if r.rows.len() == 1 { "" } else { "s" };
    writeln!(w, "({} row{s})", r.rows.len())
}
