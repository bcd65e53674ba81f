//! The view's routes: the runs table, a node's lineage, admissions, builds, the
//! journal, checkpoints and downloads. A run's own page is in [`super::run`].

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{self, badge, esc, fields, link, node_link, page, table, val};
use super::{param, Body, Reply};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::query::Node;
use crate::ledger::{RunPage, RunRow};

/// Runs on one page of the table.
const PAGE: u64 = 50;
/// Journal events on one page.
const JOURNAL_PAGE: i64 = 100;

pub(super) fn route(home: &Home, path: &str, query: &str) -> Result<Reply> {
    let ok = |title: &str, body: String| Ok(Reply::html(200, page(title, &body)));
    match path {
        "/" | "/runs" => ok("Runs", runs(home, query)?),
        "/admissions" => ok("Admissions", admissions(home)?),
        "/builds" => ok("Builds", builds(home)?),
        "/journal" => ok("Journal", journal(home, query)?),
        "/checkpoints" => ok("Checkpoints", checkpoints(home)?),
        "/audit" => ok("Audit", audit(home)?),
        _ => {
            if let Some(rest) = path.strip_prefix("/run/") {
                let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
                return super::run::route(home, id, sub);
            }
            if let Some(r) = path.strip_prefix("/node/") {
                let node = node_of(home, r)?;
                return ok(&node.label(), lineage(home, &node)?);
            }
            if let Some(d) = path.strip_prefix("/object/") {
                return download(home, d, param(query, "name").as_deref());
            }
            Err(Error::bad_input(
                format!("no page at {path}"),
                "start at /runs",
            ))
        }
    }
}

pub(super) fn error_page(status: u16, e: &Error) -> Reply {
    let body = format!(
        r#"<p class="error">{}</p><p>{}</p>"#,
        esc(&e.to_string()),
        link("/runs", "back to the runs")
    );
    Reply::html(status, page("Not shown", &body))
}

/// A REF from a URL, resolved only as a recorded id or digest: never as a file path
/// (a request must not make the server read or hash files on this machine).
pub(super) fn node_of(home: &Home, r: &str) -> Result<Node> {
    home.ledger.resolve_recorded(r)
}

// ---------------------------------------------------------------- runs

fn runs(home: &Home, query: &str) -> Result<String> {
    let p = |k| param(query, k);
    let provider_ref = p("provider");
    let provider_object = match provider_ref.as_deref() {
        None => None,
        Some(r) => Some(crate::commands::runs::provider_object(home, r, &node_of)?),
    };
    let f = RunPage {
        status: p("status"),
        verdict: p("verdict"),
        fixture: p("fixture"),
        model: p("model"),
        provider_object,
        before: p("before").and_then(|b| b.parse().ok()),
        limit: PAGE,
    };
    let (rows, total) = home.ledger.runs_page(&f)?;
    let names = home.ledger.admission_names()?;
    let mut out = filters(&f, provider_ref.as_deref());
    let _ = write!(out, r#"<p class="count">{total} runs match</p>"#);
    let body: Vec<Vec<String>> = rows.iter().map(|r| run_row(r, &names)).collect();
    out.push_str(&table(
        "runs",
        &[
            "run", "verdict", "status", "fixture", "provider", "model", "sandbox", "started",
            "duration",
        ],
        &body,
    ));
    if let (Some(last), true) = (rows.last(), rows.len() as u64 == PAGE) {
        let mut q: Vec<String> = query
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("before="))
            .map(String::from)
            .collect();
        q.push(format!("before={}", last.seq));
        let _ = write!(
            out,
            r#"<p class="pager">{}</p>"#,
            link(&format!("/runs?{}", q.join("&")), "older runs →")
        );
    }
    Ok(out)
}

fn run_row(r: &RunRow, names: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let provider = match &r.provider_admission {
        Some(a) => node_link(
            a.as_str(),
            names.get(a.as_str()).map_or(a.as_str(), |n| n.as_str()),
        ),
        None => r.provider_object.as_ref().map_or("-".into(), |o| {
            format!(
                "{} (unadmitted)",
                node_link(&o.to_string(), &short(&o.to_string()))
            )
        }),
    };
    let sandbox = r.sandbox.clone().unwrap_or_else(|| "-".into());
    vec![
        link(
            &format!("/run/{}", super::url_part(r.id.as_str())),
            r.id.as_str(),
        ),
        badge(&r.verdict.to_string()),
        badge(&r.status.to_string()),
        esc(&r.fixture),
        provider,
        esc(r.model.as_deref().unwrap_or("-")),
        match sandbox.starts_with("off") {
            true => badge("NOT ENFORCED"),
            false => esc(&sandbox),
        },
        esc(&r.started),
        esc(&duration(&r.started, &r.finished)),
    ]
}

/// The filter form: plain GET, no script.
fn filters(f: &RunPage, provider: Option<&str>) -> String {
    let select = |name: &str, options: &[&str], current: Option<&str>| {
        let mut s = format!(r#"<label>{name} <select name="{name}"><option value="">any</option>"#);
        for o in options {
            let sel = if current == Some(*o) { " selected" } else { "" };
            let _ = write!(s, r#"<option{sel}>{}</option>"#, esc(o));
        }
        s.push_str("</select></label>");
        s
    };
    let input = |name: &str, v: Option<&str>| {
        format!(
            r#"<label>{name} <input name="{name}" value="{}"></label>"#,
            esc(v.unwrap_or(""))
        )
    };
    format!(
        r#"<form class="filters" method="get" action="/runs">{}{}{}{}{}<button>filter</button></form>"#,
        select("verdict", &["pass", "fail"], f.verdict.as_deref()),
        select(
            "status",
            &crate::state::RunStatus::names()
                .split(", ")
                .collect::<Vec<_>>(),
            f.status.as_deref()
        ),
        input("fixture", f.fixture.as_deref()),
        input("model", f.model.as_deref()),
        input("provider", provider),
    )
}

pub(super) fn duration(start: &str, end: &str) -> String {
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (t(start), t(end)) {
        (Some(a), Some(b)) => format!("{:.1} s", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => "-".into(),
    }
}

pub(super) fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.chars().count() > 12 => {
            format!("{alg}:{}…", crate::commands::text::prefix(hex, 12))
        }
        _ => digest.to_string(),
    }
}

// ---------------------------------------------------------------- lineage

/// A node: its lineage as a graph, then what the ledger records of it.
fn lineage(home: &Home, node: &Node) -> Result<String> {
    let svg = crate::lineage::graph(
        &home.ledger,
        node,
        crate::lineage::GraphFormat::Svg { links: true },
    )?;
    let doc = home.ledger.describe(node)?;
    let mut out = String::new();
    if let Node::Run(id) = node {
        let _ = write!(
            out,
            "<p>{}</p>",
            link(
                &format!("/run/{}", super::url_part(id.as_str())),
                "the run's page"
            )
        );
    }
    let _ = write!(
        out,
        r#"<h2>Lineage</h2><div class="graph">{svg}</div><h2>Recorded</h2>{}"#,
        value(&doc)
    );
    Ok(out)
}

/// A JSON value as nested lists; ids and digests become links to their nodes.
pub(super) fn value(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let pairs: Vec<(&str, String)> =
                m.iter().map(|(k, v)| (k.as_str(), value(v))).collect();
            fields(&pairs)
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Array(a) => {
            let mut s = String::from("<ol>");
            for x in a.iter().take(500) {
                let _ = write!(s, "<li>{}</li>", value(x));
            }
            if a.len() > 500 {
                let _ = write!(s, "<li>… and {} more</li>", a.len() - 500);
            }
            s.push_str("</ol>");
            s
        }
        Value::String(s) if is_ref(s) => node_link(s, s),
        other => esc(&val(other)),
    }
}

/// A string that names a node of the graph: a digest or a recorded id.
fn is_ref(s: &str) -> bool {
    (s.starts_with("blake3:") || s.starts_with("sha256:")) && s.len() > 70
        || matches!(Node::from_id(s), Some(Ok(_)))
}

// ---------------------------------------------------------------- lists

fn admissions(home: &Home) -> Result<String> {
    let l = &home.ledger;
    let mut out = String::from("<h2>Provider admissions</h2>");
    let rows = l.rows("SELECT a.id, a.name, a.path, a.sha256, a.pin, a.commit_id, a.scope, a.time, r.id AS revocation, r.reason FROM admissions a LEFT JOIN revocations r ON r.target = a.id ORDER BY a.seq DESC", &[])?;
    out.push_str(&list(
        &rows,
        &[
            "id",
            "name",
            "path",
            "sha256",
            "pin",
            "commit_id",
            "scope",
            "time",
            "revocation",
            "reason",
        ],
    ));
    out.push_str("<h2>Model admissions</h2>");
    let rows = l.rows("SELECT m.id, m.provider, m.model, m.endpoint, m.api, m.time, r.id AS revocation, r.reason FROM model_admissions m LEFT JOIN revocations r ON r.target = m.id ORDER BY m.seq DESC", &[])?;
    out.push_str(&list(
        &rows,
        &[
            "id",
            "provider",
            "model",
            "endpoint",
            "api",
            "time",
            "revocation",
            "reason",
        ],
    ));
    out.push_str("<h2>Refusals</h2>");
    let rows = l.rows("SELECT id, path, sha256, pin, reason, message, time FROM refusals ORDER BY seq DESC LIMIT 500", &[])?;
    out.push_str(&list(
        &rows,
        &["id", "path", "sha256", "pin", "reason", "message", "time"],
    ));
    Ok(out)
}

fn builds(home: &Home) -> Result<String> {
    let rows = home.ledger.rows("SELECT b.id, b.name, b.status, b.commit_id, b.exit_code, b.started, b.finished, b.check_of, b.check_result FROM builds b ORDER BY b.seq DESC LIMIT 1000", &[])?;
    Ok(list(
        &rows,
        &[
            "id",
            "name",
            "status",
            "commit_id",
            "exit_code",
            "started",
            "finished",
            "check_of",
            "check_result",
        ],
    ))
}

/// Rows of a query as a table of the named columns; ids and digests link to their nodes,
/// commits to `commit:HEX`.
fn list(rows: &[Value], cols: &[&str]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match (&r[*c], *c) {
                    (Value::String(s), "commit_id") => {
                        node_link(&format!("commit:{s}"), crate::commands::text::prefix(s, 12))
                    }
                    (Value::String(s), "sha256") => esc(&short(&format!(
                        "sha256:{}",
                        s.trim_start_matches("sha256:")
                    ))),
                    (Value::String(s), "status" | "check_result") => badge(s),
                    (Value::String(s), _) if is_ref(s) => node_link(s, s),
                    (v, _) => esc(&val(v)),
                })
                .collect()
        })
        .collect();
    if body.is_empty() {
        return "<p>none</p>".into();
    }
    table("list", cols, &body)
}

fn journal(home: &Home, query: &str) -> Result<String> {
    let before: i64 = param(query, "before")
        .and_then(|b| b.parse().ok())
        .unwrap_or(i64::MAX);
    let rows = home.ledger.rows(
        "SELECT seq, kind, time, hash, length(event) AS bytes FROM journal WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        &[&before, &JOURNAL_PAGE],
    )?;
    let mut out = list(&rows, &["seq", "kind", "time", "hash", "bytes"]);
    if let Some(last) = rows.last().and_then(|r| r["seq"].as_i64()) {
        if rows.len() as i64 == JOURNAL_PAGE {
            let _ = write!(
                out,
                r#"<p class="pager">{}</p>"#,
                link(&format!("/journal?before={last}"), "older events →")
            );
        }
    }
    Ok(out)
}

/// `cto-ledger audit`, run now over the read-only ledger (it keeps no result: the page is
/// the latest audit, made when it is asked for).
fn audit(home: &Home) -> Result<String> {
    let a = crate::audit::audit(home, None, &indicatif::ProgressBar::hidden())?;
    let mut out = fields(&[
        ("result", badge(if a.ok { "passed" } else { "failed" })),
        ("when", esc(&crate::ledger::now())),
        ("events", esc(&a.events.to_string())),
        (
            "head",
            esc(&a
                .head
                .as_ref()
                .map(|h| h.hash.to_string())
                .unwrap_or_default()),
        ),
        (
            "objects re-hashed",
            esc(&format!(
                "{} ({} bytes, BLAKE3 and SHA-256)",
                a.objects_checked, a.bytes_checked
            )),
        ),
        ("runs checked", esc(&a.runs_checked.to_string())),
    ]);
    let rows: Vec<Vec<String>> = a
        .findings
        .iter()
        .map(|f| vec![esc(&f.check.to_string()), esc(&f.subject), esc(&f.message)])
        .collect();
    out.push_str("<h2>Findings</h2>");
    match rows.is_empty() {
        true => out.push_str("<p>None.</p>"),
        false => out.push_str(&table("list", &["check", "subject", "finding"], &rows)),
    }
    if !a.notes.is_empty() {
        out.push_str("<h2>Notes</h2><ul>");
        for n in &a.notes {
            let _ = write!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>");
    }
    Ok(out)
}

/// Every kept checkpoint, its note checked against the keys this ledger records and its
/// root recomputed from every event of the journal, as `audit` does (not from the stored
/// subtree roots, which a rewrite of the journal's table could leave as they were).
fn checkpoints(home: &Home) -> Result<String> {
    let l = &home.ledger;
    let kept = l.checkpoints()?;
    let checker = crate::tlog::NoteChecker::new(l)?;
    let head = l.head()?;
    let mut rows = Vec::new();
    for c in kept.iter().rev() {
        let check = match checker.check(&c.note) {
            Ok(n) if n.problems.is_empty() => badge("verified"),
            Ok(n) => format!("{} {}", badge("failed"), esc(&n.problems.join("; "))),
            Err(e) => format!("{} {}", badge("failed"), esc(&e)),
        };
        rows.push(vec![
            esc(&c.size.to_string()),
            esc(crate::commands::text::prefix(&c.keyid, 16)),
            esc(crate::commands::text::prefix(&c.root, 16)),
            esc(&c.time),
            check,
            html::details("signed note", false, &html::pre("note", &c.note)),
        ]);
    }
    let mut out = format!(
        "<p>The journal holds {} events; its head is {}.</p>",
        head.seq,
        esc(&head.hash.to_string())
    );
    match rows.is_empty() {
        true => out.push_str(
            "<p>No signed checkpoint yet: <code>cto-ledger checkpoint --sign</code> makes one.</p>",
        ),
        false => out.push_str(&table(
            "list",
            &["size", "key", "root", "time", "check", "note"],
            &rows,
        )),
    }
    Ok(out)
}

// ---------------------------------------------------------------- downloads

/// An object as an attachment: re-hashed first (a damaged object is never served),
/// named by the path it was recorded at, its type never sniffed.
fn download(home: &Home, digest: &str, name: Option<&str>) -> Result<Reply> {
    let id: ObjectId = match node_of(home, digest)? {
        Node::Object(id) => id,
        other => {
            return Err(Error::bad_input(
                format!("{digest} names {}, not an object", other.label()),
                "download objects by digest",
            ))
        }
    };
    let meta = match home.store.rehash(&id)? {
        Some(m) if m.id == id => m,
        Some(m) => {
            return Err(Error::Integrity {
                message: format!("object {id} is corrupt: its bytes hash to {}", m.id),
            })
        }
        None => {
            return Err(Error::Integrity {
                message: format!("object {id} is recorded but missing from the store"),
            })
        }
    };
    let file = name
        .and_then(|n| n.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or("object");
    Ok(Reply {
        status: 200,
        headers: vec![
            ("Content-Type", "application/octet-stream".into()),
            ("Content-Disposition", attachment(file)),
        ],
        body: Body::Object(id, meta.size),
    })
}

/// `Content-Disposition` for a download named `file`: a quoted-string of printable
/// ASCII, the rest as `_`.
pub(super) fn attachment(file: &str) -> String {
    let safe: String = file
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}
