//! `cto-ledger attest REF [-o FILE]`: DSSE-signed in-toto statements, one envelope per
//! line (`.intoto.jsonl`): SLSA Provenance v1 for an artifact; for `run:ID` also a
//! test-result statement and a SLSA Verification Summary v1.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::lineage::attest;
use crate::sign::dsse::Envelope;
use crate::tlog;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: super::RefArg,
    /// Write the envelopes to FILE (replaced atomically) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Serialize)]
struct Written {
    file: PathBuf,
    keyid: String,
    envelopes: Vec<String>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.target.resolve(cx)?;
    let (key, row) = tlog::signer(&home)?;
    let statements = attest::statements(&home.ledger, &home.store, &node)?;
    let mut lines = String::new();
    let mut types = Vec::new();
    for s in &statements {
        let env = Envelope::sign(&attest::payload(s), &key);
        lines.push_str(&serde_json::to_string(&env).expect("envelopes serialise"));
        lines.push('\n');
        types.push(s["predicateType"].as_str().unwrap_or_default().to_string());
    }
    let Some(file) = a.output else {
        return Ok(Output::raw(move |w| Ok(w.write_all(lines.as_bytes())?)));
    };
    write_atomically(&file, lines.as_bytes())?;
    let out = Written {
        file,
        keyid: row.keyid,
        envelopes: types,
    };
    Ok(Output::doc(out, |w, o| {
        writeln!(
            w,
            "wrote {} envelope(s) to {}, signed by key {}",
            o.envelopes.len(),
            o.file.display(),
            o.keyid
        )?;
        for t in &o.envelopes {
            writeln!(w, "  {t}")?;
        }
        Ok(())
    }))
}

/// Writes `bytes` to `path` whole or not at all.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    // Only a file is replaced: never a device, a FIFO or a folder that happens to be named.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.is_file() {
            return Err(Error::bad_input(
                format!("{} exists and is not a regular file", path.display()),
                "give the path of a new file (or of a file to replace)",
            ));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        Error::bad_input(
            format!("cannot write {}: {e}", path.display()),
            "check that its folder exists and is writable",
        )
    })?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(Error::io("write", path))?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path)(e.error))?;
    Ok(())
}
