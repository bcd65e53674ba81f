//! The input documents policies see (schema/policy-input.schema.json): for an
//! admission, the candidate file and its provenance graph (source, build, every
//! reproducibility check, the signed checkpoints that cover the build and their keys);
//! for a run, the provider's admission with that same graph, the model and its
//! admission, the fixture, the sandbox rules the kernel will enforce and the limits.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::id::{AdmissionId, ObjectId};
use crate::ledger::events::{AdmissionRec, Body, SourceRec};
use crate::ledger::query::Node;
use crate::ledger::Ledger;
use crate::report::Report;

/// What every input document says it is.
pub(crate) const SCHEMA: &str = "https://cto-ledger.local/schema/policy-input.schema.json";

/// The input for admitting `a` from the clone `source` as recorded (none: the fake
/// shipped with cto-ledger).
pub(crate) fn admission(l: &Ledger, a: &AdmissionRec, source: Option<&SourceRec>) -> Result<Value> {
    let mut doc = graph(l, a, source)?;
    doc.insert("schema".into(), SCHEMA.into());
    doc.insert("kind".into(), "admission".into());
    doc.insert("keys".into(), keys(l)?.into());
    Ok(Value::Object(doc))
}

/// An admission's file and provenance: candidate, source, accepted edits, build.
fn graph(l: &Ledger, a: &AdmissionRec, source: Option<&SourceRec>) -> Result<Map<String, Value>> {
    let source = source.map(|source| {
        let changes: Vec<Value> = source
            .changes
            .iter()
            .map(|c| {
                json!({"path": c.path, "status": c.status, "tracked": c.is_tracked_change(),
                       "blake3": c.object})
            })
            .collect();
        json!({
            "url": source.url,
            "path": source.path,
            "commit": source.commit,
            "pin": a.pin,
            "branch": source.branch,
            "changes": changes,
            "index_flags": source.index_flags.iter().map(|f| json!({"path": f.path, "flag": f.flag})).collect::<Vec<_>>(),
        })
    });
    // Each accepted edit, by what accepted it: `build`, the recorded build's own edit (the
    // file as the build left it, clean when the build started); `build-over-edit`, the
    // file as the build left it, but already edited when the build started (the edit is
    // not the build's own); else `allow-modified`.
    let (by_build, dirty_before) = match &a.build {
        Some(b) => (l.build_modified(b)?, dirty_when_built(l, b)?),
        None => (Vec::new(), Vec::new()),
    };
    let allowed_modified: Vec<Value> = a
        .allowed_modified
        .iter()
        .map(|c| {
            let built = by_build
                .iter()
                .any(|m| m.path == c.path && m.new_object == c.object);
            let by = match (built, dirty_before.contains(&c.path)) {
                (true, false) => "build",
                (true, true) => "build-over-edit",
                (false, _) => "allow-modified",
            };
            json!({"path": c.path, "by": by})
        })
        .collect();
    let doc = json!({
        "candidate": {
            "name": a.name,
            "path": a.path,
            "sha256": a.sha256,
            "blake3": a.object,
            "size": a.size,
        },
        "source": source,
        "allowed_modified": allowed_modified,
        "build": match &a.build {
            Some(b) => build(l, b)?,
            None => Value::Null,
        },
    });
    match doc {
        Value::Object(m) => Ok(m),
        _ => unreachable!("a json! object"),
    }
}

/// The tracked paths that already differed from the commit when build `b` started.
fn dirty_when_built(l: &Ledger, b: &crate::id::BuildId) -> Result<Vec<String>> {
    let Some(row) = l.build(b)? else {
        return Ok(Vec::new());
    };
    Ok(l.tracked_changes(&row.source_id)?
        .into_iter()
        .map(|c| c.path)
        .collect())
}

/// The facts of a run at its `policy` gate, beyond what its report says.
pub(crate) struct RunFacts<'a> {
    pub fixture_origin: &'a str,
    pub fixture_tree: Option<ObjectId>,
    pub test_command: &'a [String],
    pub tampering: &'a str,
    pub limits: Vec<crate::ledger::events::LimitRec>,
    /// `run stage2 --check`: the run is not started.
    pub check: bool,
    /// In a `--check`, the admission the shipped fake would get on its first run.
    pub prospective: Option<Value>,
}

/// The admission the fake shipped with cto-ledger gets on its first run (as `--check`
/// shows it before): scope `fake-lane`, no source, no build, no id yet.
pub(crate) fn shipped_fake_admission(r: &Report, size: u64) -> Value {
    let p = &r.provider;
    json!({
        "id": null,
        "scope": "fake-lane",
        "revoked": false,
        "candidate": {"name": "fake-ca", "path": p.path_given, "sha256": p.sha256,
                      "blake3": p.blake3, "size": size},
        "source": null,
        "allowed_modified": [],
        "build": null,
    })
}

/// The input for starting the run `r` describes, after every other gate passed: the
/// provider (its admission's whole graph, as the ledger knows it now), the model (its
/// admission's endpoint and API, or its script), the fixture, the sandbox rules with
/// whether the kernel enforces each, the limits and the time limit.
pub(crate) fn run(l: &Ledger, r: &Report, f: &RunFacts<'_>) -> Result<Value> {
    let p = &r.provider;
    let admission = match (&p.admission, &f.prospective) {
        (Some(id), _) => admission_of(l, id)?,
        (None, Some(v)) => v.clone(),
        (None, None) => Value::Null,
    };
    let model = match &r.model {
        None => Value::Null,
        Some(m) => {
            let row = match &m.admission {
                Some(id) => l.model_admission(id)?,
                None => None,
            };
            json!({
                "provider": m.provider,
                "model": m.model,
                "admission": m.admission,
                "endpoint": m.endpoint,
                "api": row.as_ref().and_then(|a| a.api.clone()),
                "script_sha256": m.script_sha256,
            })
        }
    };
    let sandbox = match &r.sandbox {
        None => Value::Null,
        Some(s) => {
            let mut v = serde_json::to_value(s).expect("a sandbox report serialises");
            v["all_enforced"] = (s.enabled && s.rules.iter().all(|r| r.enforced)).into();
            v
        }
    };
    Ok(json!({
        "schema": SCHEMA,
        "kind": "run",
        "run": {
            "id": r.run_id,
            "lane": r.lane,
            "check": f.check,
            "timeout_seconds": r.timeout_seconds,
            "gates": r.gates.iter().map(|g| json!({"name": g.name, "passed": g.passed, "detail": g.detail})).collect::<Vec<_>>(),
        },
        "fixture": {
            "name": r.fixture,
            "origin": f.fixture_origin,
            "tree": f.fixture_tree,
            "test_command": f.test_command,
            "tampering": f.tampering,
        },
        "provider": {
            "path": p.path_given,
            "sha256": p.sha256,
            "blake3": p.blake3,
            "admission": admission,
        },
        "model": model,
        "sandbox": sandbox,
        "limits": f.limits.iter().map(|x| (x.name.clone(), Value::from(x.value))).collect::<Map<_, _>>(),
        "keys": keys(l)?,
    }))
}

/// The admission input of a recorded admission, as the ledger knows it now (later
/// checks and signatures included): what `verify --policy` evaluates.
pub(crate) fn admission_now(l: &Ledger, id: &AdmissionId) -> Result<Value> {
    let (a, source) = recorded(l, id)?;
    admission(l, &a, source.as_ref())
}

/// An admission's record and the source it names, from the journal.
fn recorded(l: &Ledger, id: &AdmissionId) -> Result<(AdmissionRec, Option<SourceRec>)> {
    let Body::Admission(a) = body_of(l, &Node::Admission(id.clone()))? else {
        return Err(missing(&format!("admission {id}")));
    };
    let source = match &a.source {
        Some(s) => match body_of(l, &Node::Source(s.clone()))? {
            Body::Source(s) => Some(s),
            _ => return Err(missing(&format!("source {s} of admission {id}"))),
        },
        None => None,
    };
    Ok((a, source))
}

/// An admission by id, with its graph as the ledger knows it now, its scope and
/// whether it is revoked.
fn admission_of(l: &Ledger, id: &AdmissionId) -> Result<Value> {
    let (a, source) = recorded(l, id)?;
    let mut doc = graph(l, &a, source.as_ref())?;
    doc.insert("id".into(), json!(a.id));
    doc.insert("scope".into(), json!(a.scope));
    doc.insert(
        "revoked".into(),
        l.revocation_of(&crate::id::Revocable::Admission(id.clone()))?
            .is_some()
            .into(),
    );
    Ok(Value::Object(doc))
}

/// The body of the event that records `node`.
fn body_of(l: &Ledger, node: &Node) -> Result<Body> {
    let Some(seq) = l.event_of(node)? else {
        return Err(missing(&node.label()));
    };
    match l.row_at(seq)? {
        Some(row) => Ok(row.decode()?.body),
        None => Err(missing(&format!("event {seq}"))),
    }
}

fn missing(what: &str) -> Error {
    Error::Integrity {
        message: format!(
            "{what} is projected but its journal event is missing; run `cto-ledger audit`"
        ),
    }
}

/// A recorded build: what ran, with which tools, what it changed, every check of it,
/// and the signed checkpoints whose log covers its event.
fn build(l: &Ledger, id: &crate::id::BuildId) -> Result<Value> {
    let Some(b) = l.build(id)? else {
        return Ok(Value::Null);
    };
    let seq = l
        .event_of(&crate::ledger::query::Node::Build(id.clone()))?
        .unwrap_or(u64::MAX);
    let modified: Vec<Value> = l
        .build_modified(id)?
        .into_iter()
        .map(|m| json!({"path": m.path, "old_blake3": m.old_object, "new_blake3": m.new_object}))
        .collect();
    let outputs: Vec<Value> = l
        .build_outputs(id)?
        .into_iter()
        .map(|o| json!({"path": o.path, "blake3": o.object, "inside_source": o.inside_source}))
        .collect();
    let checks: Vec<Value> = l
        .checks_of(id)?
        .into_iter()
        .map(|c| json!({"id": c.id, "result": c.check_result, "finished": c.finished}))
        .collect();
    let reproduced = checks.iter().any(|c| c["result"] == "reproduces");
    let signatures: Vec<Value> = l
        .checkpoints()?
        .into_iter()
        .filter(|c| c.size >= seq)
        .map(|c| json!({"keyid": c.keyid, "checkpoint_size": c.size, "time": c.time}))
        .collect();
    Ok(json!({
        "id": b.id,
        "name": b.name,
        "status": b.status,
        "commit": b.commit_id,
        "url": b.url,
        "argv": b.argv,
        "cwd": b.cwd,
        "exit_code": b.exit_code,
        "tools": b.tools.iter().map(|t| json!({"name": t.name, "path": t.path, "version": t.version, "sha256": t.sha256})).collect::<Vec<_>>(),
        "env_names": b.env.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        "modified": modified,
        "outputs": outputs,
        "checks": checks,
        "reproduced": reproduced,
        "signatures": signatures,
    }))
}

/// The ledger's signing keys, with whether each is revoked or retired.
fn keys(l: &Ledger) -> Result<Vec<Value>> {
    Ok(l.keys()?
        .into_iter()
        .map(|k| {
            json!({"keyid": k.keyid, "algorithm": k.algorithm, "revoked": k.revoked.is_some(),
                   "retired": k.replaced_by.is_some()})
        })
        .collect())
}
