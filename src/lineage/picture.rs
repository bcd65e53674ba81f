//! Pictures of a lineage: the indented text tree, Graphviz DOT, Mermaid and SVG.

use std::fmt::Write as _;

use super::{impact, trace, LNode};
use crate::error::Result;
use crate::ledger::query::Node;
use crate::ledger::Ledger;

pub(crate) fn render_tree(n: &LNode, out: &mut String, prefix: &str, last: bool, root: bool) {
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

pub(super) struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
}

fn collect(n: &LNode, nodes: &mut Vec<PNode>, edges: &mut Vec<Edge>, reverse: bool) {
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
        let rel = c.relation.clone().unwrap_or_default();
        // Upstream, the relation names what the child is to the node (`provider`); the
        // edge runs child to node, with the lineage, so it is said from the child.
        let label = if reverse { rel } else { along(&rel) };
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

/// An upstream relation as the edge from the child to the node reads: every edge of a
/// picture runs with the lineage (commit, source, build, blob, admission, run), and its
/// label says what the tail is to the head. Artifact names (`report.json`) stay.
fn along(rel: &str) -> String {
    match rel {
        "provider" => "provider of",
        "model" => "model of",
        "built_by" => "built",
        "source" => "source of",
        "check_of" => "checked by",
        "commit" => "commit of",
        "admits" => "admitted as",
        "admitted_as" => "admits",
        "script" => "script of",
        "refused" => "refused as",
        other => other,
    }
    .to_string()
}

pub(super) fn style(kind: &str) -> (&'static str, &'static str) {
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

pub(super) fn is_bad(flags: &[String]) -> bool {
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

/// The lineage pictures `graph` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphFormat {
    Dot,
    Mermaid,
    /// Laid out here; each node a link to `/node/ID` when `serve` draws it.
    Svg {
        links: bool,
    },
}

/// A node of a picture: id, kind, label, flags.
pub(super) type PNode = (String, &'static str, String, Vec<String>);

/// A picture's nodes and edges, upstream and downstream merged.
pub(crate) struct Picture {
    pub(super) nodes: Vec<PNode>,
    pub(super) edges: Vec<Edge>,
}

impl Picture {
    pub(super) fn idx(&self, id: &str) -> usize {
        self.nodes.iter().position(|(n, ..)| n == id).unwrap_or(0)
    }

    #[cfg(test)]
    pub(super) fn of(nodes: Vec<PNode>, edges: Vec<(&str, &str, &str)>) -> Picture {
        Picture {
            nodes,
            edges: edges
                .into_iter()
                .map(|(from, to, label)| Edge {
                    from: from.into(),
                    to: to.into(),
                    label: label.into(),
                })
                .collect(),
        }
    }
}

/// The lineage of a node, upstream and downstream, as Graphviz DOT, Mermaid or SVG.
pub(crate) fn graph(l: &Ledger, n: &Node, format: GraphFormat) -> Result<String> {
    let up = trace(l, n)?;
    let down = impact(l, n)?;
    let mut p = Picture {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    collect(&up, &mut p.nodes, &mut p.edges, false);
    collect(&down, &mut p.nodes, &mut p.edges, true);
    Ok(match format {
        GraphFormat::Dot => dot(&p),
        GraphFormat::Mermaid => mermaid(&p),
        GraphFormat::Svg { links } => super::svg::svg(&p, &|kind, id| {
            links.then(|| format!("/node/{}", crate::serve::url_part(&reference(kind, id))))
        }),
    })
}

/// The REF that names a picture's node: runs and commits carry their prefix.
fn reference(kind: &str, id: &str) -> String {
    match kind {
        "run" => format!("run:{id}"),
        "commit" => format!("commit:{id}"),
        _ => id.to_string(),
    }
}

fn dot(p: &Picture) -> String {
    let (nodes, edges) = (&p.nodes, &p.edges);
    let idx = |id: &str| p.idx(id);
    let mut out = String::new();
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
    for e in edges {
        let _ = writeln!(
            out,
            "  n{} -> n{} [label={}];",
            idx(&e.from),
            idx(&e.to),
            serde_json::to_string(&e.label).expect("strings serialise")
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid(p: &Picture) -> String {
    let (nodes, edges) = (&p.nodes, &p.edges);
    let idx = |id: &str| p.idx(id);
    let mut out = String::new();
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
    for e in edges {
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
    out
}
