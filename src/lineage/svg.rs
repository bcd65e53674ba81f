//! A lineage picture as SVG, laid out here: no Graphviz at run time. The layout is the
//! layered one Graphviz's `dot` and Sugiyama's method use, kept small: each node's
//! column is its longest path from a node with no inputs (so every edge runs left to
//! right), and each column's order is improved by a few sweeps of the barycentre
//! heuristic (a node moves towards the mean position of its neighbours in the column
//! before, then after). Every label is escaped: a node's label may be what a provider
//! or a model wrote (a fixture name, an artifact path).

use std::fmt::Write as _;

use super::picture::{is_bad, Picture};
use crate::commands::runs::elide;

const NODE_H: f64 = 54.0;
const ROW_GAP: f64 = 22.0;
const COL_GAP: f64 = 90.0;
const MARGIN: f64 = 16.0;
/// Characters of a label shown in a node; the whole label is its tooltip.
const LABEL_CHARS: usize = 34;
/// Barycentre sweeps, each one down and one up: enough for graphs of lineage size.
const SWEEPS: usize = 6;

/// The picture as an SVG document; `href` gives the link of a node (kind, id), if any.
pub(crate) fn svg(p: &Picture, href: &dyn Fn(&str, &str) -> Option<String>) -> String {
    let n = p.nodes.len();
    let edges: Vec<(usize, usize, &str)> = p
        .edges
        .iter()
        .map(|e| (p.idx(&e.from), p.idx(&e.to), e.label.as_str()))
        .filter(|(a, b, _)| a != b)
        .collect();
    let rank = ranks(n, &edges);
    let columns = order(n, &edges, &rank);
    let width = p
        .nodes
        .iter()
        .map(|(_, _, label, _)| label.chars().count().min(LABEL_CHARS))
        .max()
        .map_or(140.0, |c| (c as f64 * 6.6 + 24.0).clamp(140.0, 260.0));
    let mut at = vec![(0.0, 0.0); n];
    for (c, col) in columns.iter().enumerate() {
        for (r, &i) in col.iter().enumerate() {
            at[i] = (
                MARGIN + c as f64 * (width + COL_GAP),
                MARGIN + r as f64 * (NODE_H + ROW_GAP),
            );
        }
    }
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let (w, h) = (
        2.0 * MARGIN + columns.len() as f64 * (width + COL_GAP) - COL_GAP,
        2.0 * MARGIN + rows as f64 * (NODE_H + ROW_GAP) - ROW_GAP,
    );
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="11" role="img"><title>lineage</title>"#
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#6b7280"/></marker></defs>"##);
    for &(a, b, label) in &edges {
        let (x1, y1) = (at[a].0 + width, at[a].1 + NODE_H / 2.0);
        let (x2, y2) = (at[b].0, at[b].1 + NODE_H / 2.0);
        let bend = ((x2 - x1).abs() / 2.0).max(30.0);
        let _ = write!(
            out,
            r##"<g class="edge"><path d="M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}" fill="none" stroke="#6b7280" marker-end="url(#arrow)"/>"##,
            x1 + bend,
            x2 - bend
        );
        if !label.is_empty() {
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#374151" font-size="9">{}</text>"##,
                (x1 + x2) / 2.0,
                (y1 + y2) / 2.0 - 3.0,
                esc(&elide(label, 24))
            );
        }
        out.push_str("</g>");
    }
    for (i, (id, kind, label, flags)) in p.nodes.iter().enumerate() {
        node(
            &mut out,
            at[i],
            width,
            (id, kind, label, flags),
            href(kind, id),
        );
    }
    out.push_str("</svg>");
    out
}

/// One node: a box in its kind's colour (red and dashed when flagged bad), its label,
/// kind and flags, and its link.
fn node(
    out: &mut String,
    (x, y): (f64, f64),
    width: f64,
    (id, kind, label, flags): (&str, &str, &str, &[String]),
    href: Option<String>,
) {
    let bad = is_bad(flags);
    let fill = if bad {
        "#fecaca"
    } else {
        super::picture::style(kind).1
    };
    let stroke = if bad { "#dc2626" } else { "#374151" };
    if let Some(h) = &href {
        let _ = write!(out, r#"<a href="{}">"#, esc(h));
    }
    let _ = write!(
        out,
        r#"<g class="node" data-id="{}" data-kind="{kind}"><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}"{}/>"#,
        esc(id),
        esc(label),
        if bad {
            r#" stroke-width="2" stroke-dasharray="4""#
        } else {
            ""
        },
    );
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" fill="#111827" font-weight="600">{}</text><text x="{:.1}" y="{:.1}" fill="#4b5563" font-size="9">{}</text>"##,
        x + 8.0,
        y + 18.0,
        esc(&elide(label, LABEL_CHARS)),
        x + 8.0,
        y + 32.0,
        esc(kind)
    );
    if !flags.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#b91c1c" font-size="9">{}</text>"##,
            x + 8.0,
            y + 46.0,
            esc(&elide(&flags.join("; "), LABEL_CHARS + 6))
        );
    }
    out.push_str("</g>");
    if href.is_some() {
        out.push_str("</a>");
    }
}

/// Each node's column: its longest path from a node with no inputs (Kahn's order). A
/// node on a cycle, which a lineage should not have, goes in the last column.
fn ranks(n: usize, edges: &[(usize, usize, &str)]) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    for &(_, b, _) in edges {
        indeg[b] += 1;
    }
    let mut rank = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut done = vec![false; n];
    while let Some(i) = ready.pop() {
        done[i] = true;
        for &(a, b, _) in edges.iter().filter(|e| e.0 == i) {
            rank[b] = rank[b].max(rank[a] + 1);
            indeg[b] -= 1;
            if indeg[b] == 0 {
                ready.push(b);
            }
        }
    }
    let last = rank.iter().copied().max().unwrap_or(0) + 1;
    for i in (0..n).filter(|&i| !done[i]) {
        rank[i] = last;
    }
    rank
}

/// The nodes of each column, ordered to cross few edges.
fn order(n: usize, edges: &[(usize, usize, &str)], rank: &[usize]) -> Vec<Vec<usize>> {
    let cols = rank.iter().copied().max().map_or(0, |m| m + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); cols];
    for i in 0..n {
        columns[rank[i]].push(i);
    }
    let mut pos = vec![0.0f64; n];
    let place = |columns: &[Vec<usize>], pos: &mut [f64]| {
        for col in columns {
            for (r, &i) in col.iter().enumerate() {
                pos[i] = r as f64;
            }
        }
    };
    place(&columns, &mut pos);
    for sweep in 0..SWEEPS * 2 {
        let down = sweep % 2 == 0;
        let range: Vec<usize> = match down {
            true => (1..cols).collect(),
            false => (0..cols.saturating_sub(1)).rev().collect(),
        };
        for c in range {
            let mut keyed: Vec<(f64, usize)> = columns[c]
                .iter()
                .map(|&i| {
                    let near: Vec<f64> = edges
                        .iter()
                        .filter_map(|&(a, b, _)| match down {
                            true if b == i => Some(pos[a]),
                            false if a == i => Some(pos[b]),
                            _ => None,
                        })
                        .collect();
                    let key = match near.is_empty() {
                        true => pos[i],
                        false => near.iter().sum::<f64>() / near.len() as f64,
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|x, y| x.0.total_cmp(&y.0).then(pos[x.1].total_cmp(&pos[y.1])));
            columns[c] = keyed.into_iter().map(|(_, i)| i).collect();
            place(&columns, &mut pos);
        }
    }
    columns
}

/// Text as XML character data or an attribute value: every markup character escaped.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 text; shown as U+FFFD.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push('\u{FFFD}'),
            // Bidirectional overrides and invisible characters, which can make text read
            // as something else, shown as their code (as `shown` does on a terminal).
            c if crate::commands::text::invisible(c) => {
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edge_runs_left_to_right_and_labels_are_escaped() {
        let p = Picture::of(
            vec![
                ("a".into(), "commit", "<script>x</script>".into(), vec![]),
                ("b".into(), "build", "b".into(), vec!["revoked".into()]),
                ("c".into(), "run", "c".into(), vec![]),
            ],
            vec![
                ("a", "b", "built"),
                ("b", "c", "provider of"),
                ("a", "c", ""),
            ],
        );
        let s = svg(&p, &|_, id| Some(format!("/node/{id}\"x")));
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;x&lt;/script&gt;"), "{s}");
        assert!(s.contains(r#"href="/node/a&quot;x""#), "{s}");
        assert_eq!(ranks(3, &[(0, 1, ""), (1, 2, ""), (0, 2, "")]), [0, 1, 2]);
        // A cycle does not hang the layout.
        assert_eq!(ranks(2, &[(0, 1, ""), (1, 0, "")]), [1, 1]);
    }
}
