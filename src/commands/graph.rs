//! `cto-ledger graph REF --format dot|mermaid|svg`: the lineage of a node as a picture.

use serde::Serialize;

use super::{Context, Output};
use crate::error::Result;
use crate::lineage::{self, GraphFormat};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Dot,
    Mermaid,
    /// Laid out by cto-ledger itself: no Graphviz needed
    Svg,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: super::RefArg,
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
}

#[derive(Serialize)]
pub(crate) struct GraphOut {
    format: &'static str,
    graph: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.target.resolve(cx)?;
    let (format, name) = match a.format {
        Format::Dot => (GraphFormat::Dot, "dot"),
        Format::Mermaid => (GraphFormat::Mermaid, "mermaid"),
        Format::Svg => (GraphFormat::Svg { links: false }, "svg"),
    };
    let graph = lineage::graph(&home.ledger, &node, format)?;
    let out = GraphOut {
        format: name,
        graph,
    };
    Ok(Output::doc(out, |w, g| w.write_all(g.graph.as_bytes())))
}
