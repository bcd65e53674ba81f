//! `agent`: Case's pipeline as a model client, phase by phase, running the tool calls
//! the model answers with in the repo.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use std::io::Write;

use super::{die, json};

/// One streamed chat completion: (text, tool calls as (id, name, arguments), finish reason).
type Answer = (String, Vec<(String, String, String)>, String);

fn post(base: &str, body: &serde_json::Value) -> Result<Answer, String> {
    use std::io::Read;
    let rest = base
        .strip_prefix("http://")
        .ok_or("the model's baseUrl is not http://")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn =
        std::net::TcpStream::connect(hostport).map_err(|e| format!("connect {hostport}: {e}"))?;
    let payload = body.to_string();
    let key = env::var("OPENAI_API_KEY").unwrap_or_default();
    let req = format!(
        "POST {path}/chat/completions HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    conn.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("HTTP {status}: {body}"));
    }
    let (mut content, mut calls, mut finish) = (
        String::new(),
        Vec::<(String, String, String)>::new(),
        String::new(),
    );
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let c: serde_json::Value =
            serde_json::from_str(data).map_err(|e| format!("bad chunk {data}: {e}"))?;
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        if let Some(t) = choice["delta"]["content"].as_str() {
            content.push_str(t);
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap_or(0) as usize;
            while calls.len() <= i {
                calls.push(Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.to_string();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                calls[i].1.push_str(n);
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                calls[i].2.push_str(a);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    Ok((content, calls, finish))
}

/// Runs one tool call in the repo, as pi's tools would; returns what the model is told.
fn run_tool(repo: &Path, name: &str, args: &serde_json::Value) -> String {
    let path = |a: &serde_json::Value| repo.join(a["path"].as_str().unwrap_or(""));
    match name {
        "write" => match fs::write(path(args), args["content"].as_str().unwrap_or("")) {
            Ok(()) => format!("Successfully wrote {}", args["path"].as_str().unwrap_or("")),
            Err(e) => format!("Error: {e}"),
        },
        "read" => fs::read_to_string(path(args)).unwrap_or_else(|e| format!("Error: {e}")),
        "edit" => {
            let p = path(args);
            let (old, new) = (
                args["oldText"].as_str().unwrap_or(""),
                args["newText"].as_str().unwrap_or(""),
            );
            match fs::read_to_string(&p) {
                Ok(t) if !old.is_empty() && t.contains(old) => {
                    match fs::write(&p, t.replacen(old, new, 1)) {
                        Ok(()) => "Successfully edited".into(),
                        Err(e) => format!("Error: {e}"),
                    }
                }
                Ok(_) => "Error: oldText not found".into(),
                Err(e) => format!("Error: {e}"),
            }
        }
        other => format!("Error: the fake agent has no tool `{other}`"),
    }
}

/// The status of the last `<<<AGENT_RESULT {json} AGENT_RESULT>>>` block, as Case parses it.
fn agent_status(text: &str) -> Option<String> {
    let start = text.rfind("<<<AGENT_RESULT")? + "<<<AGENT_RESULT".len();
    let end = start + text[start..].find("AGENT_RESULT>>>")?;
    let v: serde_json::Value = serde_json::from_str(text[start..end].trim()).ok()?;
    v["status"].as_str().map(String::from)
}

/// The provider's home, and the base URL pi's `models.json` there gives the model.
fn model_server() -> (PathBuf, String) {
    let home = PathBuf::from(env::var_os("HOME").unwrap_or_else(|| die("HOME is not set")));
    let models = json(&home.join(".pi/agent/models.json"));
    let base = models["providers"]["openai"]["baseUrl"]
        .as_str()
        .unwrap_or_else(|| die("models.json has no providers.openai.baseUrl"))
        .to_string();
    (home, base)
}

/// `model-flood`: sends the model server 24 requests of 1 MiB each, whatever they get
/// back; notes in `$HOME/model-flood.txt` how many were answered and how many refused.
pub(crate) fn flood_model() {
    let (home, base) = model_server();
    let big = "A".repeat(1 << 20);
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..24 {
        let body =
            serde_json::json!({"model": "x", "messages": [{"role": "user", "content": big}]});
        match post(&base, &body) {
            Err(e) if e.starts_with("HTTP 503") => refused += 1,
            _ => answered += 1,
        }
    }
    let _ = fs::write(
        home.join("model-flood.txt"),
        format!("answered {answered} refused {refused}\n"),
    );
}

pub(crate) fn agent(repo: &Path, model: &str, task_id: &str) {
    let (_, base) = model_server();
    let task = fs::read_to_string(repo.join(format!(".case/tasks/active/{task_id}.md")))
        .unwrap_or_default();
    let tool = |name: &str| serde_json::json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}});
    let mut failed = false;
    for role in [
        "Implementer",
        "Verifier",
        "Reviewer",
        "Closer",
        "Retrospective",
    ] {
        if failed && role != "Retrospective" {
            continue;
        }
        let tools: Vec<serde_json::Value> = match role {
            "Implementer" | "Retrospective" => ["read", "write", "edit", "bash"].map(tool).to_vec(),
            _ => ["read", "bash"].map(tool).to_vec(),
        };
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": format!("# {role} — fake Case agent\nEnd with <<<AGENT_RESULT {{...}} AGENT_RESULT>>>.")}),
            serde_json::json!({"role": "user", "content": format!("Task {task_id}:\n{task}")}),
        ];
        let mut status = None;
        for _ in 0..10 {
            let body = serde_json::json!({"model": model, "messages": messages, "stream": true,
                "stream_options": {"include_usage": true}, "tools": tools});
            let (content, calls, finish) = match post(&base, &body) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("ca (fake): {role}: model request failed: {e}");
                    break;
                }
            };
            let mut assistant = serde_json::json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                assistant["tool_calls"] = calls
                    .iter()
                    .map(|(id, n, a)| serde_json::json!({"id": id, "type": "function", "function": {"name": n, "arguments": a}}))
                    .collect();
            }
            messages.push(assistant);
            if finish == "tool_calls" {
                for (id, n, a) in &calls {
                    let args: serde_json::Value = serde_json::from_str(a).unwrap_or_default();
                    let out = run_tool(repo, n, &args);
                    println!("ca (fake): {role} ran {n}: {out}");
                    messages.push(
                        serde_json::json!({"role": "tool", "tool_call_id": id, "content": out}),
                    );
                }
                continue;
            }
            status = agent_status(&content);
            break;
        }
        println!(
            "ca (fake): [{}] {}",
            role.to_lowercase(),
            status
                .as_deref()
                .unwrap_or("failed: AGENT_RESULT start delimiter not found")
        );
        if status.as_deref() != Some("completed") {
            failed = true;
        }
    }
    println!(
        "ca (fake): {}",
        if failed {
            "Pipeline failed."
        } else {
            "Pipeline completed successfully"
        }
    );
}
