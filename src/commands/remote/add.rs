//! `cto-ledger remote add NAME URL`: record a remote (it is not contacted).

use super::super::{Context, Output};
use crate::error::Result;
use crate::ledger::Mode;
use crate::sync;

#[derive(clap::Args)]
pub(crate) struct Args {
    name: String,
    url: String,
    /// An S3-compatible server (e.g. http://127.0.0.1:9000); default: AWS_ENDPOINT_URL, else AWS
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1
    #[arg(long)]
    region: Option<String>,
}

pub(super) fn run(cx: &Context, a: Args) -> Result<Output> {
    let mut home = cx.open(Mode::ReadWrite)?;
    let r = sync::add(
        &mut home,
        &a.name,
        &a.url,
        a.endpoint.as_deref(),
        a.region.as_deref(),
    )?;
    Ok(Output::doc(r, |w, r| {
        writeln!(w, "added remote {} {}", r.name, r.url)
    }))
}
