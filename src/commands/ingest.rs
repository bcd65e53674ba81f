//! `cto-ledger ingest PATH...`: store files and directories (as tree objects) and record them.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::{Error, Result};
use crate::id::{ObjectId, Sha256Digest};
use crate::ledger::events::{Body, IngestItem, IngestRec, ObjRec};
use crate::ledger::Mode;
use crate::paths::{abs, lossy};
use crate::source::new_objects;
use crate::store::tree::{self, ObjKind};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// What the artifact is (source, binary, config, run-artifact, ...)
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    label: Option<String>,
}

#[derive(Serialize)]
struct IngestedItem {
    path: String,
    kind: ObjKind,
    object: ObjectId,
    sha256: Sha256Digest,
    size: u64,
    files: u64,
    /// Files not re-read because the stat cache showed them unchanged.
    unchanged: u64,
}

#[derive(Serialize)]
pub(crate) struct IngestOut {
    items: Vec<IngestedItem>,
    new_objects: usize,
    seq: u64,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    // Check every input before storing anything.
    for p in &a.paths {
        if fs::symlink_metadata(p).is_err() {
            return Err(Error::bad_input(
                format!("{} does not exist", p.display()),
                "check the path; nothing was stored",
            ));
        }
    }
    let mut home = cx.open(Mode::ReadWrite)?;
    let progress = cx.progress();
    let (mut items, mut recs, mut objects) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stat_rows, mut tree_rows) = (Vec::new(), Vec::new());
    for p in &a.paths {
        let ap = abs(p);
        let ledger = &home.ledger;
        let mut ing = tree::ingest_path_cached(&home.store, &ap, &progress, || {
            ledger
                .load_stat_cache(ap.as_os_str().as_encoded_bytes())
                .map(Some)
        })?;
        stat_rows.append(&mut ing.stat_rows);
        tree_rows.append(&mut ing.tree_rows);
        objects.extend(new_objects(&home, &ing.objects)?);
        recs.push(IngestItem {
            path: lossy(&ap),
            object: ing.root.id,
            kind: ing.root_kind,
            artifact_kind: a.kind.clone(),
            label: a.label.clone(),
        });
        items.push(IngestedItem {
            path: lossy(p),
            kind: ing.root_kind,
            object: ing.root.id,
            sha256: ing.root.sha256,
            size: ing.root.size,
            files: ing.files,
            unchanged: ing.cache_hits,
        });
    }
    let mut seen = BTreeSet::new();
    objects.retain(|o: &ObjRec| seen.insert(o.id));
    let new_objects = objects.len();
    let ev = home.commit(vec![Body::Ingest(IngestRec {
        items: recs,
        objects,
    })])?;
    // Only now that the journal names these objects may the cache vouch for them.
    home.ledger.save_stat_cache(&stat_rows, &tree_rows)?;
    progress.finish_and_clear();
    let out = IngestOut {
        items,
        new_objects,
        seq: ev[0].seq,
    };
    Ok(Output::doc(out, text))
}

fn text(w: &mut dyn Write, r: &IngestOut) -> R {
    for i in &r.items {
        let files = if i.files > 1 {
            format!(", {} files", i.files)
        } else {
            String::new()
        };
        writeln!(
            w,
            "{} {}  {}  {} ({} bytes{files})",
            i.kind.as_str(),
            i.object,
            i.sha256,
            i.path,
            i.size,
        )?;
    }
    writeln!(
        w,
        "recorded as event {} ({} new objects)",
        r.seq, r.new_objects
    )
}
