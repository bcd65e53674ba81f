//! The scripted model: answers from a fixture's script, streamed as a model streams.

use std::net::TcpStream;

use serde_json::{json, Value};

use super::{error, path_only, respond, Request};
use crate::model::Script;

/// The agent role a request is for: `# Implementer —` at the start of its system prompt.
pub(super) fn role_of(messages: &[Value]) -> Option<String> {
    let text = |m: &Value| -> String {
        match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    messages
        .iter()
        .filter(|m| matches!(m["role"].as_str(), Some("system" | "developer")))
        .map(text)
        .find_map(|t| {
            let rest = t.trim_start().strip_prefix("# ")?;
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!word.is_empty()).then(|| word.to_lowercase())
        })
}

fn chunk(model: &str, id: &str, choices: Value, usage: Option<Value>) -> Vec<u8> {
    let mut c = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": choices,
    });
    if let Some(u) = usage {
        c["usage"] = u;
    }
    format!("data: {c}\n\n").into_bytes()
}

/// Text split at character boundaries into pieces of about `n` bytes, as a model streams.
fn pieces(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + n).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        out.push(&s[start..end]);
        start = end;
    }
    out
}

/// Answers one request from `script` and returns what the transcript records of it.
pub(super) fn answer(conn: &TcpStream, model: &str, script: &Script, req: &Request) -> Value {
    let p = path_only(&req.path);
    if req.method == "GET" && p.ends_with("/models") {
        let body = json!({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "cto-ledger"}]});
        respond(conn, 200, "application/json", body.to_string().as_bytes());
        return json!({"response": {"status": 200}});
    }
    if req.method != "POST" || !p.ends_with("/chat/completions") {
        return error(
            conn,
            404,
            &format!(
                "{} {p}: the scripted model serves POST /v1/chat/completions",
                req.method
            ),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(conn, 400, "the request body is not JSON");
    };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let Some(role) = role_of(&messages) else {
        return error(
            conn,
            400,
            "no system prompt naming an agent role (`# Implementer —`)",
        );
    };
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let Some(turns) = script.roles.get(&role) else {
        return error(
            conn,
            400,
            &format!("the script has no answers for role `{role}`"),
        );
    };
    let Some(t) = turns.get(turn) else {
        return error(
            conn,
            400,
            &format!(
                "the script for role `{role}` has {} answers; this request wants answer {}",
                turns.len(),
                turn + 1
            ),
        );
    };
    let id = format!("chatcmpl-scripted-{role}-{turn}");
    let calls: Vec<Value> = t
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"index": i, "id": format!("call_{role}_{turn}_{i}"), "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments.to_string()}})
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let content = t.content.clone();
    let completion_tokens = content.as_deref().map_or(0, |c| c.len() / 4)
        + calls.iter().map(|c| c.to_string().len() / 4).sum::<usize>();
    let usage = json!({"prompt_tokens": req.body.len() / 4, "completion_tokens": completion_tokens,
                       "total_tokens": req.body.len() / 4 + completion_tokens});
    if body["stream"] == true {
        let mut out = Vec::new();
        out.extend(chunk(model, &id, json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]), None));
        if let Some(c) = &content {
            for piece in pieces(c, 64) {
                out.extend(chunk(
                    model,
                    &id,
                    json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
                    None,
                ));
            }
        }
        // Each tool call streamed as models do: id and name first, then its arguments in pieces.
        for c in &calls {
            let args = c["function"]["arguments"].as_str().unwrap_or_default();
            let first = json!([{"index": 0, "delta": {"tool_calls": [{"index": c["index"], "id": c["id"], "type": "function",
                "function": {"name": c["function"]["name"], "arguments": ""}}]}, "finish_reason": null}]);
            out.extend(chunk(model, &id, first, None));
            for piece in pieces(args, 256) {
                let d = json!([{"index": 0, "delta": {"tool_calls": [{"index": c["index"], "function": {"arguments": piece}}]}, "finish_reason": null}]);
                out.extend(chunk(model, &id, d, None));
            }
        }
        out.extend(chunk(
            model,
            &id,
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            None,
        ));
        if body["stream_options"]["include_usage"] == true {
            out.extend(chunk(model, &id, json!([]), Some(usage.clone())));
        }
        out.extend(b"data: [DONE]\n\n");
        respond(conn, 200, "text/event-stream", &out);
    } else {
        let mut message = json!({"role": "assistant", "content": content});
        if !calls.is_empty() {
            message["tool_calls"] = json!(calls
                .iter()
                .map(|c| json!({"id": c["id"], "type": "function", "function": c["function"]}))
                .collect::<Vec<_>>());
        }
        let doc = json!({"id": id, "object": "chat.completion", "created": chrono::Utc::now().timestamp(),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
        respond(conn, 200, "application/json", doc.to_string().as_bytes());
    }
    json!({
        "role": role,
        "turn": turn,
        "response": {"status": 200, "stream": body["stream"] == true, "finish_reason": finish,
                     "content": content, "tool_calls": calls},
    })
}
