//! The run's side of a bundle: the `run` event against its registration and the
//! admissions it names, the report against the run, every evidence file against the
//! report, and the diff against the recorded trees.

use std::collections::{BTreeMap, BTreeSet};

use super::{claims, proven, Checker, Proved};
use crate::bundle::changes::{self, Carried};
use crate::bundle::*;
use crate::id::ObjectId;
use crate::ledger::events::{Body, RunRec};
use crate::report::Report;
use crate::store::hash_bytes;

pub(super) fn check_run(c: &mut Checker, id: &str, events: &BTreeMap<String, Proved>) {
    let piece = proof_json(RUN);
    let Some(end) = proven(c, events, RUN) else {
        return;
    };
    let Body::Run(run) = &end.body else {
        return c.fail(&piece, format!("event {} is not a run", end.seq));
    };
    if run.id.to_string() != id {
        c.fail(
            &piece,
            format!("it proves run {}, the bundle is of run {id}", run.id),
        );
    }
    c.out.proven.ended_at = Some(end.seq - 1);
    c.out.proven.verdict = Some(run.verdict.as_str().into());
    check_registration(c, run, end.seq, events);
    let provider_sha256 = check_run_admissions(c, run, events);
    let report = check_report(c, run);
    claims::check_attestations(c, Some((run, report.as_ref())), provider_sha256);
}

/// The `run_start` the run names: its digest, its place before the run, and the same
/// fixture, provider and model.
fn check_registration(c: &mut Checker, run: &RunRec, end: u64, events: &BTreeMap<String, Proved>) {
    let piece = proof_json(RUN_START);
    let Some(digest) = &run.start else {
        if run.provider_started {
            c.fail(&proof_json(RUN), "its provider started, yet it names no registration (run_start): the attempt was not pre-registered");
        }
        return;
    };
    let Some(start) = proven(c, events, RUN_START) else {
        return;
    };
    let Body::RunStart(s) = &start.body else {
        return c.fail(&piece, format!("event {} is not a run_start", start.seq));
    };
    if s.digest() != *digest {
        c.fail(
            &piece,
            format!(
                "the run names registration {digest}, this one is {}",
                s.digest()
            ),
        );
    }
    if start.seq >= end {
        c.fail(
            &piece,
            format!(
                "the registration (event {}) does not precede the run (event {end})",
                start.seq
            ),
        );
    }
    let same = [
        ("run id", s.id.to_string(), run.id.to_string()),
        ("fixture", s.fixture.clone(), run.fixture.clone()),
        (
            "provider",
            s.provider_object.to_string(),
            opt(&run.provider_object),
        ),
        (
            "provider admission",
            opt(&s.provider_admission),
            opt(&run.provider_admission),
        ),
        ("model", opt(&s.model), opt(&run.model)),
        (
            "model admission",
            opt(&s.model_admission),
            opt(&run.model_admission),
        ),
    ];
    for (what, registered, ran) in same {
        if registered != ran {
            c.fail(
                &piece,
                format!("it registered {what} {registered:?}, the run has {ran:?}"),
            );
        }
    }
    c.out.proven.registered_at = Some(start.seq - 1);
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

/// The provider's and the model's admissions, as the run names them; the provider's
/// SHA-256.
fn check_run_admissions(
    c: &mut Checker,
    run: &RunRec,
    events: &BTreeMap<String, Proved>,
) -> Option<String> {
    let mut sha256 = run
        .objects
        .iter()
        .find(|o| Some(o.id) == run.provider_object)
        .map(|o| o.sha256.to_string());
    if let Some(adm) = &run.provider_admission {
        let piece = proof_json(PROVIDER_ADMISSION);
        if let Some(e) = proven(c, events, PROVIDER_ADMISSION) {
            match &e.body {
                Body::Admission(a) if a.id == *adm && Some(a.object) == run.provider_object => {
                    sha256 = Some(a.sha256.to_string());
                    let p = &mut c.out.proven;
                    p.admission = Some(a.id.to_string());
                    p.provider_name = Some(a.name.clone());
                    p.source_commit = a.commit.as_ref().map(|x| x.to_string());
                    p.admitted_at = Some(e.seq - 1);
                }
                _ => c.fail(
                    &piece,
                    format!(
                        "event {} is not admission {adm} of the run's provider",
                        e.seq
                    ),
                ),
            }
        }
    }
    if let Some(m) = &run.model_admission {
        let piece = proof_json(MODEL_ADMISSION);
        if let Some(e) = proven(c, events, MODEL_ADMISSION) {
            match &e.body {
                Body::ModelAdmission(a) if a.id == *m => {
                    c.out.proven.model_admission = Some(a.id.to_string());
                }
                _ => c.fail(
                    &piece,
                    format!("event {} is not model admission {m}", e.seq),
                ),
            }
        }
    }
    c.out.proven.model = run.model.clone();
    c.out.proven.provider_sha256 = sha256.clone();
    sha256
}

/// The report the run names, and every file the report names (by digest, present or
/// withheld), and the diff of the recorded trees.
fn check_report(c: &mut Checker, run: &RunRec) -> Option<Report> {
    let Some(object) = run.report_object else {
        // No report: nothing can bind evidence, a diff or objects to the run.
        let unbound: Vec<String> = c
            .manifest
            .values()
            .filter(|m| {
                matches!(
                    m.role,
                    Role::Report | Role::Evidence | Role::Diff | Role::Object
                )
            })
            .map(|m| m.path.clone())
            .collect();
        for p in unbound {
            c.fail(
                &p,
                "the run recorded no report, so nothing binds this member to it",
            );
        }
        return None;
    };
    let bytes = c.need(REPORT)?;
    if hash_bytes(&bytes).id != object {
        c.fail(
            REPORT,
            format!("it is not the report the run recorded ({object})"),
        );
        return None;
    }
    let report: Report = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            c.fail(REPORT, format!("not a Stage 2 report: {e}"));
            return None;
        }
    };
    let mut named = BTreeSet::new();
    for e in report.evidence.iter().chain(report.config.as_ref()) {
        let path = evidence_member(&e.path);
        named.insert(path.clone());
        match (c.good.get(&path), c.manifest.get(&path)) {
            (Some(b), _) => {
                if hash_bytes(b).id != e.blake3 {
                    c.fail(
                        &path,
                        format!("not the file the report names ({})", e.blake3),
                    );
                }
            }
            (None, Some(m)) if m.withheld => {
                if m.sha256 != e.sha256.to_string() {
                    c.fail(
                        &path,
                        format!(
                            "withheld with digest {}, the report names {}",
                            m.sha256, e.sha256
                        ),
                    );
                }
            }
            (None, Some(_)) => {} // altered: already failed
            (None, None) => c.fail(&path, "missing from the bundle"),
        }
    }
    let unnamed: Vec<String> = c
        .manifest
        .values()
        .filter(|m| m.role == Role::Evidence && !named.contains(&m.path))
        .map(|m| m.path.clone())
        .collect();
    for path in unnamed {
        c.fail(&path, "the report names no such evidence");
    }
    if let Some(j) = &report.judge {
        c.out.proven.tests_tree = j.tests_tree.map(|t| t.to_string());
    }
    let trees = report
        .judge
        .as_ref()
        .and_then(|j| Some((j.fixture_tree, j.workspace_tree?)));
    check_diff(c, trees, &report);
    if let Some(sb) = &report.sandbox {
        for r in &sb.rules {
            let list = if r.enforced {
                &mut c.out.proven.sandbox_enforced
            } else {
                &mut c.out.proven.sandbox_not_enforced
            };
            list.push(r.rule.clone());
        }
    }
    let p = &mut c.out.proven;
    p.reason = report.reason.clone();
    p.source_url = report.provider.source_url.clone();
    if report.run_id != run.id || report.verdict != run.verdict {
        c.fail(REPORT, "its run id or verdict is not the run's");
    }
    Some(report)
}

/// The diff, recomputed from the objects the bundle carries; every object it carries
/// must be one the diff reads.
fn check_diff(c: &mut Checker, trees: Option<(ObjectId, ObjectId)>, report: &Report) {
    let objects: Vec<String> = c
        .manifest
        .values()
        .filter(|m| m.role == Role::Object)
        .map(|m| m.path.clone())
        .collect();
    let carried = Carried {
        members: &c.good,
        used: Default::default(),
    };
    let listed = c.manifest.get(DIFF).map(|m| m.withheld);
    let result = match (trees, listed, c.good.get(DIFF)) {
        (Some(_), None, _) => Some(Err(
            "missing from the bundle, though the report records the trees it is the diff of"
                .to_string(),
        )),
        (None, None, _) | (_, Some(true), _) => None,
        (None, Some(false), _) => Some(Err(
            "the report records no workspace tree to diff".to_string()
        )),
        (Some(_), Some(false), None) => None, // altered: already failed
        (Some((fixture, workspace)), Some(false), Some(shown)) => Some(
            changes::diff(&carried, &fixture, &workspace, &report.workspace_changes).and_then(
                |d| {
                    (d.as_bytes() == shown.as_slice())
                        .then_some(())
                        .ok_or_else(|| {
                            "it is not the diff of the recorded fixture and workspace trees"
                                .to_string()
                        })
                },
            ),
        ),
    };
    let used = carried.used.into_inner();
    if let Some(Err(e)) = result {
        c.fail(DIFF, e);
    }
    for o in objects.iter().filter(|o| !used.contains(*o)) {
        c.fail(o, "not an object the diff is recomputed from");
    }
}

pub(super) fn check_admission(c: &mut Checker, id: &str, events: &BTreeMap<String, Proved>) {
    let piece = proof_json(ADMISSION);
    let Some(e) = proven(c, events, ADMISSION) else {
        return;
    };
    let Body::Admission(a) = &e.body else {
        return c.fail(&piece, format!("event {} is not an admission", e.seq));
    };
    if a.id.to_string() != id {
        c.fail(
            &piece,
            format!("it proves admission {}, the bundle is of {id}", a.id),
        );
    }
    let p = &mut c.out.proven;
    p.admission = Some(a.id.to_string());
    p.provider_name = Some(a.name.clone());
    p.provider_sha256 = Some(a.sha256.to_string());
    p.source_commit = a.commit.as_ref().map(|x| x.to_string());
    p.admitted_at = Some(e.seq - 1);
    claims::check_attestations(c, None, Some(a.sha256.to_string()));
}
