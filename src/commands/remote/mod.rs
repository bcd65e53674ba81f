//! `cto-ledger remote add|list|remove|status`: remotes on S3-compatible object storage,
//! one file per subcommand.

mod add;
mod list;
mod remove;
mod status;

use super::{Context, Output};
use crate::error::Result;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Add a remote: s3://BUCKET[/PREFIX]; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    Add(add::Args),
    /// List remotes and how far this ledger is ahead of each (without contacting them)
    List,
    /// Forget a remote (nothing on the remote is touched)
    Remove(remove::Args),
    /// Contact a remote: its head, and how far this ledger is ahead and behind
    Status(status::Args),
}

pub(crate) fn run(cx: &Context, cmd: Option<Cmd>) -> Result<Output> {
    match cmd.unwrap_or(Cmd::List) {
        Cmd::Add(a) => add::run(cx, a),
        Cmd::List => list::run(cx),
        Cmd::Remove(a) => remove::run(cx, a),
        Cmd::Status(a) => status::run(cx, a),
    }
}
