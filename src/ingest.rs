//! `ingest PATH...`: files and directories into the store (directories as tree
//! objects), recorded in one `ingest` event.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{ObjectId, Sha256Digest};
use crate::ledger::events::{Body, IngestItem, IngestRec, ObjRec};
use crate::paths::{abs, lossy};
use crate::source::new_objects;
use crate::store::tree::{self, ObjKind};

#[derive(Serialize)]
pub(crate) struct IngestedItem {
    pub path: String,
    pub kind: ObjKind,
    pub object: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub files: u64,
    /// Files not re-read because the directory cache showed them unchanged.
    pub unchanged: u64,
}

#[derive(Serialize)]
pub(crate) struct IngestOut {
    pub items: Vec<IngestedItem>,
    pub new_objects: usize,
    pub seq: u64,
}

/// What the user says the ingested paths are.
pub(crate) struct Labels<'a> {
    /// `--kind`: source, binary, config, run-artifact, ...
    pub kind: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Refuses a path that does not exist, before anything is opened or stored.
pub(crate) fn check(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        if fs::symlink_metadata(p).is_err() {
            return Err(Error::bad_input(
                format!("{} does not exist", p.display()),
                "check the path; nothing was stored",
            ));
        }
    }
    Ok(())
}

/// Stores files and directories (as trees) and records them in one event; files the
/// directory cache shows unchanged are not read again.
pub(crate) fn ingest(
    home: &mut Home,
    paths: &[PathBuf],
    labels: &Labels,
    progress: &ProgressBar,
) -> Result<IngestOut> {
    check(paths)?;
    let (mut items, mut recs, mut objects) = (Vec::new(), Vec::new(), Vec::new());
    let mut dir_rows = Vec::new();
    for p in paths {
        let ap = abs(p);
        let ledger = &home.ledger;
        let mut ing = tree::ingest_path_cached(&home.store, &ap, progress, || {
            ledger
                .load_dir_cache(ap.as_os_str().as_encoded_bytes())
                .map(Some)
        })?;
        dir_rows.append(&mut ing.dir_rows);
        objects.extend(new_objects(home, &ing.objects)?);
        recs.push(IngestItem {
            path: crate::paths::escaped(&ap),
            object: ing.root.id,
            kind: ing.root_kind,
            artifact_kind: labels.kind.map(String::from),
            label: labels.label.map(String::from),
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
    home.ledger.save_dir_cache(&dir_rows)?;
    Ok(IngestOut {
        items,
        new_objects,
        seq: ev[0].seq,
    })
}
