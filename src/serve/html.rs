//! The HTML the view is made of: one escape for every piece of text, one page frame,
//! and the few shapes every page uses (a table, a key/value list, a link). Nothing
//! here takes markup from evidence: callers pass text, and it is escaped here.

use std::fmt::Write as _;

pub(crate) use crate::lineage::esc;

const LEDGER_NAV: &str = r#"<a class="brand" href="/runs">cto-ledger</a> <a href="/runs">runs</a> <a href="/admissions">admissions</a> <a href="/builds">builds</a> <a href="/journal">journal</a> <a href="/checkpoints">checkpoints</a> <a href="/audit">audit</a>"#;
const BUNDLE_NAV: &str = r#"<a class="brand" href="/">cto-ledger bundle</a> <a href="/">evidence</a> <a href="/transcript">transcript</a> <a href="/#members">members</a>"#;

/// A page of the ledger's view: the navigation, a title and the body markup built by
/// the caller.
pub(crate) fn page(title: &str, body: &str) -> String {
    frame(LEDGER_NAV, title, body)
}

/// A page of one bundle's view (`serve --bundle`).
pub(crate) fn bundle_page(title: &str, body: &str) -> String {
    frame(BUNDLE_NAV, title, body)
}

fn frame(nav: &str, title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · cto-ledger</title><link rel="stylesheet" href="/assets/style.css"></head><body><nav>{nav}</nav><main><h1>{}</h1>{body}</main></body></html>"#,
        esc(title),
        esc(title)
    );
    out
}

/// `<a href>` to one of our routes with `text` escaped.
pub(crate) fn link(href: &str, text: &str) -> String {
    format!(r#"<a href="{}">{}</a>"#, esc(href), esc(text))
}

/// The link to a node's page, by its REF (`run:ID`, `commit:HEX`, a digest or an id).
pub(crate) fn node_link(reference: &str, text: &str) -> String {
    link(&format!("/node/{}", super::url_part(reference)), text)
}

/// A table: the header row, then each row's cells as markup the caller built (each
/// cell either escaped text or a link made here).
pub(crate) fn table(class: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(r#"<table class="{class}"><thead><tr>"#);
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A definition list of `(key, markup)` pairs.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let mut out = String::from(r#"<dl class="fields">"#);
    for (k, v) in pairs {
        let _ = write!(out, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    }
    out.push_str("</dl>");
    out
}

/// Text kept as it was written (logs, diffs, JSON), escaped, in a `<pre>`.
pub(crate) fn pre(class: &str, text: &str) -> String {
    format!(r#"<pre class="{class}">{}</pre>"#, esc(text))
}

/// A value as text: strings as themselves, `null` as `-`, the rest as JSON.
pub(crate) fn val(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A verdict or status as a coloured badge.
pub(crate) fn badge(text: &str) -> String {
    let class = match text {
        "pass" | "passed" | "ok" | "allowed" | "enforced" | "succeeded" | "verified" => "good",
        "fail" | "failed" | "blocked" | "denied" | "revoked" | "error" | "provider_timeout"
        | "unfinished" | "interrupted" | "NOT ENFORCED" | "diverges" => "bad",
        _ => "plain",
    };
    format!(r#"<span class="badge {class}">{}</span>"#, esc(text))
}

/// A `<details>` section, open or closed, with an escaped summary.
pub(crate) fn details(summary: &str, open: bool, body: &str) -> String {
    format!(
        "<details{}><summary>{}</summary>{body}</details>",
        if open { " open" } else { "" },
        esc(summary)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_never_becomes_markup() {
        let evil = r#"<img src=x onerror="alert(1)">&"'"#;
        let t = table("t", &["<h>"], &[vec![esc(evil)]]);
        assert!(!t.contains("<img") && !t.contains("<h>"), "{t}");
        assert!(link("/x\"y", evil).starts_with(r#"<a href="/x&quot;y">&lt;img"#));
        assert!(pre("p", "</pre><script>").contains("&lt;/pre&gt;&lt;script&gt;"));
        assert_eq!(esc("a\u{1b}b"), "a\u{FFFD}b");
        // A right-to-left override would make "txt.exe" read as "exe.txt".
        assert_eq!(esc("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
    }
}
