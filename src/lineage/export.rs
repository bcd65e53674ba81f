//! Provenance exports: in-toto Statement v1 with a SLSA Provenance v1 predicate, and
//! W3C PROV-JSON of the upstream lineage.

use serde_json::{json, Map, Value};

use super::{trace, LNode};
use crate::error::{Error, Result};
use crate::id::{ObjectId, Revocable, Sha256Digest};
use crate::ledger::query::Node;
use crate::ledger::{AdmissionRow, BuildRow, Ledger, SourceRow};

pub(super) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub(super) const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
pub(super) const BUILD_TYPE: &str = "https://github.com/cto-ledger/cto-ledger/build/v1";
pub(super) const BUILDER_ID: &str = "https://github.com/cto-ledger/cto-ledger";

fn digest_set(sha256: Option<&Sha256Digest>, blake3: &ObjectId) -> Value {
    let mut m = Map::new();
    if let Some(h) = sha256 {
        m.insert("sha256".into(), json!(h.hex()));
    }
    m.insert("blake3".into(), json!(blake3.hex()));
    Value::Object(m)
}

/// An object's digest set, with its SHA-256 when the ledger records the object.
pub(super) fn object_digests(l: &Ledger, id: &ObjectId) -> Result<Value> {
    let o = l.object(id)?;
    Ok(digest_set(o.as_ref().map(|o| &o.sha256), id))
}

/// The artifact a REF exports: its object, subject name, admission and build if any.
struct Target {
    object: ObjectId,
    name: String,
    adm: Option<AdmissionRow>,
    build: Option<BuildRow>,
}

fn export_target(l: &Ledger, n: &Node) -> Result<Target> {
    let (object, adm) = match n {
        Node::Object(id) => (*id, l.latest_admission_of_object(id)?),
        Node::Admission(id) => {
            let a = l.admission(id)?.ok_or_else(|| Error::NotFound {
                what: "admission",
                input: id.to_string(),
                hint: None,
            })?;
            (a.object, Some(a))
        }
        Node::Build(id) => {
            let o = l.build_outputs(id)?.into_iter().next().ok_or_else(|| {
                Error::bad_input(
                    format!("build {id} has no outputs"),
                    "export a build that succeeded, or an admitted file",
                )
            })?;
            (o.object, l.latest_admission_of_object(&o.object)?)
        }
        other => {
            return Err(Error::bad_input(
                format!("{} is not an artifact", other.label()),
                "export a file digest, an admission or a build",
            ))
        }
    };
    let build_id = match (adm.as_ref().and_then(|a| a.build_id.clone()), n) {
        (Some(b), _) => Some(b),
        (None, Node::Build(b)) => Some(b.clone()),
        (None, _) => l.build_producing(&object, None)?,
    };
    let build = build_id.map(|b| l.build(&b)).transpose()?.flatten();
    let name = match (&adm, &build) {
        (Some(a), _) => a.name.clone(),
        (None, Some(b)) => l
            .build_outputs(&b.id)?
            .into_iter()
            .find(|o| o.object == object)
            .map(|o| o.path.rsplit('/').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
        _ => object.to_string(),
    };
    Ok(Target {
        object,
        name,
        adm,
        build,
    })
}

/// The source as resolved dependencies: the commit, and the snapshot of what was on disk.
fn source_dependencies(l: &Ledger, src: &SourceRow) -> Result<Vec<Value>> {
    // A URL with a scheme as it is; a local clone (path or scp-like `host:path` is not
    // told apart from a path here) as a file:// URI of its absolute path.
    let uri = match &src.url {
        Some(u) if u.contains("://") => format!("git+{u}@{}", src.commit_id),
        Some(u) if u.starts_with('/') => format!("git+file://{u}@{}", src.commit_id),
        Some(u) if u.contains(':') => {
            format!("git+ssh://{}@{}", u.replacen(':', "/", 1), src.commit_id)
        }
        _ => format!("git+file://{}@{}", src.path, src.commit_id),
    };
    Ok(vec![
        json!({"uri": uri, "digest": {"gitCommit": src.commit_id, "gitTree": src.tree_id}, "name": "source"}),
        json!({"name": "source-snapshot", "digest": object_digests(l, &src.snapshot)?, "annotations": {"cto-ledger.kind": "tree", "cto-ledger.source": src.id}}),
    ])
}

fn builder() -> Value {
    json!({"id": BUILDER_ID, "version": {"cto-ledger": env!("CARGO_PKG_VERSION")}})
}

/// (externalParameters, internalParameters, runDetails) of a recorded build.
fn build_parameters(
    l: &Ledger,
    b: &BuildRow,
    src: Option<&SourceRow>,
) -> Result<(Value, Value, Value)> {
    let modified = l.build_modified(&b.id)?;
    let mut byproducts = Vec::new();
    for (obj, name) in [(&b.stdout_object, "stdout"), (&b.stderr_object, "stderr")] {
        if let Some(obj) = obj {
            byproducts.push(
                json!({"name": name, "digest": object_digests(l, obj)?, "mediaType": "text/plain"}),
            );
        }
    }
    for m in &modified {
        if let Some(obj) = &m.new_object {
            byproducts.push(json!({"name": format!("modified-source/{}", m.path), "digest": object_digests(l, obj)?}));
        }
    }
    let checks = l.checks_of(&b.id)?;
    let source = src.map(|s| json!({"uri": s.url, "gitCommit": s.commit_id}));
    Ok((
        json!({"command": b.argv, "workingDirectory": b.cwd, "source": source}),
        json!({"tools": b.tools, "environment": b.env, "modifiedTrackedFiles": modified, "exitCode": b.exit_code, "reproducibilityChecks": checks}),
        json!({
            "builder": builder(),
            "metadata": {"invocationId": b.id, "startedOn": b.started, "finishedOn": b.finished},
            "byproducts": byproducts,
        }),
    ))
}

/// An in-toto Statement v1 with a SLSA Provenance v1 predicate for an artifact.
pub(crate) fn export_in_toto(l: &Ledger, n: &Node) -> Result<Value> {
    let t = export_target(l, n)?;
    let o = l.object(&t.object)?.ok_or_else(|| Error::NotFound {
        what: "object",
        input: t.object.to_string(),
        hint: None,
    })?;
    let source_id = match (&t.build, &t.adm) {
        (Some(b), _) => Some(b.source_id.clone()),
        (None, Some(a)) => a.source_id.clone(),
        (None, None) => None,
    };
    let source = source_id.map(|id| l.source(&id)).transpose()?.flatten();
    let mut deps = match &source {
        Some(src) => source_dependencies(l, src)?,
        None => Vec::new(),
    };
    // The tools the build used, each with the digest of its executable.
    for t in t.build.iter().flat_map(|b| &b.tools) {
        let (Some(path), Some(sha)) = (&t.path, &t.sha256) else {
            continue;
        };
        let mut d = json!({"name": format!("tool:{}", t.name), "uri": format!("file://{path}"), "digest": {"sha256": sha.hex()}});
        if let Some(v) = &t.version {
            d["annotations"] = json!({"version": v});
        }
        deps.push(d);
    }
    let (external, mut internal, run_details) = match &t.build {
        Some(b) => build_parameters(l, b, source.as_ref())?,
        None => (
            json!({"source": source.as_ref().map(|s| json!({"uri": s.url, "gitCommit": s.commit_id}))}),
            json!({"note": "no build was recorded; provenance comes from the admission's source pin"}),
            json!({
                "builder": builder(),
                "metadata": t.adm.as_ref().map(|a| json!({"invocationId": a.id, "startedOn": a.time, "finishedOn": a.time})).unwrap_or(json!({})),
            }),
        ),
    };
    if let Some(a) = &t.adm {
        let revocation = l.revocation_of(&Revocable::Admission(a.id.clone()))?;
        internal["admission"] = json!({"id": a.id, "name": a.name, "pin": a.pin, "scope": a.scope, "decisions": a.decisions, "revocation": revocation});
    }
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": t.name, "digest": digest_set(Some(&o.sha256), &t.object)}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": run_details,
        }
    }))
}

fn prov_id(n: &LNode) -> String {
    format!("ctol:{}", n.id.replace(':', "_"))
}

/// Adds one lineage node, its relations and its children to a PROV document.
fn prov_node(n: &LNode, doc: &mut Value, k: &mut usize) {
    let id = prov_id(n);
    let flags: Vec<&String> = n.flags.iter().filter(|f| *f != "see above").collect();
    let attrs = json!({"prov:label": n.label, "ctol:kind": n.kind, "ctol:flags": flags});
    let class = match n.kind {
        "build" | "run" => "activity",
        _ => "entity",
    };
    doc[class][&id] = attrs;
    if matches!(n.kind, "admission" | "model_admission") {
        if let Some(actor) = n.attrs["actor"].as_str() {
            let agent = format!("ctol:agent_{}", actor.replace(['@', '.'], "_"));
            doc["agent"][&agent] = json!({"prov:label": actor, "prov:type": "prov:Person"});
            *k += 1;
            doc["wasAttributedTo"][format!("_:a{k}")] =
                json!({"prov:entity": id, "prov:agent": agent});
        }
    }
    for c in &n.children {
        let cid = prov_id(c);
        *k += 1;
        let key = format!("_:r{k}");
        match (class, c.kind) {
            ("activity", "build" | "run") => {
                doc["wasInformedBy"][key] = json!({"prov:informed": id, "prov:informant": cid})
            }
            ("activity", _)
                if c.relation
                    .as_deref()
                    .is_some_and(|r| r.ends_with(".json") || r.ends_with(".jsonl")) =>
            {
                doc["wasGeneratedBy"][key] = json!({"prov:entity": cid, "prov:activity": id})
            }
            ("activity", _) => {
                doc["used"][key] =
                    json!({"prov:activity": id, "prov:entity": cid, "prov:role": c.relation})
            }
            (_, "build" | "run") => {
                doc["wasGeneratedBy"][key] = json!({"prov:entity": id, "prov:activity": cid})
            }
            _ => {
                doc["wasDerivedFrom"][key] = json!({"prov:generatedEntity": id, "prov:usedEntity": cid, "prov:type": c.relation})
            }
        }
        prov_node(c, doc, k);
    }
}

/// W3C PROV-JSON of a node's upstream lineage.
pub(crate) fn export_prov(l: &Ledger, n: &Node) -> Result<Value> {
    let tree = trace(l, n)?;
    let mut doc = json!({
        "prefix": {"ctol": "https://github.com/cto-ledger/cto-ledger/ns#", "blake3": "urn:blake3:", "git": "urn:git:"},
        "entity": {}, "activity": {}, "agent": {},
        "wasGeneratedBy": {}, "used": {}, "wasDerivedFrom": {}, "wasAssociatedWith": {}, "wasAttributedTo": {}
    });
    let mut k = 0usize;
    prov_node(&tree, &mut doc, &mut k);
    Ok(doc)
}
