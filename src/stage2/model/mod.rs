//! The model side of a Stage 2 run: a loopback OpenAI-compatible chat-completions
//! server that either replays a fixture's model script (provider `scripted`, for
//! deterministic runs with no key and no network; [`scripted`]) or records and forwards
//! every exchange to an admitted endpoint ([`forward`]). Either way every request and
//! answer of the run is written to `backend/model-transcript.jsonl`, one line per
//! exchange, with no headers (so no `Authorization`, no API key) and no URL query.

mod forward;
mod scripted;

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ledger::now;
use crate::model::{Endpoint, Script, API};

pub(crate) const TRANSCRIPT: &str = "backend/model-transcript.jsonl";
const MAX_HEADER: usize = 64 * 1024;
/// The largest request a provider may send (a conversation so far, as JSON).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Exchanges at once; more are answered 503. With the response limit this bounds the
/// server's memory (each exchange holds its request and at most the limit of its answer).
const MAX_CONNECTIONS: usize = 4;

/// What bounds the server: when the run ends at the latest, and how much of one answer
/// is relayed and kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub deadline: std::time::Instant,
    pub response_bytes: u64,
    /// The most the transcript may hold: no exchange is served past it.
    pub transcript_bytes: u64,
}

/// What answers the provider's model requests.
pub(crate) enum Backend {
    Scripted(Script),
    /// Recorded and forwarded to an admitted endpoint.
    Forward(Endpoint),
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
    /// Exchanges in progress.
    live: AtomicUsize,
    bounds: Bounds,
    /// Set when the run is over: exchanges in flight stop.
    stop: Arc<AtomicBool>,
    /// Connections in progress, by number, shut down when the run is over (a read that
    /// waits on a provider that sends nothing returns at once).
    conns: Mutex<std::collections::HashMap<usize, TcpStream>>,
    /// Whether an answer was cut at the response limit.
    cut: AtomicBool,
    /// Bytes the transcript holds, and whether an exchange was refused for want of room.
    written: std::sync::atomic::AtomicU64,
    full: AtomicBool,
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
    /// `transcript`; nothing runs past `bounds`.
    pub(crate) fn start(
        backend: Backend,
        model: &str,
        transcript: &Path,
        bounds: Bounds,
    ) -> Result<ModelServer> {
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
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            backend,
            model: model.to_string(),
            transcript: Mutex::new(file),
            exchanges: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            bounds,
            stop: stop.clone(),
            conns: Mutex::new(std::collections::HashMap::new()),
            cut: AtomicBool::new(false),
            written: std::sync::atomic::AtomicU64::new(0),
            full: AtomicBool::new(false),
        });
        let (s2, st2) = (shared.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !st2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) if s2.live.load(Ordering::SeqCst) >= MAX_CONNECTIONS => {
                        let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                        crate::net::respond(
                            &conn,
                            503,
                            "text/plain",
                            b"too many exchanges at once\n",
                        );
                    }
                    Ok((conn, _)) => {
                        let s = s2.clone();
                        let id = workers.len();
                        if let (Ok(c), Ok(mut all)) = (conn.try_clone(), s.conns.lock()) {
                            all.insert(id, c);
                        }
                        s.live.fetch_add(1, Ordering::SeqCst);
                        workers.push(std::thread::spawn(move || {
                            serve(conn, &s);
                            if let Ok(mut all) = s.conns.lock() {
                                all.remove(&id);
                            }
                            s.live.fetch_sub(1, Ordering::SeqCst);
                        }));
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

    /// Stops accepting, ends the exchanges in flight, returns how many there were,
    /// whether an answer was cut at the response limit, and whether an exchange was
    /// refused because the transcript was full.
    pub(crate) fn stop(mut self) -> (usize, bool, bool) {
        self.halt();
        (
            self.shared.exchanges.load(Ordering::SeqCst),
            self.shared.cut.load(Ordering::SeqCst),
            self.shared.full.load(Ordering::SeqCst),
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(all) = self.shared.conns.lock() {
            for c in all.values() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
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

/// The path without its query (a key may ride in one), for the record.
fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

fn serve(conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(60)));
    let req = match crate::net::read_request(&conn, MAX_HEADER, MAX_BODY, Duration::from_secs(60)) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            error(
                &conn,
                413,
                &format!("request refused: {e} (at most {MAX_BODY} bytes)"),
            );
            return;
        }
        Err(_) => return,
    };
    // Every exchange is recorded whole, so none is served that the transcript cannot hold.
    let room = s.bounds.transcript_bytes;
    let asked = req.body.len() as u64;
    // Reserved before answering, so exchanges at once cannot all see the same room.
    if s.written.fetch_add(asked, Ordering::SeqCst) + asked > room {
        s.written.fetch_sub(asked, Ordering::SeqCst);
        s.full.store(true, Ordering::SeqCst);
        error(
            &conn,
            503,
            &format!("the run's model transcript holds its limit of {room} bytes; no more exchanges are served"),
        );
        return;
    }
    let started = now();
    let n = s.exchanges.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed: Option<Value> = serde_json::from_slice(&req.body).ok();
    let mut record = match unrecordable(&req, parsed.is_some()) {
        // What the transcript could not show as it was sent is never sent on.
        Some(why) => error(&conn, 415, &why),
        None => match &s.backend {
            Backend::Scripted(script) => scripted::answer(&conn, &s.model, script, &req),
            Backend::Forward(up) => forward::answer(&conn, up, &req, s),
        },
    };
    let body: Value =
        parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
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
    s.written
        .fetch_add((text.len() as u64).saturating_sub(asked), Ordering::SeqCst);
    if let Ok(mut f) = s.transcript.lock() {
        let _ = f.write_all(&text);
        let _ = f.sync_data();
    }
}

/// Why a request cannot be recorded as what the model is told, if it cannot: an encoded
/// body (gzip: the transcript would hold bytes, not the messages), or a body that is not
/// UTF-8 JSON (UTF-16, lone surrogates) which a model endpoint might still read.
fn unrecordable(req: &crate::net::Request, json: bool) -> Option<String> {
    let encoded = req.headers.iter().find(|(k, v)| {
        k.eq_ignore_ascii_case("content-encoding") && !v.trim().eq_ignore_ascii_case("identity")
    });
    if let Some((_, v)) = encoded {
        return Some(format!(
            "request refused: Content-Encoding `{}`: the harness records every request as the model receives it, so bodies are sent unencoded",
            crate::commands::text::shown(v.trim())
        ));
    }
    if !req.body.is_empty() && (!json || std::str::from_utf8(&req.body).is_err()) {
        return Some("request refused: the body is not UTF-8 JSON, so the transcript could not show what the model was told".into());
    }
    None
}

fn error(conn: &TcpStream, status: u16, message: &str) -> Value {
    let body = json!({"error": {"message": message, "type": "cto_ledger_scripted_model"}});
    crate::net::respond(
        conn,
        status,
        "application/json",
        body.to_string().as_bytes(),
    );
    json!({"response": {"status": status, "error": message}})
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
