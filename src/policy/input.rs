//! The input documents policies see (schema/policy-input.schema.json): for an
//! admission, the candidate file and its provenance graph (source, build, every
//! reproducibility check, the signed checkpoints that cover the build and their keys).

use serde_json::{json, Value};

use crate::error::Result;
use crate::ledger::events::{AdmissionRec, SourceRec};
use crate::ledger::Ledger;

/// What every input document says it is.
pub(crate) const SCHEMA: &str = "https://cto-ledger.local/schema/policy-input.schema.json";

/// The input for admitting `a` from the clone `source` as recorded.
pub(crate) fn admission(l: &Ledger, a: &AdmissionRec, source: &SourceRec) -> Result<Value> {
    let changes: Vec<Value> = source
        .changes
        .iter()
        .map(|c| {
            json!({"path": c.path, "status": c.status, "tracked": c.is_tracked_change(),
                   "blake3": c.object})
        })
        .collect();
    Ok(json!({
        "schema": SCHEMA,
        "kind": "admission",
        "candidate": {
            "name": a.name,
            "path": a.path,
            "sha256": a.sha256,
            "blake3": a.object,
            "size": a.size,
        },
        "source": {
            "url": source.url,
            "path": source.path,
            "commit": source.commit,
            "pin": a.pin,
            "branch": source.branch,
            "changes": changes,
            "index_flags": source.index_flags.iter().map(|f| json!({"path": f.path, "flag": f.flag})).collect::<Vec<_>>(),
        },
        "allowed_modified": a.allowed_modified.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
        "build": match &a.build {
            Some(b) => build(l, b)?,
            None => Value::Null,
        },
        "keys": keys(l)?,
    }))
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
