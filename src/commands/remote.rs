//! `cto-ledger remote add|list|remove|status`: remotes on S3-compatible object storage.

use std::io::Write;

use serde::Serialize;

use super::{text::R, Context, Output, EXIT_IO, EXIT_OK};
use crate::error::Result;
use crate::ledger::Mode;
use crate::sync::{self, StatusOut};

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Add a remote: s3://BUCKET[/PREFIX]; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    Add {
        name: String,
        url: String,
        /// An S3-compatible server (e.g. http://127.0.0.1:9000); default: AWS_ENDPOINT_URL, else AWS
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1
        #[arg(long)]
        region: Option<String>,
    },
    /// List remotes and how far this ledger is ahead of each (without contacting them)
    List,
    /// Forget a remote (nothing on the remote is touched)
    Remove { name: String },
    /// Contact a remote: its head, and how far this ledger is ahead and behind
    Status {
        /// The remote (default: every one configured)
        name: Option<String>,
    },
}

#[derive(Serialize)]
struct Removed {
    removed: String,
}

pub(crate) fn run(cx: &Context, cmd: Option<Cmd>) -> Result<Output> {
    match cmd.unwrap_or(Cmd::List) {
        Cmd::Add {
            name,
            url,
            endpoint,
            region,
        } => {
            let mut home = cx.open(Mode::ReadWrite)?;
            let r = sync::add(
                &mut home,
                &name,
                &url,
                endpoint.as_deref(),
                region.as_deref(),
            )?;
            Ok(Output::doc(r, |w, r| {
                writeln!(w, "added remote {} {}", r.name, r.url)
            }))
        }
        Cmd::List => {
            let home = cx.open(Mode::ReadOnly)?;
            let rows = home
                .ledger
                .remotes()?
                .into_iter()
                .map(|r| sync::status(&home, r, false))
                .collect::<Result<Vec<_>>>()?;
            Ok(Output::doc(rows, |w, r| text(w, r)))
        }
        Cmd::Remove { name } => {
            let mut home = cx.open(Mode::ReadWrite)?;
            home.ledger.remote_remove(&name)?;
            Ok(Output::doc(Removed { removed: name }, |w, r| {
                writeln!(w, "removed remote {}", r.removed)
            }))
        }
        Cmd::Status { name } => {
            let home = cx.open(Mode::ReadOnly)?;
            let rows = match name {
                Some(n) => vec![home.ledger.remote(&n)?],
                None => home.ledger.remotes()?,
            };
            let st = rows
                .into_iter()
                .map(|r| sync::status(&home, r, true))
                .collect::<Result<Vec<_>>>()?;
            let unreachable = st.iter().any(|s| s.error.is_some());
            Ok(
                Output::doc(st, |w, r| text(w, r)).with_code(if unreachable {
                    EXIT_IO
                } else {
                    EXIT_OK
                }),
            )
        }
    }
}

fn text(w: &mut dyn Write, rows: &[StatusOut]) -> R {
    if rows.is_empty() {
        return writeln!(
            w,
            "no remotes (add one with `cto-ledger remote add NAME s3://BUCKET/PREFIX`)"
        );
    }
    for r in rows {
        let at = r
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        writeln!(w, "{}\t{}{at}", r.remote, r.url)?;
        writeln!(
            w,
            "  in step up to event {} of {}; {} local event(s) to push",
            r.synced.seq, r.local_head.seq, r.ahead
        )?;
        match (&r.remote_head, r.behind, &r.error) {
            (Some(h), Some(_), _) if h.seq == 0 => writeln!(w, "  remote journal is empty")?,
            (Some(h), Some(b), _) => writeln!(
                w,
                "  remote head {}:{}; {b} event(s) to pull",
                h.seq, h.hash
            )?,
            (_, _, Some(e)) => writeln!(w, "  remote not reachable: {e}")?,
            _ => {}
        }
    }
    Ok(())
}
