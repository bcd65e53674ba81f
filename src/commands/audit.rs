//! `cto-ledger audit [--checkpoint SEQ:HASH|FILE | --remote [NAME] [--full]]`.

use std::io::Write;

use super::{
    text::{verdict, R},
    Context, Output,
};
use crate::audit::{self, AuditOut};
use crate::error::Result;
use crate::ledger::Mode;
use crate::sync::{self, Remote, RemoteAuditOut};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// SEQ:HASH printed earlier by `checkpoint`, or a file holding a note from
    /// `checkpoint --sign`: prove the journal still extends it
    #[arg(long, value_name = "SEQ:HASH|FILE", conflicts_with = "remote")]
    checkpoint: Option<String>,
    /// Audit a remote instead: its whole chain, every named object present, a sample re-hashed
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    remote: Option<String>,
    /// With --remote: re-hash every remote object, not a sample
    #[arg(long, requires = "remote")]
    full: bool,
    /// With --checkpoint FILE: the witnesses whose cosignatures the note must carry
    #[command(flatten)]
    witnesses: super::WitnessArgs,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if let Some(name) = &a.remote {
        let home = cx.open(Mode::ReadOnly)?;
        let row = sync::pick(&home, Some(name.as_str()).filter(|n| !n.is_empty()))?;
        let r = sync::audit(&home, &Remote::connect(row)?, a.full)?;
        let ok = r.ok;
        return Ok(Output::doc(r, remote_text).negative_unless(ok));
    }
    let cp = a
        .checkpoint
        .as_deref()
        .map(audit::checkpoint_arg)
        .transpose()?;
    let home = cx.open(Mode::ReadOnly)?;
    let mut r = audit::audit(&home, cp.as_ref(), &cx.progress())?;
    let policy = &a.witnesses;
    if policy.given() || policy.quorum_given() {
        let Some(audit::CheckpointArg::Note(path, note)) = &cp else {
            return Err(crate::error::Error::bad_input(
                "--witness-key checks the cosignatures of a signed note",
                "give the note with --checkpoint FILE",
            ));
        };
        for p in policy.problems(note)? {
            r.findings.push(audit::Finding::new(
                crate::state::AuditCheck::Checkpoint,
                path.display().to_string(),
                p,
            ));
        }
        r.ok = r.findings.is_empty();
    }
    let ok = r.ok;
    Ok(Output::doc(r, text).negative_unless(ok))
}

fn text(w: &mut dyn Write, r: &AuditOut) -> R {
    match &r.head {
        Some(h) => writeln!(w, "journal: {} events, head {}:{}", r.events, h.seq, h.hash)?,
        None => writeln!(w, "journal: empty")?,
    }
    writeln!(
        w,
        "objects: {} re-hashed ({} bytes, BLAKE3 and SHA-256)",
        r.objects_checked, r.bytes_checked
    )?;
    writeln!(w, "runs:    {} checked", r.runs_checked)?;
    verdict(w, "audit", &r.notes, &r.findings)
}

fn remote_text(w: &mut dyn Write, r: &RemoteAuditOut) -> R {
    match &r.head {
        Some(h) => writeln!(
            w,
            "remote {} journal: {} events, head {}:{}",
            r.remote, r.events, h.seq, h.hash
        )?,
        None => writeln!(w, "remote {} journal: empty", r.remote)?,
    }
    writeln!(
        w,
        "objects: {} named, {} re-hashed ({} bytes)",
        r.objects_named, r.objects_checked, r.bytes_checked
    )?;
    verdict(w, "remote audit", &r.notes, &r.findings)
}
