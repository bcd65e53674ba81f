//! A run's page: verdict and reason, gates, sandbox and limits, tests, the provider's
//! changes as a diff, artifacts with downloads, proof status; and its transcript page.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{badge, details, esc, fields, link, node_link, page, pre, table, val};
use super::pages::{duration, node_of, short, value};
use super::Reply;
use crate::commands::show::artifact;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::query::Node;

/// The most of one artifact (report, log, transcript) read to show it.
const SHOWN_MAX: u64 = 16 << 20;

pub(super) fn route(home: &Home, id: &str, sub: &str) -> Result<Reply> {
    let node = node_of(home, &format!("run:{id}"))?;
    let Node::Run(run) = &node else {
        return Err(Error::bad_input(
            format!("{id} is not a run"),
            "start at /runs",
        ));
    };
    let doc = home.ledger.describe(&node)?;
    let title = format!("run:{run}");
    let body = match sub {
        "" => summary(home, &doc)?,
        "transcript" => {
            let t = artifact(&doc, crate::stage2::model::TRANSCRIPT);
            match t {
                Some(o) => super::transcript::render(&read(home, &o)?),
                None => "<p>This run called no model: it has no transcript.</p>".into(),
            }
        }
        _ => {
            return Err(Error::bad_input(
                format!("no page {sub} of a run"),
                "see /runs",
            ))
        }
    };
    Ok(Reply::html(200, page(&title, &body)))
}

/// An artifact's bytes, verified, at most [`SHOWN_MAX`].
fn read(home: &Home, id: &ObjectId) -> Result<Vec<u8>> {
    crate::commands::show::read(home, id, SHOWN_MAX)
}

fn summary(home: &Home, doc: &Value) -> Result<String> {
    let run = &doc["run"];
    let report = crate::commands::show::report_of(home, doc, SHOWN_MAX)?;
    let id = val(&run["id"]);
    let mut out = String::new();
    let p = &run["provider"];
    let provider = match p["id"].as_str() {
        Some(a) => node_link(a, p["name"].as_str().unwrap_or(a)),
        None => "not admitted".into(),
    };
    let commit = match p["commit_id"].as_str() {
        Some(c) => node_link(&format!("commit:{c}"), c),
        None => "-".into(),
    };
    out.push_str(&fields(&[
        ("verdict", badge(&val(&run["verdict"]))),
        ("status", badge(&val(&run["status"]))),
        ("reason", esc(&val(&report["reason"]))),
        ("fixture", esc(&val(&run["fixture"]))),
        ("provider", provider),
        ("source commit", commit),
        ("model", esc(&val(&run["model"]))),
        (
            "time",
            esc(&format!(
                "{} to {} ({})",
                val(&run["started"]),
                val(&run["finished"]),
                duration(&val(&run["started"]), &val(&run["finished"]))
            )),
        ),
        (
            "transcript",
            link(
                &format!("/run/{}/transcript", super::url_part(&id)),
                "the model conversation",
            ),
        ),
        ("lineage", node_link(&format!("run:{id}"), "graph")),
    ]));
    gates(&mut out, &report);
    sandbox(&mut out, &report);
    tests(home, doc, &report, &mut out)?;
    changes(home, &report, &mut out);
    artifacts(&mut out, run);
    Ok(out)
}

/// A JSON array's items; none when it is not an array.
fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn gates(out: &mut String, rep: &Value) {
    let rows: Vec<Vec<String>> = items(&rep["gates"])
        .iter()
        .map(|g| {
            vec![
                esc(&val(&g["name"])),
                badge(if g["passed"] == true { "ok" } else { "blocked" }),
                esc(&val(&g["detail"])),
            ]
        })
        .collect();
    out.push_str("<h2>Gates</h2>");
    out.push_str(&table("gates", &["gate", "result", "detail"], &rows));
    if let Some(p) = rep["policies"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("<h2>Policies</h2>");
        out.push_str(&value(&Value::Array(p.clone())));
    }
}

fn sandbox(out: &mut String, rep: &Value) {
    let s = &rep["sandbox"];
    out.push_str("<h2>Sandbox</h2>");
    if s["enabled"] == false {
        out.push_str(&format!(
            "<p>{} the run waived the sandbox (--no-sandbox).</p>",
            badge("NOT ENFORCED")
        ));
    }
    let rows: Vec<Vec<String>> = items(&s["rules"])
        .iter()
        .map(|r| {
            vec![
                esc(&val(&r["rule"])),
                badge(if r["enforced"] == true {
                    "enforced"
                } else {
                    "NOT ENFORCED"
                }),
                esc(&val(&r["by"])),
            ]
        })
        .collect();
    out.push_str(&table("rules", &["rule", "enforced", "by"], &rows));
    let limits: Vec<Vec<String>> = items(&rep["limits"])
        .iter()
        .map(|l| {
            vec![
                esc(&val(&l["name"])),
                esc(&val(&l["value"])),
                badge(if l["enforced"] == true {
                    "enforced"
                } else {
                    "NOT ENFORCED"
                }),
                esc(&val(&l["by"])),
                esc(if l["hit"] == true { "hit" } else { "" }),
            ]
        })
        .collect();
    out.push_str("<h3>Limits</h3>");
    out.push_str(&table(
        "limits",
        &["limit", "value", "enforced", "by", "hit"],
        &limits,
    ));
}

fn tests(home: &Home, doc: &Value, rep: &Value, out: &mut String) -> Result<()> {
    let t = &rep["tests"];
    out.push_str("<h2>Tests</h2>");
    if t.is_null() {
        out.push_str("<p>The tests did not run.</p>");
        return Ok(());
    }
    let _ = write!(
        out,
        "<p>{} exit {}</p>",
        badge(&val(&t["result"])),
        esc(&val(&t["exit_code"]))
    );
    if let Some(tampered) = rep["judge"]["tampered"]
        .as_array()
        .filter(|t| !t.is_empty())
    {
        let paths: Vec<String> = tampered.iter().map(|t| val(&t["path"])).collect();
        let _ = write!(
            out,
            "<p>{} the provider changed {}</p>",
            badge("failed"),
            esc(&paths.join(", "))
        );
    }
    if let Some(log) = t["log"].as_str().and_then(|p| artifact(doc, p)) {
        let text = String::from_utf8_lossy(&read(home, &log)?).into_owned();
        out.push_str(&details("tests log", true, &pre("log", &text)));
    }
    Ok(())
}

/// The provider's changes against the fixture, as `export --bundle` writes them.
fn changes(home: &Home, rep: &Value, out: &mut String) {
    out.push_str("<h2>Changes</h2>");
    let Ok(report) = serde_json::from_value::<crate::report::Report>(rep.clone()) else {
        out.push_str("<p>The report could not be read as a Stage 2 report.</p>");
        return;
    };
    let trees = report
        .judge
        .as_ref()
        .and_then(|j| Some((j.fixture_tree, j.workspace_tree?)));
    let Some((fixture, workspace)) = trees else {
        out.push_str("<p>No workspace tree was recorded.</p>");
        return;
    };
    let objs = crate::bundle::changes::Recording {
        store: &home.store,
        read: Default::default(),
    };
    match crate::bundle::changes::diff(&objs, &fixture, &workspace, &report.workspace_changes) {
        Ok(d) if d.is_empty() => out.push_str("<p>The provider changed nothing.</p>"),
        Ok(d) => out.push_str(&pre("diff", &d)),
        Err(e) => {
            let _ = write!(out, "<p class=\"error\">{}</p>", esc(&e));
        }
    }
}

fn artifacts(out: &mut String, run: &Value) {
    let rows: Vec<Vec<String>> = items(&run["artifacts"])
        .iter()
        .map(|a| {
            let (path, object) = (val(&a["path"]), val(&a["object"]));
            vec![
                esc(&path),
                node_link(&object, &short(&object)),
                link(
                    &format!(
                        "/object/{}?name={}",
                        super::url_part(&object),
                        super::url_part(&path)
                    ),
                    "download",
                ),
            ]
        })
        .collect();
    out.push_str("<h2>Artifacts</h2>");
    out.push_str(&table("artifacts", &["path", "object", ""], &rows));
}
