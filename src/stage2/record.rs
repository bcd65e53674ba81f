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
use crate::report::{self, Change, Evidence, Report};
use crate::state::RunStatus;
use crate::store::tree::{self, Entry, ObjKind};

const REPORT: &str = "report.json";
const CONFIG: &str = "backend/case-data/config.json";

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
        let (seq, artifacts) = record(self.home, &self.dir, &mut self.report, &self.evidence)?;
        Ok(Stage2Out {
            report: self.report.clone(),
            run_dir: self.dir.clone(),
            seq,
            artifacts,
        })
    }
}

/// The workspace's changes (from its git state, for now).
fn workspace_changes(dir: &Path) -> Vec<Change> {
    match crate::git::state(&dir.join("workspace")) {
        Ok(st) => st
            .changes
            .iter()
            .map(|(p, s)| Change {
                path: String::from_utf8_lossy(p).into_owned(),
                status: s.to_string(),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The evidence files of a stored run folder, in the order a walk sorted by name meets
/// them: everything but `report.json`, its temp files and `.git` internals (those are in
/// the tree object).
fn evidence(dir: &Path, folder: &tree::OpenFolder) -> Vec<Evidence> {
    let mut out: Vec<(Vec<Vec<u8>>, Evidence)> = folder
        .files()
        .filter_map(|(p, m)| {
            let rel = p.strip_prefix(dir).ok()?;
            let parts: Vec<Vec<u8>> = rel.iter().map(|c| c.as_bytes().to_vec()).collect();
            if parts.iter().any(|c| c == b".git") || parts[0].starts_with(b".report-") {
                return None;
            }
            Some((
                parts,
                Evidence {
                    path: rel.to_string_lossy().into_owned(),
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

/// Completes `report.json`, stores the run folder and records the run, linked to what
/// its report names and to `extra` (objects outside the folder: the provider, a script).
pub(super) fn record(
    home: &mut Home,
    dir: &Path,
    r: &mut Report,
    extra: &[(ObjectMeta, ObjKind)],
) -> Result<(u64, usize)> {
    r.workspace_changes = workspace_changes(dir);
    let folder = tree::ingest_open(&home.store, dir, &[REPORT])?;
    r.evidence = evidence(dir, &folder);
    report::write(dir, r)?;
    let report_meta = home.store.put_file(&dir.join(REPORT))?;
    let entry = Entry::file(REPORT.as_bytes().to_vec(), report_meta, false);
    let ing = folder.seal(&home.store, vec![entry])?;
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
    all.extend(extra.iter().copied());
    let started = !r.argv.is_empty();
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
        config_object: of(CONFIG),
        report_object: Some(report_meta.id),
        tree_object: ing.root.id,
        run_dir: dir.display().to_string(),
        started: r.started.clone(),
        finished: r.finished.clone().unwrap_or_default(),
        sandbox: r.sandbox.as_ref().filter(|_| started).map(|s| s.summary()),
        artifacts,
        objects: crate::source::new_objects(home, &all)?,
    };
    let n = rec.artifacts.len();
    let ev = home.commit(vec![Body::Run(rec)])?;
    Ok((ev[0].seq, n))
}
