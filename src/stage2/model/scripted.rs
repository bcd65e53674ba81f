//! The scripted model: answers from a fixture's script, streamed as a model streams.

use std::net::TcpStream;

use serde_json::{json, Value};

use super::{error, path_only};
use crate::model::{Script, Turn};
use crate::net::{respond, Request};

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
    let a = match pick(script, &body) {
        Ok(a) => a,
        Err(why) => return error(conn, 400, &why),
    };
    let stream = body["stream"] == true;
    if stream {
        let usage = body["stream_options"]["include_usage"] == true;
        respond(
            conn,
            200,
            "text/event-stream",
            &a.streamed(model, req, usage),
        );
    } else {
        respond(conn, 200, "application/json", &a.whole(model, req));
    }
    json!({
        "role": a.role,
        "turn": a.turn,
        "response": {"status": 200, "stream": stream, "finish_reason": a.finish(),
                     "content": a.turn_of.content, "tool_calls": a.calls},
    })
}

/// The script's answer to one request: for its role, the answer numbered by how many
/// assistant messages the request already holds.
struct Answer<'a> {
    role: String,
    turn: usize,
    turn_of: &'a Turn,
    /// Its tool calls as chat-completion objects.
    calls: Vec<Value>,
}

fn pick<'a>(script: &'a Script, body: &Value) -> std::result::Result<Answer<'a>, String> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let role =
        role_of(&messages).ok_or("no system prompt naming an agent role (`# Implementer —`)")?;
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let turns = script
        .roles
        .get(&role)
        .ok_or_else(|| format!("the script has no answers for role `{role}`"))?;
    let t = turns.get(turn).ok_or_else(|| {
        format!(
            "the script for role `{role}` has {} answers; this request wants answer {}",
            turns.len(),
            turn + 1
        )
    })?;
    let calls = t
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"index": i, "id": format!("call_{role}_{turn}_{i}"), "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments.to_string()}})
        })
        .collect();
    Ok(Answer {
        role,
        turn,
        turn_of: t,
        calls,
    })
}

impl Answer<'_> {
    fn id(&self) -> String {
        format!("chatcmpl-scripted-{}-{}", self.role, self.turn)
    }

    fn finish(&self) -> &'static str {
        if self.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    fn usage(&self, req: &Request) -> Value {
        let completion_tokens = self.turn_of.content.as_deref().map_or(0, |c| c.len() / 4)
            + self
                .calls
                .iter()
                .map(|c| c.to_string().len() / 4)
                .sum::<usize>();
        json!({"prompt_tokens": req.body.len() / 4, "completion_tokens": completion_tokens,
               "total_tokens": req.body.len() / 4 + completion_tokens})
    }

    /// As a model streams it: text in pieces, each tool call's id and name first and
    /// then its arguments in pieces, the finish reason, usage if asked, `[DONE]`.
    fn streamed(&self, model: &str, req: &Request, with_usage: bool) -> Vec<u8> {
        let id = self.id();
        let delta =
            |d: Value, finish: Value| json!([{"index": 0, "delta": d, "finish_reason": finish}]);
        let mut out = chunk(
            model,
            &id,
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            None,
        );
        if let Some(c) = &self.turn_of.content {
            for piece in pieces(c, 64) {
                out.extend(chunk(
                    model,
                    &id,
                    delta(json!({"content": piece}), Value::Null),
                    None,
                ));
            }
        }
        for c in &self.calls {
            let args = c["function"]["arguments"].as_str().unwrap_or_default();
            let first = json!({"tool_calls": [{"index": c["index"], "id": c["id"], "type": "function",
                "function": {"name": c["function"]["name"], "arguments": ""}}]});
            out.extend(chunk(model, &id, delta(first, Value::Null), None));
            for piece in pieces(args, 256) {
                let d = json!({"tool_calls": [{"index": c["index"], "function": {"arguments": piece}}]});
                out.extend(chunk(model, &id, delta(d, Value::Null), None));
            }
        }
        out.extend(chunk(
            model,
            &id,
            delta(json!({}), json!(self.finish())),
            None,
        ));
        if with_usage {
            out.extend(chunk(model, &id, json!([]), Some(self.usage(req))));
        }
        out.extend(b"data: [DONE]\n\n");
        out
    }

    /// One chat-completion document.
    fn whole(&self, model: &str, req: &Request) -> Vec<u8> {
        let mut message = json!({"role": "assistant", "content": self.turn_of.content});
        if !self.calls.is_empty() {
            message["tool_calls"] = json!(self
                .calls
                .iter()
                .map(|c| json!({"id": c["id"], "type": "function", "function": c["function"]}))
                .collect::<Vec<_>>());
        }
        let doc = json!({"id": self.id(), "object": "chat.completion", "created": chrono::Utc::now().timestamp(),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": self.finish()}],
            "usage": self.usage(req)});
        doc.to_string().into_bytes()
    }
}
