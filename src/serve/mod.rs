//! `cto-ledger serve`: a read-only web view of the ledger (runs, transcripts, lineage,
//! admissions, the journal and its checkpoints), rendered on the server as HTML with no
//! script at all.
//!
//! Everything shown may have been written by a hostile provider or model, so:
//! - every piece of text goes through [`html::esc`]; nothing from evidence is markup;
//! - every answer carries a Content-Security-Policy that allows no script, no inline
//!   style, no frames and no other origin, and `nosniff`;
//! - a download is an attachment of type `application/octet-stream`, its bytes
//!   re-hashed against the digest before the first byte goes out (as `cat` does).
//!
//! And because a web page on another site can make the browser send requests here:
//! - every request needs the random token printed at start (in the URL once, then a
//!   `SameSite=Strict`, `HttpOnly` cookie);
//! - the `Host` header must name the bound address (a DNS-rebinding page's Host is its
//!   own name), and a request with another `Origin` or a cross-site `Sec-Fetch-Site` is
//!   refused;
//! - only GET and HEAD are answered, and the ledger is opened read-only: no route writes.

mod bundle;
mod html;
mod pages;
mod run;
mod transcript;

pub(crate) use bundle::View as BundleView;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::Mode;

/// Connections served at once; more are answered 503. On loopback every peer is the same
/// address, so there is no fairer cap per peer: a local program holding slots open is
/// bounded by [`REQUEST_TIME`] per connection instead.
const MAX_CONNECTIONS: usize = 128;
/// A GET's request line and headers; a browser's are a few KiB.
const MAX_HEADER: usize = 32 * 1024;
/// A browser sends its request at once: a connection that has not in this long is closed.
const REQUEST_TIME: Duration = Duration::from_secs(5);

/// Scripts none, styles only our own sheet, images only our own (the lineage SVG is
/// inline markup, not an image), forms only back here, no frames, no base, no plugins.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
pub(crate) const STYLE: &str = include_str!("style.css");

/// What `serve` prints and keeps: the address, the token and what it shows.
pub(crate) struct Server {
    listener: TcpListener,
    pub addr: SocketAddr,
    token: String,
    source: Source,
}

/// A ledger home, or one evidence bundle read and checked at start.
enum Source {
    Ledger {
        home: PathBuf,
        /// Read-only handles, one per request at a time, reused.
        pool: Mutex<Vec<Home>>,
    },
    Bundle(Box<bundle::View>),
}

impl Server {
    /// Binds `bind` and checks the ledger opens read-only.
    pub(crate) fn bind(home: PathBuf, bind: &str) -> Result<Server> {
        let first = Home::open(&home, Mode::ReadOnly)?;
        let pool = Mutex::new(vec![first]);
        Server::listen(bind, Source::Ledger { home, pool })
    }

    /// Binds `bind` to show one bundle, checked with [`bundle::View::open`].
    pub(crate) fn bind_bundle(view: bundle::View, bind: &str) -> Result<Server> {
        Server::listen(bind, Source::Bundle(Box::new(view)))
    }

    fn listen(bind: &str, source: Source) -> Result<Server> {
        let listener = TcpListener::bind(bind).map_err(|e| {
            Error::bad_input(
                format!("cannot listen on {bind}: {e}"),
                "give a free address with --bind, e.g. 127.0.0.1:0 for any free port",
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("read the address of", PathBuf::from(bind)))?;
        Ok(Server {
            listener,
            addr,
            token: token()?,
            source,
        })
    }

    /// The URL to open: with the token, which the server swaps for a cookie at once.
    pub(crate) fn url(&self) -> String {
        let host = match self.addr.ip().is_unspecified() {
            true => format!("127.0.0.1:{}", self.addr.port()),
            false => self.addr.to_string(),
        };
        format!("http://{host}/?token={}", self.token)
    }

    pub(crate) fn loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// Serves until the process is stopped, a thread per connection.
    pub(crate) fn serve(self) -> Result<()> {
        let me = Arc::new(self);
        let open = Arc::new(AtomicUsize::new(0));
        for conn in me.listener.incoming() {
            let Ok(conn) = conn else { continue };
            if open.fetch_add(1, SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, SeqCst);
                send(
                    &conn,
                    &Reply::text(503, "too many connections at once"),
                    false,
                    None,
                );
                continue;
            }
            let (me, slot) = (me.clone(), Slot(open.clone()));
            std::thread::spawn(move || {
                let _slot = slot;
                // A request that panics is answered 500 and frees its slot: without
                // this, one request per slot for a page that panicked left every later
                // one answered 503.
                let served =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.one(&conn)));
                if served.is_err() {
                    send(
                        &conn,
                        &Reply::text(500, "this page failed: the server's log says why"),
                        false,
                        None,
                    );
                }
            });
        }
        Ok(())
    }

    fn one(&self, conn: &TcpStream) {
        let req = match crate::net::read_request(conn, MAX_HEADER, 0, REQUEST_TIME) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                send(
                    conn,
                    &Reply::text(400, &format!("bad request: {e}")),
                    false,
                    None,
                );
                return;
            }
            Err(_) => return,
        };
        let head = req.method == "HEAD";
        match self.guard(&req) {
            Err(refused) => send(conn, &refused, head, None),
            Ok(Some(redirect)) => send(conn, &redirect, head, None),
            Ok(None) => self.route(conn, &req, head),
        }
    }

    /// Refuses what is not a GET from our own page with the token; swaps a token in
    /// the URL for the cookie.
    fn guard(&self, req: &crate::net::Request) -> std::result::Result<Option<Reply>, Reply> {
        let header = |k: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        if req.method != "GET" && req.method != "HEAD" {
            return Err(Reply::text(
                405,
                "this view is read-only: only GET and HEAD",
            ));
        }
        let Some(host) = header("host").filter(|h| self.host_ok(h)) else {
            return Err(Reply::text(
                403,
                &format!(
                    "refused: the Host header must name this server ({}); a page on another name (DNS rebinding) cannot read the ledger",
                    self.addr
                ),
            ));
        };
        if header("origin").is_some_and(|o| o != format!("http://{host}"))
            || header("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
        {
            return Err(Reply::text(403, "refused: a request from another origin"));
        }
        let (path, query) = split_query(&req.path);
        if let Some(t) = param(query, "token") {
            if !same(&t, &self.token) {
                return Err(Reply::text(403, "refused: wrong token"));
            }
            let rest: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
                .collect();
            // One leading slash: `//host/x` would send the browser to another site.
            let path = format!("/{}", path.trim_start_matches(['/', '\\']));
            let to = match rest.is_empty() {
                true => path,
                false => format!("{path}?{}", rest.join("&")),
            };
            let mut r = Reply::redirect(&to);
            r.headers.push((
                "Set-Cookie",
                format!(
                    "{}={}; Path=/; HttpOnly; SameSite=Strict",
                    self.cookie_name(),
                    self.token
                ),
            ));
            return Ok(Some(r));
        }
        let cookie = header("cookie").and_then(|c| {
            c.split(';').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == self.cookie_name()).then(|| v.to_string())
            })
        });
        match cookie {
            Some(t) if same(&t, &self.token) => Ok(None),
            _ => Err(Reply::text(
                403,
                "refused: this page needs the token `cto-ledger serve` printed; open the URL it printed",
            )),
        }
    }

    /// The cookie is per port: two `serve`s on one host keep their own.
    fn cookie_name(&self) -> String {
        format!("cto_ledger_{}", self.addr.port())
    }

    /// `Host` names this server: its address, or `localhost` with its port when bound
    /// to loopback, or any IP literal with its port when bound to all addresses (a
    /// rebinding page reaches us under its own host name, never an IP literal).
    fn host_ok(&self, host: &str) -> bool {
        let port = self.addr.port();
        let Some((name, p)) = host.rsplit_once(':') else {
            return false;
        };
        if p.parse::<u16>() != Ok(port) {
            return false;
        }
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>();
        match ip {
            Ok(ip) if self.addr.ip().is_unspecified() => !ip.is_unspecified(),
            Ok(ip) => ip == self.addr.ip(),
            Err(_) => name == "localhost" && self.loopback(),
        }
    }

    fn route(&self, conn: &TcpStream, req: &crate::net::Request, head: bool) {
        if req.path == "/assets/style.css" {
            let mut r = Reply::new(200, "text/css; charset=utf-8", STYLE.as_bytes().to_vec());
            r.headers
                .push(("Cache-Control", "private, max-age=3600".into()));
            return send(conn, &r, head, None);
        }
        let (path, query) = split_query(&req.path);
        let (path, status) = (decode(path), |e: &Error| match e {
            Error::BadInput { .. } | Error::NotFound { .. } => 404,
            Error::Integrity { .. } => 409,
            _ => 500,
        });
        let (home, pool) = match &self.source {
            Source::Bundle(view) => {
                let reply = bundle::route(view, &path)
                    .unwrap_or_else(|e| bundle::error_page(status(&e), &e));
                return send(conn, &reply, head, None);
            }
            Source::Ledger { home, pool } => (home, pool),
        };
        // A read-only handle for this request: the ledger is read as it is now.
        let spare = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let home = match spare.map_or_else(|| Home::open(home, Mode::ReadOnly), Ok) {
            Ok(h) => h,
            Err(e) => {
                let r = Reply::text(503, &format!("cannot open the ledger: {e}"));
                return send(conn, &r, head, None);
            }
        };
        let reply =
            pages::route(&home, &path, query).unwrap_or_else(|e| pages::error_page(status(&e), &e));
        send(conn, &reply, head, Some(&home.store));
        pool.lock().unwrap_or_else(|p| p.into_inner()).push(home);
    }
}

/// One connection's place among [`MAX_CONNECTIONS`], given back however its thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// 128 random bits, hex.
fn token() -> Result<String> {
    let mut b = [0u8; 16];
    crate::sign::keys::random_bytes(&mut b, "draw the token from")?;
    Ok(hex::encode(b))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub(crate) fn split_query(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

/// The value of `key` in a query string, percent-decoded; `None` when absent or empty.
pub(crate) fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key && !v.is_empty()).then(|| decode(&v.replace('+', " ")))
    })
}

/// Percent-decoding; invalid escapes and bytes that are not UTF-8 are kept as U+FFFD.
pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` as one URL path segment or query value: everything but unreserved characters
/// (and `:`, which our ids use) percent-encoded.
pub(crate) fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An answer: a status, headers beyond the ones every answer has, and a body.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub(crate) enum Body {
    Bytes(Vec<u8>),
    /// Bytes held for every request (a bundle's member), sent without a copy.
    Shared(Arc<[u8]>),
    /// A stored object of this size, already re-hashed, copied verified as it is sent.
    Object(ObjectId, u64),
}

impl Reply {
    pub(crate) fn new(status: u16, ctype: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", ctype.to_string())],
            body: Body::Bytes(body),
        }
    }

    pub(crate) fn html(status: u16, page: String) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", page.into_bytes())
    }

    pub(crate) fn text(status: u16, msg: &str) -> Reply {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            format!("{msg}\n").into_bytes(),
        )
    }

    fn redirect(to: &str) -> Reply {
        let mut r = Reply::text(303, "see other");
        r.headers.push(("Location", to.to_string()));
        r
    }
}

/// Writes `r` with the headers every answer carries, and closes.
fn send(conn: &TcpStream, r: &Reply, head: bool, store: Option<&crate::store::Store>) {
    let len = match &r.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Shared(b) => b.len() as u64,
        Body::Object(_, size) => *size,
    };
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {len}\r\nContent-Security-Policy: {CSP}\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\nCross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Resource-Policy: same-origin\r\nConnection: close\r\n",
        r.status,
        crate::net::reason(r.status)
    );
    if !r.headers.iter().any(|(k, _)| *k == "Cache-Control") {
        h.push_str("Cache-Control: no-store\r\n");
    }
    for (k, v) in &r.headers {
        // No header value from evidence may end a line: a name with CR/LF splits nothing.
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    let mut w = std::io::BufWriter::new(Timed {
        conn,
        until: std::time::Instant::now() + RESPONSE_TIME,
    });
    let _ = w.write_all(h.as_bytes());
    if !head {
        match &r.body {
            Body::Bytes(b) => {
                let _ = w.write_all(b);
            }
            Body::Shared(b) => {
                let _ = w.write_all(b);
            }
            Body::Object(id, _) => {
                // A copy that fails its hash half-way stops short of Content-Length:
                // the browser reports the download failed rather than keeping it.
                if let Some(store) = store {
                    let _ = store.copy_verified(id, &mut w);
                }
            }
        }
    }
    let _ = w.flush();
}

/// The longest one answer may take to send: a client that reads it slower than that (a
/// slow reader holding a connection slot) is cut off.
const RESPONSE_TIME: Duration = Duration::from_secs(60);

/// A connection written to until a deadline: each write may block only as long as is left.
struct Timed<'a> {
    conn: &'a TcpStream,
    until: std::time::Instant,
}

impl std::io::Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left = self
            .until
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.conn.set_write_timeout(Some(left))?;
        self.conn.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut c = self.conn;
        c.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_ids_encode() {
        assert_eq!(param("a=1&token=x%41y&b=", "token").as_deref(), Some("xAy"));
        assert_eq!(param("b=", "b"), None);
        assert_eq!(decode("%3Cscript%3E%zz"), "<script>%zz");
        assert_eq!(url_part("run:a b/<x>"), "run:a%20b%2F%3Cx%3E");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
