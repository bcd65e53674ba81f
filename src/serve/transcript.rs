//! A model transcript (`backend/model-transcript.jsonl`) as a conversation: each
//! exchange's new messages, tool calls with their arguments, and the answer, each one
//! collapsible. Every text is escaped; nothing a model wrote is rendered as markup.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{details, esc, pre, val};

/// The most messages one exchange shows; the rest are counted.
const MESSAGES_SHOWN: usize = 200;

pub(super) fn render(jsonl: &[u8]) -> String {
    let mut out = String::new();
    let mut seen: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for line in jsonl.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(x) = serde_json::from_slice::<Value>(line) else {
            out.push_str(r#"<p class="error">a line that is not JSON</p>"#);
            continue;
        };
        let role = val(&x["role"]);
        let _ = write!(
            out,
            r#"<section class="exchange"><h2>#{} {} (turn {})</h2><p class="meta">{} {} {}</p>"#,
            esc(&val(&x["n"])),
            esc(&role),
            esc(&val(&x["turn"])),
            esc(&val(&x["started"])),
            esc(&val(&x["method"])),
            esc(&val(&x["path"]))
        );
        let msgs = x["request"]["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let before = seen.get(&role).cloned().unwrap_or_default();
        let extends = msgs.len() >= before.len() && msgs[..before.len()] == *before;
        let mut from = if extends { before.len() } else { 0 };
        if !extends {
            out.push_str("<p class=\"meta\">this request does not extend the last of its role: every message shown</p>");
        } else if from > 0 && msgs.get(from).is_some_and(|m| m["role"] == "assistant") {
            from += 1;
        }
        for m in msgs[from..].iter().take(MESSAGES_SHOWN) {
            message(
                &mut out,
                &val(&m["role"]),
                &crate::commands::show::message_text(&m["content"]),
                &m["tool_calls"],
            );
        }
        let r = &x["response"];
        message(
            &mut out,
            "assistant (answer)",
            r["content"].as_str().unwrap_or(""),
            &r["tool_calls"],
        );
        let usage = &r["usage"];
        let _ = write!(
            out,
            r#"<p class="meta">status {} {}{}</p></section>"#,
            esc(&val(&r["status"])),
            esc(&val(&r["finish_reason"])),
            if usage.is_object() {
                format!(", tokens {}", esc(&usage.to_string()))
            } else {
                String::new()
            }
        );
        seen.insert(role, msgs);
    }
    if out.is_empty() {
        out.push_str("<p>The transcript is empty.</p>");
    }
    out
}

fn message(out: &mut String, role: &str, text: &str, calls: &Value) {
    let calls = calls.as_array().map(Vec::as_slice).unwrap_or_default();
    // A message that only calls tools has no text: its calls are the message.
    let body = match text.is_empty() && !calls.is_empty() {
        true => r#"<p class="meta">no text: tool calls only</p>"#.to_string(),
        false => pre("text", text),
    };
    let _ = write!(
        out,
        r#"<div class="msg">{}"#,
        details(role, text.len() < 4000, &body)
    );
    for c in calls {
        let f = &c["function"];
        let summary = format!("tool call {}", val(&f["name"]));
        out.push_str(&details(
            &summary,
            false,
            &pre("args", f["arguments"].as_str().unwrap_or_default()),
        ));
    }
    out.push_str("</div>");
}
