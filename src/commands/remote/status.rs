//! `cto-ledger remote status [NAME]`: contact a remote: its head, and how far this
//! ledger is ahead and behind.

use std::io::Write;

use super::super::{text::R, Context, Output, EXIT_IO, EXIT_OK};
use crate::error::Result;
use crate::ledger::Mode;
use crate::sync::{self, StatusOut};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The remote (default: every one configured)
    name: Option<String>,
}

pub(super) fn run(cx: &Context, a: Args) -> Result<Output> {
    let st = sync::statuses(&cx.open(Mode::ReadOnly)?, a.name.as_deref(), true)?;
    let unreachable = st.iter().any(|s| s.error.is_some());
    let code = if unreachable { EXIT_IO } else { EXIT_OK };
    Ok(Output::doc(st, |w, r| text(w, r)).with_code(code))
}

pub(super) fn text(w: &mut dyn Write, rows: &[StatusOut]) -> R {
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
