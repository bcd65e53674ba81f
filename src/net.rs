//! The one owner of the async runtime and the HTTP client: the S3 remote (through
//! `object_store`), Stage 2's forwarding model proxy and the witness client all run their
//! requests here, on one small tokio runtime made the first time one needs it. And the
//! bounded HTTP/1.1 reader and writer the loopback servers share.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The runtime: `block_on` it from any thread that is not one of its own workers.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cto-ledger-net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Io {
        action: "start the network runtime",
        path: "tokio".into(),
        source: std::io::Error::other(e.clone()),
    })
}

/// The HTTP client of the model proxy: one connection pool for the whole process, no
/// automatic redirects (an admitted endpoint is one origin, not wherever it points).
pub(crate) fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// An HTTP/1.1 request as the loopback servers (the model proxy, the witness) read it.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one request from `conn`: headers of at most `max_header` bytes and a body
/// (sized or chunked) of at most `max_body`; `InvalidData` names what was too large.
pub(crate) fn read_request(
    conn: &TcpStream,
    max_header: usize,
    max_body: usize,
    within: Duration,
) -> std::io::Result<Request> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut r = BufReader::new(Deadline {
        conn,
        until: Instant::now() + within,
    });
    // Every line is read through a bound: a line with no end must not grow without one.
    let mut line = String::new();
    (&mut r).take(max_header as u64).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(bad("request line too long"));
    }
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
        (&mut r)
            .take((max_header.saturating_sub(size) + 1) as u64)
            .read_line(&mut h)?;
        size += h.len();
        if size > max_header || !h.ends_with('\n') {
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
            (&mut r).take(64).read_line(&mut sz)?;
            let n = usize::from_str_radix(sz.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            // Never `body.len() + n`: a chunk size of 2^64-1 wraps it (body.len() <= max_body).
            if n > max_body - body.len() {
                return Err(bad("body too large"));
            }
            if n == 0 {
                let mut end = String::new();
                (&mut r).take(64).read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if n > max_body {
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

/// A connection read against one deadline for the whole request: a client that drips a
/// byte at a time cannot hold a server past it.
struct Deadline<'a> {
    conn: &'a TcpStream,
    until: Instant,
}

impl std::io::Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request took too long",
            ));
        }
        self.conn.set_read_timeout(Some(left))?;
        let mut conn = self.conn;
        conn.read(buf).map_err(|e| match e.kind() {
            // What an expired socket timeout reads as on Linux.
            std::io::ErrorKind::WouldBlock => {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the request took too long")
            }
            _ => e,
        })
    }
}

/// Writes one whole response and asks the client to close.
pub(crate) fn respond(mut conn: &TcpStream, status: u16, ctype: &str, body: &[u8]) {
    let reason = reason(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

/// The reason phrase of the statuses our servers answer with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request `raw`, as `read_request` reads it from a real socket.
    fn read(raw: &'static [u8]) -> std::io::Result<Request> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(raw).unwrap();
        });
        let (conn, _) = l.accept().unwrap();
        t.join().unwrap();
        read_request(&conn, 1024, 64, Duration::from_secs(5))
    }

    #[test]
    fn a_client_that_drips_is_cut_off_at_the_deadline() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            for _ in 0..20 {
                if c.write_all(b"P").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let (conn, _) = l.accept().unwrap();
        let started = Instant::now();
        let e = read_request(&conn, 1024, 64, Duration::from_millis(300))
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_millis(900));
        drop(conn);
        t.join().unwrap();
    }

    #[test]
    fn a_chunk_size_that_wraps_is_refused_not_a_panic() {
        let e = read(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
        )
        .err()
        .expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let e = read(b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let r = read(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(
            (r.path.as_str(), r.body.as_slice()),
            ("/x", b"ab".as_slice())
        );
    }
}
