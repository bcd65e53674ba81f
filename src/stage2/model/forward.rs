//! Forwarding to an admitted endpoint: the request goes on as it came (hop-by-hop
//! headers aside) and the answer streams back as it arrives, a copy kept for the record.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{error, Shared};
use crate::net::Request;

/// How often a stalled answer checks whether the run is over.
const TICK: Duration = Duration::from_millis(250);
use crate::model::Endpoint;

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
/// keeping a copy of the answer's body (not its headers) for the transcript. Bounded:
/// the run's deadline ends it, so does the end of the run (`stop`) or the provider going
/// away, and past the response limit nothing more is relayed or kept.
pub(super) fn answer(mut conn: &TcpStream, up: &Endpoint, req: &Request, s: &Shared) -> Value {
    let url = format!("{}{}", up.origin, req.path);
    let rt = match crate::net::runtime() {
        Ok(rt) => rt,
        Err(e) => return error(conn, 502, &format!("cannot start a client: {e}")),
    };
    let limit = s.bounds.response_bytes as usize;
    let remaining = s.bounds.deadline.saturating_duration_since(Instant::now());
    rt.block_on(async {
        let client = crate::net::http();
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut rb = client.request(method, &url).body(req.body.clone()).timeout(remaining);
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
        let mut total = 0usize;
        let ended = loop {
            if s.stop.load(Ordering::SeqCst) {
                break Some("the run ended");
            }
            if Instant::now() >= s.bounds.deadline {
                break Some("the run's deadline passed");
            }
            let bytes = match tokio::time::timeout(TICK, resp.chunk()).await {
                Err(_) => continue,
                Ok(Ok(Some(b))) => b,
                Ok(Ok(None)) => break None,
                Ok(Err(_)) => break Some("the endpoint's answer broke off"),
            };
            total += bytes.len();
            let room = limit.saturating_sub(copy.len());
            copy.extend_from_slice(&bytes[..room.min(bytes.len())]);
            if total > limit {
                s.cut.store(true, Ordering::SeqCst);
                break Some("the answer passed the response limit (model_response_bytes)");
            }
            if conn.write_all(&bytes).and_then(|_| conn.flush()).is_err() {
                break Some("the provider stopped reading");
            }
        };
        let text = String::from_utf8_lossy(&copy).into_owned();
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        let mut r = json!({"endpoint": up.origin, "response": {"status": status, "content_type": ctype, "body": body, "bytes": total}});
        if let Some(why) = ended {
            r["response"]["cut"] = json!(format!("{why}; {} of {total} bytes kept", copy.len()));
        }
        r
    })
}
