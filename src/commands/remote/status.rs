//! `cto-ledger remote status [NAME]`: contact a remote: its head, and how far this
//! ledger is ahead and behind.

use std::io::Write;

use super::super::{text::R, Context, Output, EXIT_INTEGRITY, EXIT_IO, EXIT_OK};
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
    let failed = |kind| st.iter().any(|s| s.error_kind == Some(kind));
    let code = if failed("integrity") {
        EXIT_INTEGRITY
    } else if failed("unreachable") {
        EXIT_IO
    } else {
        EXIT_OK
    };
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
        if r.replaced {
            writeln!(w, "  the remote no longer holds events this host saw there; `cto-ledger pull` re-appends this ledger's own")?;
        }
        match (&r.remote_head, r.behind, &r.error, r.error_kind) {
            (Some(h), Some(_), _, _) if h.seq == 0 => writeln!(w, "  remote journal is empty")?,
            (Some(h), Some(b), _, _) => writeln!(
                w,
                "  remote head {}:{} (every entry checked); {b} event(s) to pull",
                h.seq, h.hash
            )?,
            (_, _, Some(e), Some("integrity")) => writeln!(w, "  remote fails verification: {e}")?,
            (_, _, Some(e), _) => writeln!(w, "  remote not reachable: {e}")?,
            _ => {}
        }
    }
    Ok(())
}
