//! `cto-ledger show REF`: any node of the graph and its neighbours. A run leads with
//! what an auditor reads first (status, verdict, reason, gates, provider, model,
//! sandbox, tests, timings), then its artifacts; `--transcript` prints its model
//! conversation as text.

use std::io::Write;

use serde_json::Value;

use super::text::{self, shown, R};
use super::{Context, Output, RefArg};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::query::Node;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: RefArg,
    /// For a run: its model conversation as text (role, messages, tool calls, results)
    #[arg(long)]
    transcript: bool,
}

/// The most of a report or transcript read back from the store to show it.
const SHOWN_MAX: u64 = 64 << 20;
/// What one message, tool call or result shows before it is elided.
const WIDTH: usize = 100;
use crate::stage2::model::TRANSCRIPT;

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let (home, node) = a.target.resolve(cx)?;
    let doc = home.ledger.describe(&node)?;
    let Node::Run(id) = &node else {
        if a.transcript {
            return Err(Error::bad_input(
                format!(
                    "--transcript shows a run's model conversation; {} is not a run",
                    a.target.as_str()
                ),
                "give a run: cto-ledger show run:latest --transcript",
            ));
        }
        return Ok(Output::doc(doc, |w, v| text::value(w, v, 0)));
    };
    let object = |path: &str| artifact(&doc, path);
    if a.transcript {
        let Some(t) = object(TRANSCRIPT) else {
            return Err(Error::bad_input(
                format!("run:{id} has no {TRANSCRIPT}: it called no model (the fake lane's `solve` calls none)"),
                "runs with a model (--model, or --fake-behavior agent) keep their transcript",
            ));
        };
        let exchanges: Vec<Value> = read(&home, &t, SHOWN_MAX)?
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
            .collect();
        return Ok(Output::doc(exchanges, transcript_text));
    }
    let report = report_of(&home, &doc, SHOWN_MAX)?;
    let shown_run = RunShown { doc, report };
    Ok(Output::doc(shown_run, run_text))
}

/// The object a described run (`describe`'s document) recorded at `path`.
pub(crate) fn artifact(doc: &Value, path: &str) -> Option<ObjectId> {
    doc["run"]["artifacts"]
        .as_array()?
        .iter()
        .find(|x| x["path"] == path)
        .and_then(|x| x["object"].as_str()?.parse().ok())
}

/// A described run's `report.json`, read through [`read`]; `null` when it has none or
/// it is not JSON.
pub(crate) fn report_of(home: &Home, doc: &Value, max: u64) -> Result<Value> {
    Ok(doc["run"]["report_object"]
        .as_str()
        .and_then(|o| o.parse::<ObjectId>().ok())
        .map(|o| read(home, &o, max))
        .transpose()?
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null))
}

/// An object's bytes, verified, at most `max`.
pub(crate) fn read(home: &Home, id: &ObjectId, max: u64) -> Result<Vec<u8>> {
    match home.store.read_at_most(id, max)? {
        Some((_, bytes)) => Ok(bytes),
        None => Err(Error::bad_input(
            format!("{id} is larger than {} MiB, too large to show", max >> 20),
            format!("read it with `cto-ledger cat {id}`"),
        )),
    }
}

/// As JSON, what `show` prints for any node; as text, the run's summary first.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct RunShown {
    doc: Value,
    #[serde(skip)]
    report: Value,
}

fn str_of(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => shown(s),
        other => other.to_string(),
    }
}

fn run_text(w: &mut dyn Write, s: &RunShown) -> R {
    let (run, rep) = (&s.doc["run"], &s.report);

    writeln!(
        w,
        "run:{}  {} lane, fixture {}, event {}",
        str_of(&run["id"]),
        str_of(&run["lane"]),
        str_of(&run["fixture"]),
        str_of(&run["seq"])
    )?;
    field(w, "status", str_of(&run["status"]))?;
    field(w, "verdict", str_of(&run["verdict"]))?;
    if !rep["reason"].is_null() {
        field(w, "reason", str_of(&rep["reason"]))?;
    }
    if let Some(gates) = rep["gates"].as_array() {
        writeln!(w, "  gates")?;
        for g in gates {
            let mark = if g["passed"] == true {
                "ok     "
            } else {
                "BLOCKED"
            };
            writeln!(
                w,
                "    {mark} {:<24} {}",
                str_of(&g["name"]),
                str_of(&g["detail"])
            )?;
        }
    }
    let p = &run["provider"];
    let provider = match p["name"].as_str() {
        Some(n) => format!(
            "{} ({}), pin {}, commit {}",
            shown(n),
            str_of(&p["id"]),
            str_of(&p["pin"]),
            str_of(&p["commit_id"])
        ),
        None => "not admitted".into(),
    };
    field(w, "provider", provider)?;
    field(
        w,
        "",
        format!(
            "{}  {}",
            str_of(&run["provider_path"]),
            str_of(&run["provider_object"])
        ),
    )?;
    let started = match run["provider_started"].as_i64() {
        Some(1) => "yes",
        _ => "no (the run stopped before it)",
    };
    field(w, "started", format!("provider started: {started}"))?;
    field(w, "model", str_of(&run["model"]))?;
    field(w, "sandbox", str_of(&run["sandbox"]))?;
    tests_text(w, rep)?;
    field(
        w,
        "time",
        format!(
            "{} to {} ({} s)",
            str_of(&run["started"]),
            str_of(&run["finished"]),
            str_of(&rep["duration_seconds"])
        ),
    )?;
    field(w, "folder", str_of(&run["run_dir"]))?;
    field(w, "report", str_of(&run["report_object"]))?;
    field(w, "tree", str_of(&run["tree_object"]))?;
    artifacts_text(w, run)
}

/// `key  value`, aligned under the run's first line.
fn field(w: &mut dyn Write, k: &str, v: String) -> R {
    writeln!(w, "  {k:<10} {v}")
}

/// What judged the run: the tests as they ran, and what the provider tampered with.
fn tests_text(w: &mut dyn Write, rep: &Value) -> R {
    let t = &rep["tests"];
    if !t.is_null() {
        let argv: Vec<String> = t["argv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        field(
            w,
            "tests",
            format!(
                "{} (exit {}): {}",
                str_of(&t["result"]),
                str_of(&t["exit_code"]),
                text::shell_quoted(&argv)
            ),
        )?;
    }
    if let Some(tampered) = rep["judge"]["tampered"]
        .as_array()
        .filter(|t| !t.is_empty())
    {
        let paths: Vec<String> = tampered.iter().map(|t| str_of(&t["path"])).collect();
        field(w, "tampered", paths.join(", "))?;
    }
    Ok(())
}

/// The run's artifacts, a table indented under the summary.
fn artifacts_text(w: &mut dyn Write, run: &Value) -> R {
    if let Some(arts) = run["artifacts"].as_array() {
        writeln!(w, "  artifacts ({})", arts.len())?;
        let rows: Vec<Vec<String>> = arts
            .iter()
            .map(|a| vec![str_of(&a["path"]), str_of(&a["object"])])
            .collect();
        let mut buf = Vec::new();
        text::table(&mut buf, &["PATH".into(), "OBJECT".into()], &rows)?;
        for l in String::from_utf8_lossy(&buf).lines() {
            writeln!(w, "    {l}")?;
        }
    }
    Ok(())
}

/// One line of a message: newlines shown as `⏎`, at most `WIDTH` characters.
fn oneline(s: &str) -> String {
    let flat = shown(&s.replace('\n', "⏎"));
    let n = flat.chars().count();
    if n <= WIDTH {
        return flat;
    }
    let head: String = flat.chars().take(WIDTH).collect();
    format!("{head}… ({n} characters)")
}

fn transcript_text(w: &mut dyn Write, exchanges: &Vec<Value>) -> R {
    // Each request carries the whole conversation so far: only what is new is shown,
    // unless a request does not extend the last one of its role (its history rewritten).
    let mut seen: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for x in exchanges {
        let role = str_of(&x["role"]);
        writeln!(
            w,
            "#{} {role} (turn {}) {}  {} {}",
            str_of(&x["n"]),
            str_of(&x["turn"]),
            str_of(&x["started"]),
            str_of(&x["method"]),
            str_of(&x["path"])
        )?;
        let msgs = x["request"]["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let before = seen.get(&role).map(Vec::as_slice).unwrap_or_default();
        let extends = msgs.len() >= before.len() && msgs[..before.len()] == *before;
        let mut from = if extends { before.len() } else { 0 };
        if !extends {
            writeln!(
                w,
                "  (this request does not extend the last of its role: all {} messages)",
                msgs.len()
            )?;
        } else if from > 0 && msgs.get(from).is_some_and(|m| m["role"] == "assistant") {
            from += 1; // the answer shown last time
        }
        for m in &msgs[from..] {
            let content = message_text(&m["content"]);
            writeln!(
                w,
                "  > {}: {}",
                oneline(&str_of(&m["role"])),
                oneline(&content)
            )?;
            calls(w, "    call", &m["tool_calls"])?;
        }
        let r = &x["response"];
        if let Some(c) = r["content"].as_str() {
            writeln!(w, "  < assistant: {}", oneline(c))?;
        }
        calls(w, "  < call", &r["tool_calls"])?;
        writeln!(
            w,
            "  < {} {}",
            str_of(&r["status"]),
            str_of(&r["finish_reason"])
        )?;
        seen.insert(role, msgs.to_vec());
    }
    Ok(())
}

/// A message's content as text: a string, or the text of its content parts
/// (`[{"type": "text", "text": …}]`), else its JSON.
pub(crate) fn message_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(parts) if parts.iter().all(|p| p["text"].is_string()) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The most tool calls one message shows; the rest are counted.
const CALLS_SHOWN: usize = 20;

fn calls(w: &mut dyn Write, prefix: &str, list: &Value) -> R {
    let all = list.as_array().map(Vec::as_slice).unwrap_or_default();
    for c in all.iter().take(CALLS_SHOWN) {
        writeln!(w, "{prefix} {}", call(c))?;
    }
    if all.len() > CALLS_SHOWN {
        writeln!(w, "{prefix} … and {} more", all.len() - CALLS_SHOWN)?;
    }
    Ok(())
}

fn call(c: &Value) -> String {
    let f = &c["function"];
    oneline(&format!(
        "{}({})",
        f["name"].as_str().unwrap_or("?"),
        f["arguments"].as_str().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn text(exchanges: Vec<serde_json::Value>) -> String {
        let mut out = Vec::new();
        super::transcript_text(&mut out, &exchanges).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_rewritten_history_is_shown_whole_and_tool_calls_are_counted() {
        let ask = |msgs: serde_json::Value| json!({"n": 1, "role": "r", "request": {"messages": msgs}, "response": {"content": "ok", "status": 200}});
        let first =
            json!([{"role": "system", "content": "be good"}, {"role": "user", "content": "task"}]);
        let extended = json!([{"role": "system", "content": "be good"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]);
        let rewritten =
            json!([{"role": "system", "content": "be evil"}, {"role": "user", "content": "other"}]);
        let t = text(vec![ask(first), ask(extended), ask(rewritten)]);
        assert_eq!(t.matches("> system: be good").count(), 1, "{t}");
        assert!(
            t.contains("> user: more") && !t.contains("> assistant: ok"),
            "{t}"
        );
        assert!(
            t.contains("does not extend the last of its role: all 2 messages"),
            "{t}"
        );
        assert!(
            t.contains("> system: be evil") && t.contains("> user: other"),
            "{t}"
        );
        let many: Vec<_> = (0..30)
            .map(|i| json!({"function": {"name": format!("f{i}"), "arguments": "{}"}}))
            .collect();
        let t = text(vec![
            json!({"n": 1, "role": "r", "request": {"messages": []}, "response": {"tool_calls": many, "status": 200}}),
        ]);
        assert_eq!(t.matches("< call f").count(), 20, "{t}");
        assert!(t.contains("… and 10 more"), "{t}");
    }
}
