//! Recording a finished run: `report.json` completed with the digest of every evidence
//! file, the whole folder stored as one tree (each file read and hashed exactly once),
//! and the `run` event linking it to its provider, model and config.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{Run, Stage2Out};
use crate::error::Result;
use crate::home::Home;
use crate::id::{ObjectId, ObjectMeta};
use crate::ledger::events::{ArtifactRec, Body, RunRec};
use crate::ledger::now;
use crate::report::{self, Evidence, Report};
use crate::state::RunStatus;
use crate::store::tree::{self, Entry, ObjKind};

const REPORT: &str = "report.json";
const CONFIG: &str = "backend/case-data/config.json";
const WORKSPACE: &str = "workspace";
/// Under `backend/`: the Case data folder, which the provider writes.
const CASE_DATA: &str = "case-data";
/// The parts of a run folder a provider (or the tests) could write: each is stored on
/// its own, so one that cannot be read (too deep, vanished) is named in the report and
/// the rest of the run is recorded all the same.
const PARTS: [&str; 5] = ["backend", "home", "tmp", "judge", WORKSPACE];

/// A folder of the run stored before the rest (the workspace, when the judge stored
/// it): its tree, the objects that made it, and each file's digests by path.
pub(super) struct StoredFolder {
    pub root: ObjectMeta,
    pub objects: Vec<(ObjectMeta, ObjKind)>,
    pub files: Vec<(std::path::PathBuf, ObjectMeta)>,
}

impl Run<'_> {
    /// Finalises `report.json`, stores the run folder and records the run.
    pub(super) fn finish(&mut self) -> Result<Stage2Out> {
        if self.report.status == RunStatus::Started {
            self.report.status = RunStatus::Error;
            self.report
                .reason
                .get_or_insert_with(|| "the run ended without a verdict".into());
        }
        self.report.finished = Some(now());
        self.report.duration_seconds =
            Some((self.started_at.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        let (seq, artifacts) = record(
            self.home,
            &self.dir,
            &mut self.report,
            &self.evidence,
            self.stored_workspace.as_ref(),
        )?;
        Ok(Stage2Out {
            report: self.report.clone(),
            run_dir: self.dir.clone(),
            seq,
            artifacts,
        })
    }
}

/// The evidence files of a stored run folder, in the order a walk sorted by name meets
/// them: everything but `report.json`, its temp files and `.git` internals (those are in
/// the tree object).
fn evidence<'a>(dir: &Path, files: impl Iterator<Item = (&'a Path, ObjectMeta)>) -> Vec<Evidence> {
    let mut out: Vec<(Vec<Vec<u8>>, Evidence)> = files
        .filter_map(|(p, m)| {
            let rel = p.strip_prefix(dir).ok()?;
            let parts: Vec<Vec<u8>> = rel.iter().map(|c| c.as_bytes().to_vec()).collect();
            // The workspace's own repository is in the tree object; a `.git` anywhere
            // else is what someone put there, and listed like everything else.
            let workspace_git = parts.len() > 1 && parts[0] == b"workspace" && parts[1] == b".git";
            if workspace_git || parts[0].starts_with(b".report-") {
                return None;
            }
            Some((
                parts,
                Evidence {
                    path: crate::paths::escaped(rel),
                    sha256: m.sha256,
                    blake3: m.id,
                    size: m.size,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, e)| e).collect()
}

/// The run folder stored: every part, each file read once; those that could not be
/// stored are left out with the reason.
struct Stored {
    entries: Vec<Entry>,
    files: Vec<(std::path::PathBuf, ObjectMeta)>,
    objects: Vec<(ObjectMeta, ObjKind)>,
    rest: tree::OpenFolder,
}

/// Stores `dir` but its report, reusing `workspace` when the judge stored it already.
fn store_parts(
    home: &Home,
    dir: &Path,
    r: &mut Report,
    workspace: Option<&StoredFolder>,
) -> Result<Stored> {
    let mut leave_out = vec![REPORT];
    leave_out.extend(PARTS);
    // What only the harness writes: read as a whole (a failure here is the harness's).
    let rest = tree::ingest_open(&home.store, dir, &leave_out)?;
    let mut st = Stored {
        entries: Vec::new(),
        files: rest.files().map(|(p, m)| (p.to_path_buf(), m)).collect(),
        objects: Vec::new(),
        rest,
    };
    for part in PARTS {
        let name = part.as_bytes().to_vec();
        if let (WORKSPACE, Some(w)) = (part, workspace) {
            st.entries.push(Entry::dir(name, w.root));
            st.files.extend(w.files.iter().cloned());
            st.objects.extend(w.objects.iter().copied());
            continue;
        }
        let p = dir.join(part);
        if !p.is_dir() {
            continue;
        }
        make_readable(&p);
        // The Case data folder the provider writes is stored apart from the harness's
        // own files beside it, so nothing left there can take those out of the record.
        let nested: &[&str] = if part == "backend" { &[CASE_DATA] } else { &[] };
        let mut extra = Vec::new();
        for n in nested {
            let q = p.join(n);
            if !q.is_dir() {
                continue;
            }
            match tree::ingest_open(&home.store, &q, &[]) {
                Ok(f) => extra.push(Entry::dir(
                    n.as_bytes().to_vec(),
                    st.keep(home, f, Vec::new())?,
                )),
                Err(e) => r.unrecorded.push(crate::report::Unrecorded {
                    path: format!("{part}/{n}"),
                    error: e.to_string(),
                }),
            }
        }
        match tree::ingest_open(&home.store, &p, nested) {
            Ok(f) => {
                let root = st.keep(home, f, extra)?;
                st.entries.push(Entry::dir(name, root));
            }
            Err(e) => r.unrecorded.push(crate::report::Unrecorded {
                path: part.into(),
                error: e.to_string(),
            }),
        }
    }
    Ok(st)
}

impl Stored {
    /// Seals a folder stored on its own (with `extra` entries at its root), keeping its
    /// files and objects; its tree.
    fn keep(&mut self, home: &Home, f: tree::OpenFolder, extra: Vec<Entry>) -> Result<ObjectMeta> {
        self.files
            .extend(f.files().map(|(p, m)| (p.to_path_buf(), m)));
        let ing = f.seal(&home.store, extra)?;
        self.objects.extend(ing.objects);
        Ok(ing.root)
    }
}

/// Gives the owner read (and, for folders, search) permission wherever a provider took
/// it away, so that what it left can be read and recorded. Links are not followed.
pub(super) fn make_readable(dir: &Path) {
    grant_owner(dir, 0o500, 0o400);
}

/// Gives the owner write permission on every folder as well, so that what a provider
/// left can be removed. Links are not followed.
pub(super) fn make_removable(dir: &Path) {
    grant_owner(dir, 0o700, 0o400);
}

/// Adds `dirs` to every folder's mode and `files` to every file's, under `dir`.
fn grant_owner(dir: &Path, dirs: u32, files: u32) {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        let Ok(m) = e.metadata() else { continue };
        let want = if m.is_dir() {
            dirs
        } else if m.is_file() {
            files
        } else {
            continue;
        };
        let mode = m.permissions().mode();
        if mode & want != want {
            let _ =
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode | want));
        }
    }
}

/// Completes `report.json`, stores the run folder and records the run, linked to what
/// its report names and to `extra` (objects outside the folder: the provider, a script,
/// the trees the judge composed). A workspace stored already is not read again. Nothing
/// is written to the folder before it has been read: a folder that cannot be stored
/// keeps the report it had.
pub(super) fn record(
    home: &mut Home,
    dir: &Path,
    r: &mut Report,
    extra: &[(ObjectMeta, ObjKind)],
    workspace: Option<&StoredFolder>,
) -> Result<(u64, usize)> {
    let st = store_parts(home, dir, r, workspace)?;
    r.evidence = evidence(dir, st.files.iter().map(|(p, m)| (p.as_path(), *m)));
    // The attempt's registration, when its provider was started (also for a run that
    // `recover` records for a harness that was killed).
    let start = home.ledger.run_start_digest(&r.run_id)?;
    report::write(dir, r)?;
    let report_meta = home.store.put_file(&dir.join(REPORT))?;
    let mut entries = vec![Entry::file(REPORT.as_bytes().to_vec(), report_meta, false)];
    entries.extend(st.entries);
    let ing = st.rest.seal(&home.store, entries)?;
    let of = |path: &str| -> Option<ObjectId> {
        r.evidence.iter().find(|e| e.path == path).map(|e| e.blake3)
    };
    let mut artifacts: Vec<ArtifactRec> = r
        .evidence
        .iter()
        .map(|e| ArtifactRec {
            path: e.path.clone(),
            object: e.blake3,
        })
        .collect();
    artifacts.push(ArtifactRec {
        path: REPORT.into(),
        object: report_meta.id,
    });
    let mut all = ing.objects.clone();
    all.push((report_meta, ObjKind::Blob));
    // The harness's own copy of config.json, as written before the provider started (a
    // harness killed before its writes were durable may have lost it: then none); a
    // report from before there was one names the file in the folder, which the
    // provider could write.
    let config = match &r.config {
        Some(c) if home.store.has_fresh(&c.blake3)? => {
            let m = ObjectMeta {
                id: c.blake3,
                sha256: c.sha256,
                size: c.size,
            };
            all.push((m, ObjKind::Blob));
            Some(c.blake3)
        }
        Some(_) => None,
        None => of(CONFIG),
    };
    all.extend(st.objects);
    all.extend(extra.iter().copied());
    let policies = decision_inputs(home, &r.policies, &mut all)?;
    // Registered by a `run_start` (the journal's word, not the report's): started.
    let started = !r.argv.is_empty() || start.is_some();
    let rec = RunRec {
        id: r.run_id.clone(),
        run_kind: r.kind.clone(),
        fixture: r.fixture.clone(),
        lane: r.lane,
        status: r.status,
        verdict: r.verdict,
        provider_started: started,
        provider_path: r.provider.path_given.clone(),
        provider_object: r.provider.blake3,
        provider_admission: r.provider.admission.clone(),
        model: r
            .model
            .as_ref()
            .map(|m| format!("{}/{}", m.provider, m.model)),
        model_admission: r.model.as_ref().and_then(|m| m.admission.clone()),
        config_object: config,
        report_object: Some(report_meta.id),
        tree_object: ing.root.id,
        run_dir: dir.display().to_string(),
        started: r.started.clone(),
        finished: r.finished.clone().unwrap_or_default(),
        sandbox: r.sandbox.as_ref().filter(|_| started).map(|s| s.summary()),
        start,
        policies,
        artifacts,
        objects: crate::source::new_objects(home, &all)?,
    };
    let n = rec.artifacts.len();
    let ev = home.commit(vec![Body::Run(rec)])?;
    Ok((ev[0].seq, n))
}

/// The run's policy decisions as recorded, each naming its stored input document among
/// the run's objects. The input is re-read and re-hashed when the run did not list it
/// (a run `recover` finishes); a decision whose input is not in the store, or is not
/// what the decision says it was, is recorded without it.
fn decision_inputs(
    home: &Home,
    decided: &[crate::ledger::events::PolicyDecisionRec],
    all: &mut Vec<(ObjectMeta, ObjKind)>,
) -> Result<Vec<crate::ledger::events::PolicyDecisionRec>> {
    let mut out = decided.to_vec();
    for d in &mut out {
        let Some(id) = d.input_object else { continue };
        if all.iter().any(|(m, _)| m.id == id) {
            continue;
        }
        let meta = match home.store.has_fresh(&id)? {
            true => Some(crate::store::hash_bytes(&home.store.get_verified(&id)?)),
            false => None,
        };
        match meta.filter(|m| m.sha256 == d.input) {
            Some(m) => all.push((m, ObjKind::Blob)),
            None => d.input_object = None,
        }
    }
    Ok(out)
}
