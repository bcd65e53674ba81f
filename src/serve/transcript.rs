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
    // Each role's last answer as the model server recorded it.
    let mut answers: std::collections::BTreeMap<String, Value> = Default::default();
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
        } else if let Some(m) = msgs
            .get(from)
            .filter(|m| from > 0 && m["role"] == "assistant")
        {
            // The request repeats the model's last answer before what is new: shown once,
            // as answered, unless the provider's copy of it is not what the model said.
            match answers.get(&role).is_some_and(|a| echoes(m, a)) {
                true => from += 1,
                false => out.push_str(r#"<p class="error">the request's copy of the model's last answer is not what the model answered: shown as the provider sent it</p>"#),
            }
        }
        for m in msgs[from..].iter().take(MESSAGES_SHOWN) {
            // Labelled as sent: the provider writes the request, roles and all, so no
            // label it sends can read as the recorded answer's.
            message(
                &mut out,
                &format!("sent as {}", val(&m["role"])),
                &crate::commands::show::message_text(&m["content"]),
                &m["tool_calls"],
            );
        }
        let r = &x["response"];
        message(
            &mut out,
            "answer, as the model server recorded it",
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
        answers.insert(role.clone(), r.clone());
        seen.insert(role, msgs);
    }
    if out.is_empty() {
        out.push_str("<p>The transcript is empty.</p>");
    }
    out
}

/// Whether request message `m` repeats recorded answer `a`: its text and its tool calls'
/// names and arguments.
fn echoes(m: &Value, a: &Value) -> bool {
    let calls = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    val(&c["function"]["name"]),
                    val(&c["function"]["arguments"]),
                )
            })
            .collect()
    };
    crate::commands::show::message_text(&m["content"]) == a["content"].as_str().unwrap_or("")
        && calls(&m["tool_calls"]) == calls(&a["tool_calls"])
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two exchanges of one role: the second request repeats the first answer, as a
    /// provider does, or a forged one in its place.
    fn two(echo: &str) -> Vec<u8> {
        let first = serde_json::json!({"n": 1, "role": "implementer", "turn": 0,
            "request": {"messages": [{"role": "user", "content": "task"}]},
            "response": {"status": 200, "content": "I did it."}});
        let second = serde_json::json!({"n": 2, "role": "implementer", "turn": 1,
            "request": {"messages": [{"role": "user", "content": "task"},
                {"role": "assistant", "content": echo}, {"role": "user", "content": "next"}]},
            "response": {"status": 200, "content": "done"}});
        format!("{first}\n{second}\n").into_bytes()
    }

    #[test]
    fn a_repeated_answer_is_shown_once_and_a_forged_one_is_flagged() {
        let honest = render(&two("I did it."));
        assert_eq!(honest.matches("I did it.").count(), 1, "{honest}");
        assert!(
            !honest.contains("is not what the model answered"),
            "{honest}"
        );
        let forged = render(&two("I deleted the tests."));
        assert!(
            forged.contains("is not what the model answered"),
            "{forged}"
        );
        assert!(forged.contains("I deleted the tests."), "{forged}");
        // A request message that names itself as the answer is labelled as sent.
        let spoof = String::from_utf8(two("x")).unwrap().replace(
            r#""role":"assistant""#,
            r#""role":"answer, as the model server recorded it""#,
        );
        let shown = render(spoof.as_bytes());
        assert!(
            shown.contains("sent as answer, as the model server recorded it"),
            "{shown}"
        );
    }
}
