//! The model side of a Stage 2 run: a loopback OpenAI-compatible chat-completions
//! server that either replays a fixture's model script (provider `scripted`, for
//! deterministic runs with no key and no network) or records and forwards every
//! exchange to an admitted endpoint. Either way every request and answer of the run is
//! written to `backend/model-transcript.jsonl`, one line per exchange, with no headers
//! (so no `Authorization`, no API key) and no URL query.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ledger::now;

/// The provider name of the harness's scripted model.
pub(crate) const SCRIPTED: &str = "scripted";
pub(crate) const SCRIPT_SCHEMA: &str = "cto-ledger/model-script/v1";
/// The one API the server speaks (pi's name for it).
pub(crate) const API: &str = "openai-completions";
pub(crate) const TRANSCRIPT: &str = "backend/model-transcript.jsonl";
const MAX_HEADER: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A model script: per agent role (the word after `# ` in its system prompt, lowercase),
/// the answers in order. Answer N goes to the request holding N assistant messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Script {
    pub schema: String,
    /// For the script's readers; the server does not use it.
    #[serde(default)]
    #[allow(dead_code)]
    pub description: String,
    pub roles: BTreeMap<String, Vec<Turn>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Turn {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolCall {
    pub name: String,
    pub arguments: Value,
}

/// Parses and checks a script; `origin` names it in errors.
pub(crate) fn parse_script(origin: &str, bytes: &[u8]) -> Result<Script> {
    let bad = |why: String| {
        Error::bad_input(
            format!("model script {origin}: {why}"),
            "see docs/stage2.md (model scripts) for the format",
        )
    };
    let s: Script = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if s.schema != SCRIPT_SCHEMA {
        return Err(bad(format!("schema must be `{SCRIPT_SCHEMA}`")));
    }
    if s.roles.is_empty() {
        return Err(bad("has no roles".into()));
    }
    for (role, turns) in &s.roles {
        if turns.is_empty() {
            return Err(bad(format!("role `{role}` has no answers")));
        }
        for (i, t) in turns.iter().enumerate() {
            if t.content.is_none() && t.tool_calls.is_empty() {
                return Err(bad(format!(
                    "role `{role}` answer {i} has neither content nor tool_calls"
                )));
            }
        }
    }
    Ok(s)
}

/// Where a recorded exchange goes: the admitted endpoint's origin (`scheme://host:port`),
/// and the base path the provider is given (`/v1`), as [`split_endpoint`] makes them.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub origin: String,
    pub base: String,
}

pub(crate) enum Backend {
    Scripted(Script),
    Forward(Upstream),
}

impl Backend {
    /// The path under the server's address that the provider's base URL names.
    pub(crate) fn base_path(&self) -> &str {
        match self {
            Backend::Scripted(_) => "/v1",
            Backend::Forward(up) => &up.base,
        }
    }
}

struct Shared {
    backend: Backend,
    model: String,
    transcript: Mutex<fs::File>,
    exchanges: AtomicUsize,
}

/// A running loopback server; stopped (and its threads joined) by [`ModelServer::stop`] or drop.
pub(crate) struct ModelServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl ModelServer {
    /// Listens on 127.0.0.1 on a port the kernel picks; every exchange is appended to
    /// `transcript`.
    pub(crate) fn start(backend: Backend, model: &str, transcript: &Path) -> Result<ModelServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(Error::io("listen on", Path::new("127.0.0.1:0")))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("listen on", Path::new("127.0.0.1:0")))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(Error::io("listen on", Path::new("127.0.0.1")))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(transcript)
            .map_err(Error::io("create", transcript))?;
        let shared = Arc::new(Shared {
            backend,
            model: model.to_string(),
            transcript: Mutex::new(file),
            exchanges: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (shared.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !st2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s2.clone();
                        workers.push(std::thread::spawn(move || serve(conn, &s)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            workers
        });
        Ok(ModelServer {
            port,
            stop,
            shared,
            accept: Some(accept),
        })
    }

    /// Stops accepting, waits for exchanges in flight, returns how many there were.
    pub(crate) fn stop(mut self) -> usize {
        self.halt();
        self.shared.exchanges.load(Ordering::SeqCst)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            for w in t.join().unwrap_or_default() {
                let _ = w.join();
            }
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.halt();
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts
        .next()
        .ok_or_else(|| bad("empty request"))?
        .to_string();
    let path = parts.next().ok_or_else(|| bad("no path"))?.to_string();
    let mut headers = Vec::new();
    let mut size = line.len();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        size += h.len();
        if size > MAX_HEADER {
            return Err(bad("headers too large"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut sz = String::new();
            r.read_line(&mut sz)?;
            let n = usize::from_str_radix(sz.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if n == 0 || body.len() + n > MAX_BODY {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if n > MAX_BODY {
            return Err(bad("body too large"));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

/// The path without its query (a key may ride in one), for the record.
fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

fn serve(conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(req) = read_request(&conn) else {
        return;
    };
    let started = now();
    let n = s.exchanges.fetch_add(1, Ordering::SeqCst) + 1;
    let mut record = match &s.backend {
        Backend::Scripted(script) => scripted(&conn, s, script, &req),
        Backend::Forward(up) => forward(&conn, up, &req),
    };
    let body: Value = serde_json::from_slice(&req.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
    let mut line = json!({
        "n": n,
        "started": started,
        "finished": now(),
        "method": req.method,
        "path": path_only(&req.path),
        "request": body,
    });
    if let Some(obj) = record.as_object_mut() {
        for (k, v) in std::mem::take(obj) {
            line[k] = v;
        }
    }
    let mut text = serde_json::to_vec(&line).expect("json");
    text.push(b'\n');
    if let Ok(mut f) = s.transcript.lock() {
        let _ = f.write_all(&text);
        let _ = f.sync_data();
    }
}

fn respond(mut conn: &TcpStream, status: u16, ctype: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

fn error(conn: &TcpStream, status: u16, message: &str) -> Value {
    let body = json!({"error": {"message": message, "type": "cto_ledger_scripted_model"}});
    respond(
        conn,
        status,
        "application/json",
        body.to_string().as_bytes(),
    );
    json!({"response": {"status": status, "error": message}})
}

/// The agent role a request is for: `# Implementer —` at the start of its system prompt.
pub(crate) fn role_of(messages: &[Value]) -> Option<String> {
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

fn scripted(conn: &TcpStream, s: &Shared, script: &Script, req: &Request) -> Value {
    let p = path_only(&req.path);
    if req.method == "GET" && p.ends_with("/models") {
        let body = json!({"object": "list", "data": [{"id": s.model, "object": "model", "owned_by": "cto-ledger"}]});
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
        out.extend(chunk(&s.model, &id, json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]), None));
        if let Some(c) = &content {
            for piece in pieces(c, 64) {
                out.extend(chunk(
                    &s.model,
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
            out.extend(chunk(&s.model, &id, first, None));
            for piece in pieces(args, 256) {
                let d = json!([{"index": 0, "delta": {"tool_calls": [{"index": c["index"], "function": {"arguments": piece}}]}, "finish_reason": null}]);
                out.extend(chunk(&s.model, &id, d, None));
            }
        }
        out.extend(chunk(
            &s.model,
            &id,
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            None,
        ));
        if body["stream_options"]["include_usage"] == true {
            out.extend(chunk(&s.model, &id, json!([]), Some(usage.clone())));
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
            "model": s.model, "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
        respond(conn, 200, "application/json", doc.to_string().as_bytes());
    }
    json!({
        "role": role,
        "turn": turn,
        "response": {"status": 200, "stream": body["stream"] == true, "finish_reason": finish,
                     "content": content, "tool_calls": calls},
    })
}

/// Headers never forwarded as they came (hop-by-hop, or set again by the client).
const HOP: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "accept-encoding",
];

/// Forwards the request to the endpoint and streams the answer back as it arrives,
/// keeping a copy of the answer's body (not its headers) for the transcript.
fn forward(mut conn: &TcpStream, up: &Upstream, req: &Request) -> Value {
    let url = format!("{}{}", up.origin, req.path);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return error(conn, 502, &format!("cannot start a client: {e}")),
    };
    rt.block_on(async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut rb = client.request(method, &url).body(req.body.clone());
        for (k, v) in &req.headers {
            if !HOP.contains(&k.as_str()) {
                rb = rb.header(k, v);
            }
        }
        let mut resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return error(conn, 502, &format!("the endpoint {} did not answer: {e}", up.origin))
            }
        };
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n",
            resp.status().canonical_reason().unwrap_or("")
        );
        let _ = conn.write_all(head.as_bytes());
        let mut copy = Vec::new();
        while let Ok(Some(bytes)) = resp.chunk().await {
            let _ = conn.write_all(&bytes);
            let _ = conn.flush();
            copy.extend_from_slice(&bytes);
        }
        let text = String::from_utf8_lossy(&copy).into_owned();
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        json!({"endpoint": up.origin, "response": {"status": status, "content_type": ctype, "body": body}})
    })
}

/// Splits an endpoint URL into the origin to forward to and the base path the provider
/// is given (`http://localhost:8080/v1` → `http://localhost:8080`, `/v1`).
pub(crate) fn split_endpoint(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains('@') || path.contains('?') || path.contains('#') {
        return None;
    }
    Some((
        format!("{scheme}://{host}"),
        path.trim_end_matches('/').to_string(),
    ))
}

/// The script a `scripted/NAME` model names in a fixture: `model-scripts/NAME.json`.
pub(crate) fn script_of<'a>(fixture: &'a super::fixture::Fixture, name: &str) -> Option<&'a [u8]> {
    fixture
        .model_scripts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
}

/// Writes pi's `models.json` (under the provider's `$HOME/.pi/agent/`) naming the
/// loopback server as the `openai` provider's base URL: Case's pi adapter looks the
/// API key up by provider name, so only `openai` (with `OPENAI_API_KEY` set) gets one.
pub(crate) fn write_pi_models(home: &Path, base_url: &str, model: &str) -> Result<PathBuf> {
    let dir = home.join(".pi/agent");
    fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let doc = json!({"providers": {"openai": {
        "baseUrl": base_url,
        "api": API,
        "apiKey": "OPENAI_API_KEY",
        "models": [{"id": model, "name": model, "reasoning": false, "input": ["text"],
                    "contextWindow": 128000, "maxTokens": 16384}],
    }}});
    let p = dir.join("models.json");
    fs::write(&p, serde_json::to_vec_pretty(&doc).expect("json"))
        .map_err(Error::io("write", &p))?;
    Ok(p)
}
