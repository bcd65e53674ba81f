//! `cto-ledger export REF --format in-toto|prov-json`: an artifact's provenance as a
//! standard JSON document (in-toto Statement v1 with SLSA Provenance v1, or W3C PROV-JSON).
//! `export REF --bundle FILE [--withhold PATH]...`: a run's or an admission's evidence in
//! one tar file that `verify-bundle` checks anywhere (docs/signing.md).

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, Output};
use crate::bundle::{self, write::Plan};
use crate::error::Result;
use crate::ledger::Mode;
use crate::lineage;
use crate::tlog;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    InToto,
    ProvJson,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: super::RefArg,
    #[arg(long, value_enum, default_value = "in-toto", conflicts_with = "bundle")]
    format: Format,
    /// Write the evidence bundle of a run (`run:ID`) or an admission to FILE: signed
    /// attestations (also as Sigstore bundles), the events with inclusion proofs against a
    /// signed checkpoint (signing one of the head when none covers them), the report,
    /// transcript, logs and diff, and the public key
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Leave this evidence file (or the diff) out of the bundle, keeping its digest
    /// (`backend/model-transcript.jsonl`, `changes/workspace.diff`); repeatable
    #[arg(long, value_name = "PATH", requires = "bundle")]
    withhold: Vec<String>,
}

#[derive(Serialize)]
struct Bundled {
    file: PathBuf,
    subject: String,
    bytes: u64,
    members: usize,
    withheld: Vec<String>,
    checkpoint_size: u64,
    /// Whether `export` signed the checkpoint (none kept covered the events).
    signed_checkpoint: bool,
    keyid: String,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.target.resolve(cx)?;
    if let Some(file) = a.bundle {
        return write_bundle(cx, home, node, file, &a.withhold);
    }
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

fn write_bundle(
    cx: &Context,
    home: crate::home::Home,
    node: crate::ledger::query::Node,
    file: PathBuf,
    withhold: &[String],
) -> Result<Output> {
    let (key, _) = tlog::signer(&home)?;
    let plan = Plan::of(&home, node, withhold)?;
    let (checkpoint, signed) = match tlog::covering(&home.ledger, plan.needs())? {
        Some(c) => (c, false),
        None => (tlog::sign_head(&cx.open(Mode::ReadWrite)?)?, true),
    };
    let (tar, manifest) = bundle::write::bundle(&home, &plan, &checkpoint, &key)?;
    super::attest::write_atomically(&file, &tar)?;
    let out = Bundled {
        file,
        subject: manifest.subject,
        bytes: tar.len() as u64,
        members: manifest.files.iter().filter(|m| !m.withheld).count(),
        withheld: manifest
            .files
            .iter()
            .filter(|m| m.withheld)
            .map(|m| m.path.clone())
            .collect(),
        checkpoint_size: checkpoint.size,
        signed_checkpoint: signed,
        keyid: manifest.log.keyid,
    };
    Ok(Output::doc(out, |w, o| {
        if o.signed_checkpoint {
            writeln!(
                w,
                "signed a checkpoint of the log at size {}",
                o.checkpoint_size
            )?;
        }
        writeln!(
            w,
            "wrote the bundle of {} to {} ({} bytes, {} members, proofs against the checkpoint of size {}, key {})",
            o.subject,
            o.file.display(),
            o.bytes,
            o.members,
            o.checkpoint_size,
            &o.keyid[..16]
        )?;
        for p in &o.withheld {
            writeln!(w, "  withheld (digest kept): {p}")?;
        }
        writeln!(
            w,
            "check it anywhere: cto-ledger verify-bundle {} --key PUB.pem",
            o.file.display()
        )
    }))
}
