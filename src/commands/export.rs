//! `cto-ledger export REF --format in-toto|prov-json`: an artifact's provenance as a
//! standard JSON document (in-toto Statement v1 with SLSA Provenance v1, or W3C PROV-JSON).

use std::io;

use super::{Context, Output};
use crate::error::Result;
use crate::lineage;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    InToto,
    ProvJson,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: super::RefArg,
    #[arg(long, value_enum, default_value = "in-toto")]
    format: Format,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.target.resolve(cx)?;
    let doc = match a.format {
        Format::InToto => lineage::export_in_toto(&home.ledger, &node)?,
        Format::ProvJson => lineage::export_prov(&home.ledger, &node)?,
    };
    // The export is a JSON document either way.
    Ok(Output::raw(move |w| {
        serde_json::to_writer_pretty(&mut *w, &doc).map_err(io::Error::from)?;
        writeln!(w)?;
        Ok(())
    }))
}
