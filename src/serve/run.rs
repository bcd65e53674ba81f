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
    let (doc, warning) = journaled(home, home.ledger.describe(&node)?);
    let title = format!("run:{run}");
    let body = match sub {
        "" => warning + &summary(home, &doc)?,
        "transcript" => {
            let t = artifact(&doc, crate::stage2::model::TRANSCRIPT);
            warning
                + &match t {
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
    tests(&mut out, &report, &|p| {
        artifact(doc, p).map(|o| read(home, &o)).transpose()
    })?;
    changes(home, &report, &mut out);
    artifacts(&mut out, run);
    signed_log(home, run, &mut out);
    Ok(out)
}

/// The columns of the `runs` table the run's pages show, each of which its journal event
/// records under the same name (the event is what the signed log proves; the table is a
/// projection of it that anything able to write the database could alter).
const FROM_EVENT: &[&str] = &[
    "fixture",
    "lane",
    "status",
    "verdict",
    "provider_object",
    "provider_admission",
    "model",
    "model_admission",
    "config_object",
    "report_object",
    "tree_object",
    "started",
    "finished",
    "sandbox",
    "start",
    "artifacts",
];

/// `doc` with the run's fields as its journal event records them, and, when the `runs`
/// table said otherwise, the warning the page opens with: the table was altered after the
/// fact, and what is shown (report, artifacts, transcript) is the event's.
fn journaled(home: &Home, mut doc: Value) -> (Value, String) {
    use crate::ledger::events::{Body, Event};
    let Some(seq) = doc["run"]["seq"].as_u64() else {
        return (doc, String::new());
    };
    let event =
        home.ledger
            .row_at(seq)
            .ok()
            .flatten()
            .and_then(
                |row| match serde_json::from_str::<Event>(&row.event).ok()?.body {
                    Body::Run(r) => serde_json::to_value(r).ok(),
                    _ => None,
                },
            );
    let Some(event) = event else {
        let warning = format!(
            r#"<p class="error">{} this run's journal event {seq} cannot be read as a run: <code>cto-ledger audit</code>.</p>"#,
            badge("failed")
        );
        return (doc, warning);
    };
    // Artifacts as the table lists them: path and object, by path.
    let listed = |v: &Value| -> Value {
        let mut a: Vec<Value> = items(v)
            .iter()
            .map(|x| serde_json::json!({"object": x["object"], "path": x["path"]}))
            .collect();
        a.sort_by_key(|x| val(&x["path"]));
        Value::Array(a)
    };
    let mut altered = Vec::new();
    for key in FROM_EVENT {
        let (recorded, shown) = match *key {
            "artifacts" => (listed(&event[*key]), listed(&doc["run"][*key])),
            _ => (event[*key].clone(), doc["run"][*key].clone()),
        };
        if shown != recorded {
            altered.push(*key);
            doc["run"][*key] = recorded;
        }
    }
    if altered.is_empty() {
        return (doc, String::new());
    }
    let warning = format!(
        r#"<p class="error">{} the ledger's runs table differs from this run's journal event {seq} in {}: the table was altered after the event was recorded. Shown here is the event's; <code>cto-ledger audit</code> names the difference and <code>cto-ledger reindex</code> rebuilds the table from the journal.</p>"#,
        badge("failed"),
        esc(&altered.join(", "))
    );
    (doc, warning)
}

/// A JSON array's items; none when it is not an array.
fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub(super) fn gates(out: &mut String, rep: &Value) {
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

pub(super) fn sandbox(out: &mut String, rep: &Value) {
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

/// The tests' result and log; `log` reads a run-folder file's bytes, `None` when the
/// run recorded none (or a bundle withheld it).
pub(super) fn tests(
    out: &mut String,
    rep: &Value,
    log: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
) -> Result<()> {
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
    if let Some(bytes) = t["log"].as_str().map(log).transpose()?.flatten() {
        let text = String::from_utf8_lossy(&bytes).into_owned();
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
    diff(
        out,
        crate::bundle::changes::diff(&objs, &fixture, &workspace, &report.workspace_changes),
    );
}

/// The provider's changes as a unified diff, or why there is none.
pub(super) fn diff(out: &mut String, d: std::result::Result<String, String>) {
    match d {
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

/// Where the run's event stands in the signed log: the newest kept checkpoint covering
/// it, and its inclusion proof made and checked here as `verify-proof` checks it
/// offline (the note's signature by its recorded key, the Merkle path to the signed
/// root, the event's bytes to the proven leaf).
fn signed_log(home: &Home, run: &Value, out: &mut String) {
    out.push_str("<h2>Signed log</h2>");
    let id = val(&run["id"]);
    let Some(seq) = run["seq"].as_u64() else {
        out.push_str("<p>This run has no journal event.</p>");
        return;
    };
    let l = &home.ledger;
    let proof = match crate::tlog::covering(l, seq) {
        Ok(None) => {
            let _ = write!(
                out,
                "<p>Journal event {seq}. No signed checkpoint covers it yet: <code>cto-ledger checkpoint --sign</code>, then <code>cto-ledger prove run:{}</code>.</p>",
                esc(&id)
            );
            return;
        }
        Ok(Some(cp)) => crate::tlog::prove_inclusion(l, seq, Some(cp.size)).map(|p| (cp, p)),
        Err(e) => Err(e),
    };
    let checked = proof.map_err(|e| e.to_string()).and_then(|(cp, p)| {
        let key = l
            .keys()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|k| k.keyid == cp.keyid)
            .ok_or_else(|| format!("key {} is not recorded in this ledger", cp.keyid))?;
        let public = crate::tlog::public_of(&key).map_err(|e| e.to_string())?;
        let check = crate::offline::proof::verify(&p, &public)?;
        Ok((cp, key, check))
    });
    let (cp, key, check) = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = write!(out, "<p>{} {}</p>", badge("failed"), esc(&e));
            return;
        }
    };
    let state = if check.ok { "verified" } else { "failed" };
    let revoked = key
        .revoked
        .as_ref()
        .map(|r| format!("revoked in event {}: {}", r.seq, r.reason));
    out.push_str(&fields(&[
        ("journal event", esc(&seq.to_string())),
        (
            "checkpoint",
            esc(&format!(
                "size {}, signed {} by key {}",
                cp.size,
                cp.time,
                crate::commands::text::prefix(&cp.keyid, 16)
            )),
        ),
        ("key", esc(revoked.as_deref().unwrap_or("recorded, not revoked"))),
        ("inclusion proof", badge(state)),
        (
            "problems",
            match check.problems.is_empty() {
                true => "none".into(),
                false => esc(&check.problems.join("; ")),
            },
        ),
        (
            "check it offline",
            format!(
                "<code>cto-ledger key export --format pem &gt; key.pem; cto-ledger prove run:{} &gt; proof.json; cto-ledger verify-proof proof.json --key key.pem</code>",
                esc(&id)
            ),
        ),
    ]));
}
