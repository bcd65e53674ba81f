//! Forwarding to an admitted endpoint: the request goes on as it came (hop-by-hop
//! headers aside) and the answer streams back as it arrives, a copy kept for the record.

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use super::{error, Request};
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
/// keeping a copy of the answer's body (not its headers) for the transcript.
pub(super) fn answer(mut conn: &TcpStream, up: &Endpoint, req: &Request) -> Value {
    let url = format!("{}{}", up.origin, req.path);
    let rt = match crate::net::runtime() {
        Ok(rt) => rt,
        Err(e) => return error(conn, 502, &format!("cannot start a client: {e}")),
    };
    rt.block_on(async {
        let client = crate::net::http();
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
