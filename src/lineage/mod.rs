//! Lineage queries over the provenance graph: `trace` (upstream, to the source
//! commit) and `impact` (downstream, to every run). One function per node kind says
//! what a node is and which nodes it links to; one walk follows those links; the
//! renderers (`picture`: text, DOT, Mermaid; `export`: in-toto, PROV) only read its result.

mod export;
mod picture;
mod svg;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Result;
use crate::id::{
    AdmissionId, BuildId, CommitId, ModelAdmissionId, ObjectId, RefusalId, Revocable, RevocationId,
    RunId, SourceId,
};
use crate::ledger::query::Node;
use crate::ledger::Ledger;
use crate::state::{AdmissionScope, BuildStatus, Lane, RunStatus};

pub(crate) use export::{export_in_toto, export_prov};
pub(crate) mod attest;
pub(crate) use picture::{graph, render_tree, GraphFormat};
pub(crate) use svg::esc;

const MAX_DEPTH: usize = 16;

/// One node of a lineage tree.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LNode {
    pub kind: &'static str,
    pub id: String,
    pub label: String,
    /// `revoked`, `blocked`, `failed`, `unadmitted`, `diverges`, ... : what an auditor must see.
    pub flags: Vec<String>,
    pub attrs: Value,
    /// How this node relates to its parent (`provider`, `built_by`, `source`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    pub children: Vec<LNode>,
}

impl LNode {
    fn new(kind: &'static str, id: impl ToString, label: String, attrs: Value) -> LNode {
        LNode {
            kind,
            id: id.to_string(),
            label,
            flags: Vec::new(),
            attrs,
            relation: None,
            children: Vec::new(),
        }
    }
}

/// A link from a node: another node to walk to, or a finished leaf (an object seen in passing).
enum Link {
    To(Node, &'static str),
    Leaf(LNode),
}

/// A node and its links in one direction.
struct Step {
    node: LNode,
    links: Vec<Link>,
}

impl Step {
    fn to(&mut self, n: Node, relation: &'static str) {
        self.links.push(Link::To(n, relation));
    }
}

fn short(id: &str) -> String {
    match id.split_once(':') {
        Some((algo, hex)) if hex.chars().count() > 16 => {
            format!("{algo}:{}", crate::commands::text::prefix(hex, 12))
        }
        _ => id.to_string(),
    }
}

fn attrs<T: Serialize>(row: &T) -> Value {
    serde_json::to_value(row).expect("rows serialise")
}

/// Each policy's decision about a subject: a flag (`policy team denied`) and, in its
/// attributes, `policies` with digests and messages.
fn policy_flags(l: &Ledger, subject: &str, id: &str, n: &mut LNode) -> Result<()> {
    let mut st = l
        .conn()
        .prepare_cached(
            "SELECT policy, sha256, result, messages FROM policy_decisions
             WHERE subject = ?1 AND subject_id = ?2 ORDER BY ord",
        )
        .map_err(crate::error::Error::sql("read policy decisions"))?;
    let rows: Vec<(String, String, String, String)> = st
        .query_map([subject, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(crate::error::Error::sql("read policy decisions"))?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut all = Vec::new();
    for (policy, sha256, result, messages) in rows {
        n.flags.push(format!("policy {policy} {result}"));
        let messages: Value = serde_json::from_str(&messages).unwrap_or(Value::Null);
        all.push(
            json!({"policy": policy, "sha256": sha256, "result": result, "messages": messages}),
        );
    }
    if let Value::Object(m) = &mut n.attrs {
        m.insert("policies".into(), Value::Array(all));
    }
    Ok(())
}

/// An object as a leaf: its kind and short digest.
fn object_leaf(l: &Ledger, id: &ObjectId, relation: &str) -> Result<LNode> {
    let (kind, a) = match l.object(id)? {
        Some(o) => (o.kind.as_str(), attrs(&o)),
        None => ("", json!({"id": id})),
    };
    let mut n = LNode::new(
        "object",
        id,
        format!("{kind} {}", short(&id.to_string())),
        a,
    );
    n.relation = Some(relation.into());
    Ok(n)
}

fn revoked_flag(l: &Ledger, target: Revocable, node: &mut LNode) -> Result<()> {
    if let Some(rev) = l.revocation_of(&target)? {
        node.flags.push(format!("revoked: {}", rev.reason));
    }
    Ok(())
}

// ---------------------------------------------------------------- upstream, per kind

fn up(l: &Ledger, n: &Node) -> Result<Step> {
    match n {
        Node::Run(id) => up_run(l, id),
        Node::Admission(id) => up_admission(l, id),
        Node::ModelAdmission(id) => up_model(l, id),
        Node::Build(id) => up_build(l, id),
        Node::Source(id) => up_source(l, id),
        Node::Commit(c) => up_commit(l, c),
        Node::Object(id) => up_object(l, id),
        Node::Refusal(id) => up_refusal(l, id),
        Node::Revocation(id) => up_revocation(l, id),
    }
}

fn leaf_step(node: LNode) -> Step {
    Step {
        node,
        links: Vec::new(),
    }
}

/// A node the ledger names but has no row for: shown, with nothing behind it.
fn missing(kind: &'static str, id: impl ToString) -> Step {
    let id = id.to_string();
    leaf_step(LNode::new(
        kind,
        &id,
        format!("{kind} {id} (not recorded)"),
        Value::Null,
    ))
}

fn up_run(l: &Ledger, id: &RunId) -> Result<Step> {
    let Some(r) = l.run(id)? else {
        return Ok(missing("run", id));
    };
    let label = format!("run:{id} {} {} (lane {})", r.status, r.verdict, r.lane);
    let mut s = leaf_step(LNode::new("run", id, label, attrs(&r)));
    if r.status != RunStatus::Passed {
        s.node.flags.push(r.status.to_string());
    }
    if r.lane == Lane::Fake {
        s.node.flags.push("fake lane".into());
    }
    policy_flags(l, "run", id.as_str(), &mut s.node)?;
    match (&r.provider_admission, &r.provider_object) {
        (Some(a), _) => s.to(Node::Admission(a.clone()), "provider"),
        (None, Some(o)) => {
            let mut leaf = object_leaf(l, o, "provider")?;
            leaf.flags.push("unadmitted".into());
            s.links.push(Link::Leaf(leaf));
        }
        (None, None) => {}
    }
    if let Some(m) = &r.model_admission {
        s.to(Node::ModelAdmission(m.clone()), "model");
    }
    let transcript = l.run_artifact(id, crate::stage2::model::TRANSCRIPT)?;
    for (o, rel) in [
        (&r.report_object, "report.json"),
        (&r.config_object, "config.json"),
        (&transcript, "model-transcript.jsonl"),
    ] {
        if let Some(o) = o {
            s.links.push(Link::Leaf(object_leaf(l, o, rel)?));
        }
    }
    Ok(s)
}

fn up_admission(l: &Ledger, id: &AdmissionId) -> Result<Step> {
    let Some(a) = l.admission(id)? else {
        return Ok(missing("admission", id));
    };
    let label = format!("admission {id} {} {}", a.name, short(&a.sha256.to_string()));
    let mut s = leaf_step(LNode::new("admission", id, label, attrs(&a)));
    revoked_flag(l, Revocable::Admission(id.clone()), &mut s.node)?;
    policy_flags(l, "admission", id.as_str(), &mut s.node)?;
    if a.scope == AdmissionScope::FakeLane {
        s.node.flags.push("fake lane only".into());
    }
    s.links
        .push(Link::Leaf(object_leaf(l, &a.object, "admits")?));
    if let Some(b) = a.build_id {
        s.to(Node::Build(b), "built_by");
    }
    if let Some(src) = a.source_id {
        s.to(Node::Source(src), "source");
    }
    Ok(s)
}

fn up_model(l: &Ledger, id: &ModelAdmissionId) -> Result<Step> {
    let Some(m) = l.model_admission(id)? else {
        return Ok(missing("model_admission", id));
    };
    let at = m
        .endpoint
        .as_ref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default();
    let label = format!("model {}/{}{at} ({id})", m.provider, m.model);
    let mut s = leaf_step(LNode::new("model_admission", id, label, attrs(&m)));
    revoked_flag(l, Revocable::Model(id.clone()), &mut s.node)?;
    if let Some(o) = &m.script_object {
        s.links.push(Link::Leaf(object_leaf(l, o, "script")?));
    }
    Ok(s)
}

fn up_build(l: &Ledger, id: &BuildId) -> Result<Step> {
    let Some(b) = l.build(id)? else {
        return Ok(missing("build", id));
    };
    let name = b
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let argv = crate::commands::text::shell_quoted(&b.argv);
    let label = format!("build {id}{name} {} `{argv}`", b.status);
    let mut s = leaf_step(LNode::new("build", id, label, attrs(&b)));
    if b.status != BuildStatus::Succeeded {
        s.node.flags.push(b.status.to_string());
    }
    for c in l.checks_of(id)? {
        let result = c.check_result.map(|r| r.as_str()).unwrap_or_default();
        s.node.flags.push(format!("check {}: {result}", c.id));
    }
    if let Some(r) = b.check_result {
        s.node.flags.push(format!("check result: {r}"));
    }
    s.to(Node::Source(b.source_id), "source");
    if let Some(o) = b.check_of {
        s.to(Node::Build(o), "check_of");
    }
    Ok(s)
}

fn up_source(l: &Ledger, id: &SourceId) -> Result<Step> {
    let Some(src) = l.source(id)? else {
        return Ok(missing("source", id));
    };
    let changes = l.tracked_changes(id)?;
    let label = format!("source {id} {}", src.path);
    let mut s = leaf_step(LNode::new("source", id, label, attrs(&src)));
    if !changes.is_empty() {
        s.node
            .flags
            .push(format!("{} modified tracked file(s)", changes.len()));
    }
    s.to(Node::Commit(src.commit_id), "commit");
    Ok(s)
}

fn up_commit(l: &Ledger, c: &CommitId) -> Result<Step> {
    let urls = l.urls_of_commit(c)?;
    let first = urls
        .first()
        .cloned()
        .unwrap_or_else(|| "(no remote)".into());
    let a = json!({"commit": c, "urls": urls});
    Ok(leaf_step(LNode::new(
        "commit",
        c,
        format!("commit {c} {first}"),
        a,
    )))
}

fn up_object(l: &Ledger, id: &ObjectId) -> Result<Step> {
    let mut node = object_leaf(l, id, "")?;
    node.relation = None;
    let mut s = leaf_step(node);
    for b in l.builds_with_output(id)? {
        s.to(Node::Build(b), "built_by");
    }
    for a in l.admissions_of_object(id)? {
        s.to(Node::Admission(a.admission.id), "admitted_as");
    }
    Ok(s)
}

fn up_refusal(l: &Ledger, id: &RefusalId) -> Result<Step> {
    let Some(r) = l.refusal(id)? else {
        return Ok(missing("refusal", id));
    };
    let label = format!("refusal {id} {}", r.reason);
    let mut s = leaf_step(LNode::new("refusal", id, label, attrs(&r)));
    s.node.flags.push(r.message.clone());
    if let Some(o) = &r.object {
        s.links.push(Link::Leaf(object_leaf(l, o, "refused")?));
    }
    if let Some(src) = r.source_id {
        s.to(Node::Source(src), "source");
    }
    Ok(s)
}

fn up_revocation(l: &Ledger, id: &RevocationId) -> Result<Step> {
    let Some(r) = l.revocation(id)? else {
        return Ok(missing("revocation", id));
    };
    let label = format!("revocation {id}: {}", r.reason);
    let mut s = leaf_step(LNode::new("revocation", id, label, attrs(&r)));
    let target = match r.target {
        Revocable::Admission(a) => Node::Admission(a),
        Revocable::Model(m) => Node::ModelAdmission(m),
    };
    s.to(target, "revokes");
    Ok(s)
}

// ---------------------------------------------------------------- downstream

/// A node (as upstream shows it, without its upstream links) and what was made from it.
fn down(l: &Ledger, n: &Node) -> Result<Step> {
    let mut s = up(l, n)?;
    s.links.clear();
    match n {
        Node::Commit(c) => {
            for b in l.builds_of_commit(c)? {
                s.to(Node::Build(b), "built");
            }
            for a in l.unbuilt_admissions_of_commit(c)? {
                s.to(Node::Admission(a), "admitted");
            }
        }
        Node::Source(id) => {
            for b in l.builds_of_source(id)? {
                s.to(Node::Build(b), "built");
            }
            for a in l.admissions_by_source(id)? {
                s.to(Node::Admission(a.id), "admitted");
            }
        }
        Node::Build(id) => {
            for o in l.build_outputs(id)? {
                s.to(Node::Object(o.object), "output");
            }
            for c in l.checks_of(id)? {
                s.to(Node::Build(c.id), "checked_by");
            }
        }
        Node::Object(id) => {
            for a in l.admissions_of_object(id)? {
                s.to(Node::Admission(a.admission.id), "admitted_as");
            }
            for r in l.runs_offered_unadmitted(id)? {
                s.to(Node::Run(r), "offered_unadmitted");
            }
        }
        Node::Admission(id) => {
            for r in l.runs_of_provider(id)? {
                s.to(Node::Run(r), "used_by");
            }
        }
        Node::ModelAdmission(id) => {
            for r in l.runs_of_model(id)? {
                s.to(Node::Run(r), "used_by");
            }
        }
        Node::Run(_) | Node::Refusal(_) | Node::Revocation(_) => {}
    }
    Ok(s)
}

// ---------------------------------------------------------------- the walk

struct Walk<'a> {
    l: &'a Ledger,
    seen: BTreeSet<String>,
    downstream: bool,
}

impl Walk<'_> {
    fn node(&mut self, n: &Node, depth: usize) -> Result<LNode> {
        let revisit = !self.seen.insert(n.label());
        let Step { mut node, links } = if self.downstream {
            down(self.l, n)?
        } else {
            up(self.l, n)?
        };
        if revisit {
            node.flags.push("see above".into());
        }
        if revisit || depth >= MAX_DEPTH {
            return Ok(node);
        }
        for link in links {
            let child = match link {
                Link::Leaf(leaf) => leaf,
                Link::To(next, relation) => {
                    let mut c = self.node(&next, depth + 1)?;
                    c.relation = Some(relation.into());
                    c
                }
            };
            node.children.push(child);
        }
        Ok(node)
    }
}

fn walk(l: &Ledger, n: &Node, downstream: bool) -> Result<LNode> {
    Walk {
        l,
        seen: BTreeSet::new(),
        downstream,
    }
    .node(n, 0)
}

/// Everything upstream of a node, down to the source commit.
pub(crate) fn trace(l: &Ledger, n: &Node) -> Result<LNode> {
    walk(l, n, false)
}

/// Everything downstream of a node: builds, outputs, admissions, runs.
pub(crate) fn impact(l: &Ledger, n: &Node) -> Result<LNode> {
    walk(l, n, true)
}
