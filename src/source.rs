//! Recording git clones: a snapshot of the tracked files as a tree, the contents of
//! every changed path, and the source event that names only objects the ledger lacks.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use indicatif::ProgressBar;

use crate::error::Result;
use crate::git::{self, CloneState};
use crate::home::Home;
use crate::id::{ObjectMeta, SourceId};
use crate::ledger::events::{Body, ChangeRec, IndexFlagRec, ObjRec, SourceRec};
use crate::paths::lossy;
use crate::state::ChangeStatus;
use crate::store::tree::{self, ObjKind};
use crate::store::Store;

/// A clone as recorded: the source record, the objects its snapshot consists of, and
/// the clone's state.
pub(crate) struct Snapshot {
    pub(crate) rec: SourceRec,
    pub(crate) objects: Vec<(ObjectMeta, ObjKind)>,
    pub(crate) state: CloneState,
}

/// Snapshots a clone: its tracked files as a tree, and the contents of changed paths.
pub(crate) fn snapshot(store: &Store, dir: &Path, progress: &ProgressBar) -> Result<Snapshot> {
    let st = git::state(dir)?;
    let snap = tree::ingest_listed(store, &st.workdir, &st.tracked, progress)?;
    let mut objects = snap.objects.clone();
    let mut changes = Vec::new();
    for (path, status) in &st.changes {
        let on_disk = st.workdir.join(OsStr::from_bytes(path));
        let has_contents = !matches!(status, ChangeStatus::Untracked | ChangeStatus::Deleted)
            && fs::symlink_metadata(&on_disk).is_ok_and(|m| m.is_file());
        let object = if has_contents {
            let m = store.put_file(&on_disk)?;
            objects.push((m, ObjKind::Blob));
            Some(m.id)
        } else {
            None
        };
        changes.push(ChangeRec {
            path: String::from_utf8_lossy(path).into_owned(),
            status: *status,
            object,
        });
    }
    let mut rec = SourceRec {
        id: SourceId::from_hex(""),
        path: lossy(&st.workdir),
        url: st.url.clone(),
        commit: st.commit.clone(),
        branch: st.branch.clone(),
        tree: st.tree.clone(),
        snapshot: snap.root.id,
        changes,
        index_flags: st
            .flagged
            .iter()
            .map(|(p, flag)| IndexFlagRec {
                path: String::from_utf8_lossy(p).into_owned(),
                flag: flag.to_string(),
            })
            .collect(),
        objects: Vec::new(),
    };
    // The same clone in the same state is the same source: the id is its content hash,
    // taken over the record with an empty id.
    let mut blank = serde_json::to_value(&rec).expect("serialises");
    blank["id"] = serde_json::Value::String(String::new());
    let digest = blake3::hash(&serde_jcs::to_vec(&blank).expect("serialises"));
    rec.id = SourceId::from_hex(&digest.to_hex()[..16]);
    Ok(Snapshot {
        rec,
        objects,
        state: st,
    })
}

/// Records of the objects the ledger does not know yet, each once.
pub(crate) fn new_objects(home: &Home, objects: &[(ObjectMeta, ObjKind)]) -> Result<Vec<ObjRec>> {
    let ids: Vec<_> = objects.iter().map(|(m, _)| m.id).collect();
    let known = home.ledger.has_objects(&ids)?;
    let mut seen = BTreeSet::new();
    Ok(objects
        .iter()
        .zip(known)
        .filter(|(_, k)| !k)
        .filter(|((m, _), _)| seen.insert(m.id))
        .map(|((m, k), _)| ObjRec::new(*m, *k))
        .collect())
}

/// The source event to commit (with only objects the ledger lacks), or none if recorded.
pub(crate) fn source_body(
    home: &Home,
    mut rec: SourceRec,
    objects: &[(ObjectMeta, ObjKind)],
) -> Result<Option<Body>> {
    if home.ledger.has_source(&rec.id)? {
        return Ok(None);
    }
    rec.objects = new_objects(home, objects)?;
    Ok(Some(Body::Source(rec)))
}

/// `source add DIR`: records the clone unless this exact state is recorded already;
/// returns its record and whether it was new.
pub(crate) fn add(
    home: &mut Home,
    dir: &Path,
    progress: &ProgressBar,
) -> Result<(SourceRec, bool)> {
    let snap = snapshot(&home.store, dir, progress)?;
    let body = source_body(home, snap.rec.clone(), &snap.objects)?;
    let recorded = body.is_some();
    if let Some(b) = body {
        home.commit(vec![b])?;
    }
    Ok((snap.rec, recorded))
}
