//! Lineage queries over the provenance graph: `trace` (upstream, to the source
//! commit), `impact` (downstream, to every run), `graph` (a picture of both) and
//! `export` (in-toto / SLSA Provenance v1, W3C PROV-JSON).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ledger::query::Node;
use crate::ledger::Ledger;

const MAX_DEPTH: usize = 16;

/// One node of a lineage tree.
#[derive(Debug, Clone, Serialize)]
pub struct LNode {
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

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn short(id: &str) -> String {
    match id.split_once(':') {
        Some((algo, hex)) if hex.len() > 16 => format!("{algo}:{}", &hex[..12]),
        _ => id.to_string(),
    }
}

struct Walk<'a> {
    l: &'a Ledger,
    seen: BTreeSet<String>,
    downstream: bool,
}

impl Walk<'_> {
    fn leaf(&self, kind: &'static str, id: String, label: String, attrs: Value) -> LNode {
        LNode {
            kind,
            id,
            label,
            flags: Vec::new(),
            attrs,
            relation: None,
            children: Vec::new(),
        }
    }

    fn node(&mut self, n: &Node, depth: usize) -> Result<LNode> {
        let key = n.label();
        let revisit = !self.seen.insert(key.clone());
        let mut out = if self.downstream {
            self.down(n)?
        } else {
            self.up(n)?
        };
        if revisit || depth >= MAX_DEPTH {
            if revisit {
                out.flags.push("see above".into());
            }
            out.children.clear();
            return Ok(out);
        }
        let kids = std::mem::take(&mut out.children);
        for k in kids {
            let rel = k.relation.clone();
            let child_node = node_of(&k);
            let mut c = match child_node {
                Some(cn) => self.node(&cn, depth + 1)?,
                None => k,
            };
            c.relation = rel;
            out.children.push(c);
        }
        Ok(out)
    }

    fn revoked(&self, id: &str) -> Result<Option<Value>> {
        self.l.revocation_of(id)
    }

    fn object_leaf(&self, id: &str, relation: &str) -> Result<LNode> {
        let row = self
            .l
            .row(
                "SELECT id, sha256, size, kind FROM objects WHERE id = ?1",
                &[&id],
            )?
            .unwrap_or(json!({"id": id}));
        let mut n = self.leaf(
            "object",
            id.to_string(),
            format!("{} {}", s(&row, "kind"), short(id)),
            row,
        );
        n.relation = Some(relation.into());
        Ok(n)
    }

    fn child(&self, kind: &'static str, id: &str, relation: &str) -> LNode {
        let mut n = self.leaf(kind, id.to_string(), id.to_string(), Value::Null);
        n.relation = Some(relation.into());
        n
    }

    /// A node and the nodes it came from.
    fn up(&mut self, n: &Node) -> Result<LNode> {
        let l = self.l;
        Ok(match n {
            Node::Run(id) => {
                let r = l
                    .row("SELECT * FROM runs WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                let mut node = self.leaf(
                    "run",
                    id.clone(),
                    format!(
                        "run:{id} {} {} (lane {})",
                        s(&r, "status"),
                        s(&r, "verdict"),
                        s(&r, "lane")
                    ),
                    r.clone(),
                );
                run_flags(&mut node, &r);
                match r["provider_admission"].as_str() {
                    Some(a) => node.children.push(self.child("admission", a, "provider")),
                    None => {
                        if let Some(o) = r["provider_object"].as_str() {
                            let mut leaf = self.object_leaf(o, "provider")?;
                            leaf.flags.push("unadmitted".into());
                            node.children.push(leaf);
                        }
                    }
                }
                if let Some(m) = r["model_admission"].as_str() {
                    node.children
                        .push(self.child("model_admission", m, "model"));
                }
                for (col, rel) in [
                    ("report_object", "report.json"),
                    ("config_object", "config.json"),
                ] {
                    if let Some(o) = r[col].as_str() {
                        node.children.push(self.object_leaf(o, rel)?);
                    }
                }
                node
            }
            Node::Admission(id) => {
                let a = l
                    .row("SELECT * FROM admissions WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                let mut node = self.leaf(
                    "admission",
                    id.clone(),
                    format!(
                        "admission {id} {} {}",
                        s(&a, "name"),
                        short(&s(&a, "sha256"))
                    ),
                    a.clone(),
                );
                if let Some(rev) = self.revoked(id)? {
                    node.flags.push(format!("revoked: {}", s(&rev, "reason")));
                }
                if a["scope"] == "fake-lane" {
                    node.flags.push("fake lane only".into());
                }
                node.children
                    .push(self.object_leaf(&s(&a, "object"), "admits")?);
                if let Some(b) = a["build_id"].as_str() {
                    node.children.push(self.child("build", b, "built_by"));
                }
                if let Some(src) = a["source_id"].as_str() {
                    node.children.push(self.child("source", src, "source"));
                }
                node
            }
            Node::ModelAdmission(id) => {
                let m = l
                    .row("SELECT * FROM model_admissions WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                let mut node = self.leaf(
                    "model_admission",
                    id.clone(),
                    format!("model {}/{} ({id})", s(&m, "provider"), s(&m, "model")),
                    m,
                );
                if let Some(rev) = self.revoked(id)? {
                    node.flags.push(format!("revoked: {}", s(&rev, "reason")));
                }
                node
            }
            Node::Build(id) => {
                let b = l.row("SELECT id, name, status, reason, source_id, commit_id, argv, cwd, started, finished, exit_code, check_of, check_result FROM builds WHERE id = ?1", &[id])?.unwrap_or(Value::Null);
                let argv: Vec<String> = serde_json::from_str(&s(&b, "argv")).unwrap_or_default();
                let mut node = self.leaf(
                    "build",
                    id.clone(),
                    format!(
                        "build {id}{} {} `{}`",
                        b["name"]
                            .as_str()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        s(&b, "status"),
                        argv.join(" ")
                    ),
                    b.clone(),
                );
                if b["status"] != "succeeded" {
                    node.flags.push(s(&b, "status"));
                }
                for c in l.rows(
                    "SELECT id, check_result FROM builds WHERE check_of = ?1 ORDER BY seq",
                    &[id],
                )? {
                    node.flags
                        .push(format!("check {}: {}", s(&c, "id"), s(&c, "check_result")));
                }
                if let Some(r) = b["check_result"].as_str() {
                    node.flags.push(format!("check result: {r}"));
                }
                node.children
                    .push(self.child("source", &s(&b, "source_id"), "source"));
                if let Some(o) = b["check_of"].as_str() {
                    node.children.push(self.child("build", o, "check_of"));
                }
                node
            }
            Node::Source(id) => {
                let src = l.row("SELECT id, path, url, commit_id, branch, tree_id, snapshot FROM sources WHERE id = ?1", &[id])?.unwrap_or(Value::Null);
                let changes = l.rows("SELECT path, status FROM source_changes WHERE source_id = ?1 AND status != 'untracked' ORDER BY path", &[id])?;
                let mut node = self.leaf(
                    "source",
                    id.clone(),
                    format!("source {id} {}", s(&src, "path")),
                    src.clone(),
                );
                if !changes.is_empty() {
                    node.flags
                        .push(format!("{} modified tracked file(s)", changes.len()));
                }
                node.children
                    .push(self.child("commit", &s(&src, "commit_id"), "commit"));
                node
            }
            Node::Commit(c) => {
                let urls: Vec<String> = l.rows("SELECT DISTINCT url FROM sources WHERE commit_id = ?1 AND url IS NOT NULL ORDER BY url", &[c])?.iter().map(|r| s(r, "url")).collect();
                let label = format!(
                    "commit {c} {}",
                    urls.first()
                        .cloned()
                        .unwrap_or_else(|| "(no remote)".into())
                );
                self.leaf(
                    "commit",
                    c.clone(),
                    label,
                    json!({"commit": c, "urls": urls}),
                )
            }
            Node::Object(id) => {
                let ids = id.to_string();
                let mut node = self.object_leaf(&ids, "")?;
                node.relation = None;
                for b in l.rows(
                    "SELECT DISTINCT build_id FROM build_outputs WHERE object = ?1",
                    &[&ids],
                )? {
                    node.children
                        .push(self.child("build", &s(&b, "build_id"), "built_by"));
                }
                for a in l.rows(
                    "SELECT id FROM admissions WHERE object = ?1 ORDER BY seq",
                    &[&ids],
                )? {
                    node.children
                        .push(self.child("admission", &s(&a, "id"), "admitted_as"));
                }
                node
            }
            Node::Refusal(id) => {
                let r = l
                    .row("SELECT * FROM refusals WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                let mut node = self.leaf(
                    "refusal",
                    id.clone(),
                    format!("refusal {id} {}", s(&r, "reason")),
                    r.clone(),
                );
                node.flags.push(s(&r, "message"));
                if let Some(o) = r["object"].as_str() {
                    node.children.push(self.object_leaf(o, "refused")?);
                }
                if let Some(src) = r["source_id"].as_str() {
                    node.children.push(self.child("source", src, "source"));
                }
                node
            }
            Node::Revocation(id) => {
                let r = l
                    .row("SELECT * FROM revocations WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                let mut node = self.leaf(
                    "revocation",
                    id.clone(),
                    format!("revocation {id}: {}", s(&r, "reason")),
                    r.clone(),
                );
                let t = s(&r, "target");
                let kind = if t.starts_with("mod_") {
                    "model_admission"
                } else {
                    "admission"
                };
                node.children.push(self.child(kind, &t, "revokes"));
                node
            }
        })
    }

    /// A node and everything made from it.
    fn down(&mut self, n: &Node) -> Result<LNode> {
        let l = self.l;
        let mut node = self.up_shallow(n)?;
        match n {
            Node::Commit(c) => {
                for b in l.rows(
                    "SELECT id FROM builds WHERE commit_id = ?1 AND check_of IS NULL ORDER BY seq",
                    &[c],
                )? {
                    node.children
                        .push(self.child("build", &s(&b, "id"), "built"));
                }
                for a in l.rows("SELECT id FROM admissions WHERE commit_id = ?1 AND (build_id IS NULL OR build_id NOT IN (SELECT id FROM builds WHERE commit_id = ?1)) ORDER BY seq", &[c])? {
                    node.children.push(self.child("admission", &s(&a, "id"), "admitted"));
                }
            }
            Node::Source(id) => {
                for b in l.rows(
                    "SELECT id FROM builds WHERE source_id = ?1 ORDER BY seq",
                    &[id],
                )? {
                    node.children
                        .push(self.child("build", &s(&b, "id"), "built"));
                }
                for a in l.rows(
                    "SELECT id FROM admissions WHERE source_id = ?1 ORDER BY seq",
                    &[id],
                )? {
                    node.children
                        .push(self.child("admission", &s(&a, "id"), "admitted"));
                }
            }
            Node::Build(id) => {
                for o in l.rows(
                    "SELECT object FROM build_outputs WHERE build_id = ?1 ORDER BY path",
                    &[id],
                )? {
                    let mut c = self.child("object", &s(&o, "object"), "output");
                    c.kind = "object";
                    node.children.push(c);
                }
                for c in l.rows(
                    "SELECT id FROM builds WHERE check_of = ?1 ORDER BY seq",
                    &[id],
                )? {
                    node.children
                        .push(self.child("build", &s(&c, "id"), "checked_by"));
                }
            }
            Node::Object(id) => {
                let ids = id.to_string();
                for a in l.rows(
                    "SELECT id FROM admissions WHERE object = ?1 ORDER BY seq",
                    &[&ids],
                )? {
                    node.children
                        .push(self.child("admission", &s(&a, "id"), "admitted_as"));
                }
                for r in l.rows("SELECT id FROM runs WHERE provider_object = ?1 AND provider_admission IS NULL ORDER BY seq", &[&ids])? {
                    node.children.push(self.child("run", &s(&r, "id"), "offered_unadmitted"));
                }
            }
            Node::Admission(id) | Node::ModelAdmission(id) => {
                let col = if matches!(n, Node::Admission(_)) {
                    "provider_admission"
                } else {
                    "model_admission"
                };
                for r in l.rows(
                    &format!("SELECT id FROM runs WHERE {col} = ?1 ORDER BY seq"),
                    &[id],
                )? {
                    node.children
                        .push(self.child("run", &s(&r, "id"), "used_by"));
                }
            }
            Node::Run(_) | Node::Refusal(_) | Node::Revocation(_) => {}
        }
        Ok(node)
    }

    /// The node itself (label, flags, attrs) without its upstream children.
    fn up_shallow(&mut self, n: &Node) -> Result<LNode> {
        let mut node = self.up(n)?;
        node.children.clear();
        Ok(node)
    }
}

fn run_flags(node: &mut LNode, r: &Value) {
    match r["status"].as_str() {
        Some("passed") => {}
        Some(st) => node.flags.push(st.to_string()),
        None => {}
    }
    if r["lane"] == "fake" {
        node.flags.push("fake lane".into());
    }
}

/// The graph node a placeholder child stands for.
fn node_of(n: &LNode) -> Option<Node> {
    Some(match n.kind {
        "run" => Node::Run(n.id.clone()),
        "admission" => Node::Admission(n.id.clone()),
        "model_admission" => Node::ModelAdmission(n.id.clone()),
        "build" => Node::Build(n.id.clone()),
        "source" => Node::Source(n.id.clone()),
        "commit" => Node::Commit(n.id.clone()),
        "object" if n.attrs.is_null() => Node::Object(ObjectId::parse(&n.id).ok()?),
        _ => return None,
    })
}

pub fn trace(l: &Ledger, n: &Node) -> Result<LNode> {
    Walk {
        l,
        seen: BTreeSet::new(),
        downstream: false,
    }
    .node(n, 0)
}

pub fn impact(l: &Ledger, n: &Node) -> Result<LNode> {
    Walk {
        l,
        seen: BTreeSet::new(),
        downstream: true,
    }
    .node(n, 0)
}

pub fn render_tree(n: &LNode, out: &mut String, prefix: &str, last: bool, root: bool) {
    let branch = if root {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    let rel = n
        .relation
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| format!("{r}: "))
        .unwrap_or_default();
    let flags = if n.flags.is_empty() {
        String::new()
    } else {
        format!("  [{}]", n.flags.join("; "))
    };
    let _ = writeln!(out, "{prefix}{branch}{rel}{}{flags}", n.label);
    let child_prefix = if root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "    " } else { "│   " })
    };
    for (i, c) in n.children.iter().enumerate() {
        render_tree(c, out, &child_prefix, i + 1 == n.children.len(), false);
    }
}

// ---------------------------------------------------------------- graph pictures

struct Edge {
    from: String,
    to: String,
    label: String,
}

fn collect(
    n: &LNode,
    nodes: &mut Vec<(String, &'static str, String, Vec<String>)>,
    edges: &mut Vec<Edge>,
    reverse: bool,
) {
    if !nodes.iter().any(|(id, ..)| *id == n.id) {
        nodes.push((
            n.id.clone(),
            n.kind,
            n.label.clone(),
            n.flags
                .iter()
                .filter(|f| *f != "see above")
                .cloned()
                .collect(),
        ));
    }
    for c in &n.children {
        let label = c.relation.clone().unwrap_or_default();
        let (from, to) = if reverse {
            (n.id.clone(), c.id.clone())
        } else {
            (c.id.clone(), n.id.clone())
        };
        if !edges.iter().any(|e| e.from == from && e.to == to) {
            edges.push(Edge { from, to, label });
        }
        collect(c, nodes, edges, reverse);
    }
}

fn style(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "commit" => ("box", "#dbeafe"),
        "source" => ("folder", "#e0e7ff"),
        "build" => ("component", "#fef3c7"),
        "object" => ("note", "#f3f4f6"),
        "admission" => ("hexagon", "#dcfce7"),
        "model_admission" => ("hexagon", "#ccfbf1"),
        "run" => ("ellipse", "#fae8ff"),
        _ => ("box", "#ffffff"),
    }
}

fn is_bad(flags: &[String]) -> bool {
    flags.iter().any(|f| {
        [
            "revoked",
            "blocked",
            "failed",
            "unadmitted",
            "provider_timeout",
            "interrupted",
            "error",
            "diverges",
        ]
        .iter()
        .any(|b| f.contains(b))
    })
}

/// The lineage of a node, upstream and downstream, as Graphviz DOT or Mermaid.
pub fn graph(l: &Ledger, n: &Node, format: &str) -> Result<String> {
    let up = trace(l, n)?;
    let down = impact(l, n)?;
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    collect(&up, &mut nodes, &mut edges, false);
    collect(&down, &mut nodes, &mut edges, true);
    let idx = |id: &str| nodes.iter().position(|(n, ..)| n == id).unwrap_or(0);
    let mut out = String::new();
    match format {
        "dot" => {
            out.push_str("digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10, style=filled];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
            for (i, (_, kind, label, flags)) in nodes.iter().enumerate() {
                let (shape, fill) = style(kind);
                let bad = is_bad(flags);
                let text = if flags.is_empty() {
                    label.clone()
                } else {
                    format!("{label}\n[{}]", flags.join("; "))
                };
                let _ = writeln!(
                    out,
                    "  n{i} [label={}, shape={shape}, fillcolor=\"{}\", color=\"{}\"{}];",
                    serde_json::to_string(&text).expect("strings serialise"),
                    if bad { "#fecaca" } else { fill },
                    if bad { "#dc2626" } else { "#374151" },
                    if bad {
                        ", penwidth=2, style=\"filled,dashed\""
                    } else {
                        ""
                    }
                );
            }
            for e in &edges {
                let _ = writeln!(
                    out,
                    "  n{} -> n{} [label={}];",
                    idx(&e.from),
                    idx(&e.to),
                    serde_json::to_string(&e.label).expect("strings serialise")
                );
            }
            out.push_str("}\n");
        }
        "mermaid" => {
            out.push_str("flowchart LR\n");
            for (i, (_, kind, label, flags)) in nodes.iter().enumerate() {
                let text = if flags.is_empty() {
                    label.clone()
                } else {
                    format!("{label}<br/>[{}]", flags.join("; "))
                };
                let text = text.replace('"', "#quot;").replace('`', "'");
                let (open, close) = match *kind {
                    "admission" | "model_admission" => ("{{", "}}"),
                    "run" => ("([", "])"),
                    "commit" => ("[(", ")]"),
                    "build" => ("[[", "]]"),
                    _ => ("[", "]"),
                };
                let _ = writeln!(out, "  n{i}{open}\"{text}\"{close}");
                let _ = writeln!(
                    out,
                    "  class n{i} {}{};",
                    kind,
                    if is_bad(flags) { ",bad" } else { "" }
                );
            }
            for e in &edges {
                let _ = writeln!(
                    out,
                    "  n{} -->|{}| n{}",
                    idx(&e.from),
                    if e.label.is_empty() {
                        "-".into()
                    } else {
                        e.label.clone()
                    },
                    idx(&e.to)
                );
            }
            for kind in [
                "commit",
                "source",
                "build",
                "object",
                "admission",
                "model_admission",
                "run",
                "refusal",
                "revocation",
            ] {
                let _ = writeln!(out, "  classDef {kind} fill:{};", style(kind).1);
            }
            out.push_str(
                "  classDef bad fill:#fecaca,stroke:#dc2626,stroke-width:2px,stroke-dasharray:4;\n",
            );
        }
        other => {
            return Err(Error::bad_input(
                format!("graph format `{other}` is unknown"),
                "use --format dot or --format mermaid",
            ));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- export

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://github.com/cto-ledger/cto-ledger/build/v1";
pub const BUILDER_ID: &str = "https://github.com/cto-ledger/cto-ledger";

fn digest_set(sha256: &str, blake3: &str) -> Value {
    let mut m = Map::new();
    if let Some(h) = sha256.strip_prefix("sha256:") {
        m.insert("sha256".into(), json!(h));
    }
    if let Some(h) = blake3.strip_prefix("blake3:") {
        m.insert("blake3".into(), json!(h));
    }
    Value::Object(m)
}

/// The artifact a REF exports: (object id, subject name, admission row if any, build row if any).
fn export_target(l: &Ledger, n: &Node) -> Result<(String, String, Option<Value>, Option<Value>)> {
    let (object, adm) = match n {
        Node::Object(id) => (
            id.to_string(),
            l.row(
                "SELECT * FROM admissions WHERE object = ?1 ORDER BY seq DESC LIMIT 1",
                &[&id.to_string()],
            )?,
        ),
        Node::Admission(id) => {
            let a = l
                .row("SELECT * FROM admissions WHERE id = ?1", &[id])?
                .ok_or_else(|| Error::NotFound {
                    what: "admission",
                    input: id.clone(),
                    hint: None,
                })?;
            (s(&a, "object"), Some(a))
        }
        Node::Build(id) => {
            let o = l
                .row(
                    "SELECT object FROM build_outputs WHERE build_id = ?1 ORDER BY path LIMIT 1",
                    &[id],
                )?
                .ok_or_else(|| {
                    Error::bad_input(
                        format!("build {id} has no outputs"),
                        "export a build that succeeded, or an admitted file",
                    )
                })?;
            let obj = s(&o, "object");
            (
                obj.clone(),
                l.row(
                    "SELECT * FROM admissions WHERE object = ?1 ORDER BY seq DESC LIMIT 1",
                    &[&obj],
                )?,
            )
        }
        other => {
            return Err(Error::bad_input(
                format!("{} is not an artifact", other.label()),
                "export a file digest, an admission or a build",
            ))
        }
    };
    let build = match adm.as_ref().and_then(|a| a["build_id"].as_str().map(str::to_string)) {
        Some(b) => l.row("SELECT * FROM builds WHERE id = ?1", &[&b])?,
        None => match n {
            Node::Build(b) => l.row("SELECT * FROM builds WHERE id = ?1", &[b])?,
            _ => l.row("SELECT b.* FROM builds b JOIN build_outputs o ON o.build_id = b.id WHERE o.object = ?1 AND b.status = 'succeeded' ORDER BY b.check_of IS NOT NULL, b.seq DESC LIMIT 1", &[&object])?,
        },
    };
    let name = match (&adm, &build) {
        (Some(a), _) => s(a, "name"),
        (None, Some(b)) => l
            .row(
                "SELECT path FROM build_outputs WHERE build_id = ?1 AND object = ?2",
                &[&s(b, "id"), &object],
            )?
            .map(|r| {
                s(&r, "path")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default(),
        _ => object.clone(),
    };
    Ok((object, name, adm, build))
}

pub fn export_in_toto(l: &Ledger, n: &Node) -> Result<Value> {
    let (object, name, adm, build) = export_target(l, n)?;
    let o = l
        .row("SELECT * FROM objects WHERE id = ?1", &[&object])?
        .ok_or_else(|| Error::NotFound {
            what: "object",
            input: object.clone(),
            hint: None,
        })?;
    let source_id = build.as_ref().map(|b| s(b, "source_id")).or_else(|| {
        adm.as_ref()
            .and_then(|a| a["source_id"].as_str().map(str::to_string))
    });
    let source = match &source_id {
        Some(id) => l.row("SELECT * FROM sources WHERE id = ?1", &[id])?,
        None => None,
    };
    let mut deps = Vec::new();
    if let Some(src) = &source {
        let uri = match src["url"].as_str() {
            Some(u) => format!("git+{u}@{}", s(src, "commit_id")),
            None => format!("git+file://{}@{}", s(src, "path"), s(src, "commit_id")),
        };
        deps.push(json!({"uri": uri, "digest": {"gitCommit": s(src, "commit_id"), "gitTree": s(src, "tree_id")}, "name": "source"}));
        let snap = l
            .row(
                "SELECT id, sha256 FROM objects WHERE id = ?1",
                &[&s(src, "snapshot")],
            )?
            .unwrap_or(Value::Null);
        deps.push(json!({"name": "source-snapshot", "digest": digest_set(&s(&snap, "sha256"), &s(&snap, "id")), "annotations": {"cto-ledger.kind": "tree", "cto-ledger.source": s(src, "id")}}));
    }
    let (external, internal, run_details) = match &build {
        Some(b) => {
            let argv: Value = serde_json::from_str(&s(b, "argv")).unwrap_or(Value::Null);
            let tools: Value = serde_json::from_str(&s(b, "tools")).unwrap_or(Value::Null);
            let env: Value = serde_json::from_str(&s(b, "env")).unwrap_or(Value::Null);
            let modified = l.rows("SELECT path, status, old_object, new_object FROM build_modified WHERE build_id = ?1 ORDER BY path", &[&s(b, "id")])?;
            let mut byproducts = Vec::new();
            for (col, nm) in [("stdout_object", "stdout"), ("stderr_object", "stderr")] {
                if let Some(obj) = b[col].as_str() {
                    let r = l
                        .row("SELECT sha256 FROM objects WHERE id = ?1", &[&obj])?
                        .unwrap_or(Value::Null);
                    byproducts.push(json!({"name": nm, "digest": digest_set(&s(&r, "sha256"), obj), "mediaType": "text/plain"}));
                }
            }
            for m in &modified {
                if let Some(obj) = m["new_object"].as_str() {
                    let r = l
                        .row("SELECT sha256 FROM objects WHERE id = ?1", &[&obj])?
                        .unwrap_or(Value::Null);
                    byproducts.push(json!({"name": format!("modified-source/{}", s(m, "path")), "digest": digest_set(&s(&r, "sha256"), obj)}));
                }
            }
            let checks = l.rows(
                "SELECT id, check_result, finished FROM builds WHERE check_of = ?1 ORDER BY seq",
                &[&s(b, "id")],
            )?;
            (
                json!({"command": argv, "workingDirectory": s(b, "cwd"), "source": source.as_ref().map(|s_| json!({"uri": s_["url"], "gitCommit": s_["commit_id"]}))}),
                json!({"tools": tools, "environment": env, "modifiedTrackedFiles": modified, "exitCode": b["exit_code"], "reproducibilityChecks": checks}),
                json!({
                    "builder": {"id": BUILDER_ID, "version": {"cto-ledger": env!("CARGO_PKG_VERSION")}},
                    "metadata": {"invocationId": s(b, "id"), "startedOn": s(b, "started"), "finishedOn": s(b, "finished")},
                    "byproducts": byproducts,
                }),
            )
        }
        None => (
            json!({"source": source.as_ref().map(|s_| json!({"uri": s_["url"], "gitCommit": s_["commit_id"]}))}),
            json!({"note": "no build was recorded; provenance comes from the admission's source pin"}),
            json!({
                "builder": {"id": BUILDER_ID, "version": {"cto-ledger": env!("CARGO_PKG_VERSION")}},
                "metadata": adm.as_ref().map(|a| json!({"invocationId": s(a, "id"), "startedOn": s(a, "time"), "finishedOn": s(a, "time")})).unwrap_or(json!({})),
            }),
        ),
    };
    let mut internal = internal;
    if let Some(a) = &adm {
        let decisions = match &a["decisions"] {
            Value::String(d) => serde_json::from_str::<Value>(d).unwrap_or(Value::Null),
            other => other.clone(),
        };
        internal["admission"] = json!({"id": s(a, "id"), "name": s(a, "name"), "pin": a["pin"], "scope": s(a, "scope"), "decisions": decisions, "revocation": l.revocation_of(&s(a, "id"))?});
    }
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": digest_set(&s(&o, "sha256"), &object)}],
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

/// W3C PROV-JSON of a node's upstream lineage.
pub fn export_prov(l: &Ledger, n: &Node) -> Result<Value> {
    let tree = trace(l, n)?;
    let mut doc = json!({
        "prefix": {"ctol": "https://github.com/cto-ledger/cto-ledger/ns#", "blake3": "urn:blake3:", "git": "urn:git:"},
        "entity": {}, "activity": {}, "agent": {},
        "wasGeneratedBy": {}, "used": {}, "wasDerivedFrom": {}, "wasAssociatedWith": {}, "wasAttributedTo": {}
    });
    let mut k = 0usize;
    fn qn(n: &LNode) -> String {
        format!("ctol:{}", n.id.replace(':', "_"))
    }
    fn walk(n: &LNode, doc: &mut Value, k: &mut usize) {
        let id = qn(n);
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
            let cid = qn(c);
            *k += 1;
            let key = format!("_:r{k}");
            match (class, c.kind) {
                ("activity", "build" | "run") => {
                    doc["wasInformedBy"][key] = json!({"prov:informed": id, "prov:informant": cid})
                }
                ("activity", _) if c.relation.as_deref().is_some_and(|r| r.ends_with(".json")) => {
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
            walk(c, doc, k);
        }
    }
    walk(&tree, &mut doc, &mut k);
    Ok(doc)
}
