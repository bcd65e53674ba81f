//! Keys on S3-compatible object storage (AWS S3, MinIO, Ceph, SeaweedFS, s3s-fs, ...)
//! through the `object_store` crate. The only module that touches object_store; its requests
//! run on the process's one runtime (`crate::net`).
//!
//! Objects live under `<prefix>/objects/<2 hex>/<62 hex>` like the local store, and small
//! ones many to a key under `<prefix>/packs/<blake3>.pack` (the local store's pack format,
//! docs/ledger.md) with its index beside it as `<blake3>.idx`; other keys (the shared
//! journal) are read and written through [`S3`]'s key methods.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as KeyPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions,
    PutPayload, RetryConfig,
};

use super::{Backend, Listing, Staged};

mod packs;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use packs::RemotePacks;

/// Where a remote is and how to reach it. Credentials never live here: they come from
/// the standard AWS environment variables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct RemoteSpec {
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl RemoteSpec {
    /// Splits `s3://bucket/prefix` into bucket and prefix; refuses anything else.
    pub(crate) fn bucket_and_prefix(url: &str) -> Result<(String, String)> {
        let bad = |why: &str| {
            Error::bad_input(
                format!("remote URL `{url}` {why}"),
                "give it as s3://BUCKET or s3://BUCKET/PREFIX",
            )
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "does not name a valid bucket (3-63 of a-z, 0-9, `-`, `.`)",
            ));
        }
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(bad("has an empty, `.` or `..` segment in its prefix"));
        }
        Ok((bucket.to_string(), prefix.to_string()))
    }
}

/// A connection to one remote: the S3 client, on the process's one runtime.
pub(crate) struct S3 {
    rt: &'static tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    url: String,
    endpoint: Option<String>,
    /// How long a read may crawl below the floor ([`stall_window`]).
    window: Duration,
}

/// One key under the remote's prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeyInfo {
    /// Relative to the prefix, e.g. `journal/00000000000000000042`.
    pub key: String,
    /// The size the listing gives: a remote's claim, held to by the read that follows.
    pub size: u64,
}

/// A read slower than this, over a whole stall window, has stalled (curl's
/// `--speed-limit`, with [`stall_window`] as its `--speed-time`).
const STALL_BYTES_PER_SECOND: u64 = 1024;

/// `CTO_LEDGER_REMOTE_STALL_SECONDS`, else 30 s.
fn stall_window() -> Result<Duration> {
    Ok(Duration::from_secs(
        crate::env::positive("CTO_LEDGER_REMOTE_STALL_SECONDS")?.unwrap_or(30),
    ))
}

/// How fast a read has been moving, window by window.
struct Pace {
    window: Duration,
    start: tokio::time::Instant,
    got: u64,
}

impl Pace {
    fn new(window: Duration) -> Pace {
        Pace {
            window,
            start: tokio::time::Instant::now(),
            got: 0,
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        self.start + self.window
    }

    /// Counts `n` bytes in; once a whole window has ended below the floor, `Err` with
    /// the bytes it moved.
    fn moved(&mut self, n: u64) -> std::result::Result<(), u64> {
        self.got += n;
        let now = tokio::time::Instant::now();
        if now < self.deadline() {
            return Ok(());
        }
        let got = std::mem::take(&mut self.got);
        self.start = now;
        if got >= STALL_BYTES_PER_SECOND * self.window.as_secs() {
            Ok(())
        } else {
            Err(got)
        }
    }
}

impl S3 {
    pub(crate) fn connect(spec: &RemoteSpec) -> Result<Arc<S3>> {
        let (bucket, prefix) = RemoteSpec::bucket_and_prefix(&spec.url)?;
        let env = crate::env::get;
        let has_creds = env("AWS_ACCESS_KEY_ID").is_some()
            || env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some();
        if !has_creds {
            return Err(Error::Remote {
                remote: spec.url.clone(),
                message: "no credentials: AWS_ACCESS_KEY_ID is not set".into(),
                hint: Some("export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)".into()),
            });
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket.clone());
        let endpoint = spec
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"));
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e);
        }
        let region = spec
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        // A server that is down must fail the command in seconds, not after minutes of retries.
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        };
        let plain_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let mut client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        if plain_http {
            // A plain-HTTP server is local or on the LAN, where a connection costs ~0.1 ms.
            // Servers that write headers and body separately without TCP_NODELAY (s3s-fs)
            // stall every response on a reused connection until the delayed ACK (~20-40 ms):
            // measured, pulling 18,449 objects took 73.8 s with reuse and 9.7 s without.
            client = client.with_pool_max_idle_per_host(0);
        }
        let store = b
            .with_region(region)
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| Error::Remote {
                remote: spec.url.clone(),
                message: format!("cannot configure the S3 client: {e}"),
                hint: Some("check the URL, --endpoint and the AWS_* environment variables".into()),
            })?;
        Ok(Arc::new(S3 {
            rt: crate::net::runtime()?,
            store: Arc::new(store),
            bucket,
            prefix,
            window: stall_window()?,
            url: spec.url.clone(),
            endpoint,
        }))
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, rel: &str) -> KeyPath {
        if self.prefix.is_empty() {
            KeyPath::from(rel)
        } else {
            KeyPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn rel<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn err(&self, action: &str, key: &str, e: object_store::Error) -> Error {
        let at = self
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        Error::Remote {
            remote: self.url.clone(),
            message: format!("cannot {action} {key}{at}: {}", flatten(&e)),
            hint: Some(
                "check that the server is reachable and the credentials are right, then run the command again; nothing half-written is published"
                    .into(),
            ),
        }
    }

    /// The key's bytes, at most `max` + 1 of them: a caller that gets more than `max`
    /// knows the key is longer than it may be, without having read all of it.
    /// `Ok(None)` when the key is absent.
    pub(crate) fn get_at_most(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(r) = self.start_get(rel)? else {
            return Ok(None);
        };
        let mut stream = r.into_stream();
        let mut pace = Pace::new(self.window);
        let mut out = Vec::new();
        self.rt.block_on(async {
            while (out.len() as u64) <= max {
                match self.next_chunk(&mut stream, &mut pace, rel).await? {
                    Some(b) => {
                        let room = (max + 1 - out.len() as u64).min(b.len() as u64) as usize;
                        out.extend_from_slice(&b[..room]);
                    }
                    None => break,
                }
            }
            Ok(Some(out))
        })
    }

    /// The next piece of a body; an error once the read crawls below the floor for a
    /// whole window, or stops.
    async fn next_chunk(
        &self,
        stream: &mut BoxStream<'static, object_store::Result<bytes::Bytes>>,
        pace: &mut Pace,
        rel: &str,
    ) -> Result<Option<bytes::Bytes>> {
        loop {
            let (n, piece) = match tokio::time::timeout_at(pace.deadline(), stream.next()).await {
                Ok(None) => return Ok(None),
                Ok(Some(Ok(b))) => (b.len() as u64, Some(b)),
                Ok(Some(Err(e))) => return Err(self.err("read", rel, e)),
                Err(_) => (0, None),
            };
            if let Err(got) = pace.moved(n) {
                return Err(self.stalled(
                    rel,
                    &format!("the read moved {got} bytes in {} s", self.window.as_secs()),
                ));
            }
            if piece.is_some() {
                return Ok(piece);
            }
        }
    }

    /// `future`, or a stall error when it has not finished within the window.
    async fn within<T>(
        &self,
        rel: &str,
        future: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        tokio::time::timeout(self.window, future)
            .await
            .map_err(|_| self.stalled(rel, &format!("no reply in {} s", self.window.as_secs())))
    }

    fn stalled(&self, rel: &str, what: &str) -> Error {
        let at = self
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        let key = self.path(rel);
        Error::Remote {
            remote: self.url.clone(),
            message: format!(
                "stalled reading key `{key}` of bucket `{}`{at}: {what}",
                self.bucket
            ),
            hint: Some(format!(
                "check the server and the network, then run the command again; a read slower than {STALL_BYTES_PER_SECOND} bytes/s for CTO_LEDGER_REMOTE_STALL_SECONDS ({} s) fails",
                self.window.as_secs()
            )),
        }
    }

    /// Bytes `range` of `rel` (one ranged GET, within the stall window). `Ok(None)` when
    /// the key is absent.
    pub(crate) fn get_range(
        &self,
        rel: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        match self
            .rt
            .block_on(self.within(rel, self.store.get_range(&path, range)))?
        {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read", rel, e)),
        }
    }

    /// Sends the GET for `rel`; the body is the caller's to read. `Ok(None)` when absent.
    fn start_get(&self, rel: &str) -> Result<Option<object_store::GetResult>> {
        let path = self.path(rel);
        match self.rt.block_on(self.within(rel, self.store.get(&path)))? {
            Ok(r) => Ok(Some(r)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read", rel, e)),
        }
    }

    /// Writes `rel` only if no one has: `Ok(true)` when this call created it,
    /// `Ok(false)` when the key already existed (`If-None-Match: *`).
    pub(crate) fn put_create(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(rel);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.rt.block_on(async {
            match self.store.put_opts(&path, bytes.into(), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(self.err("write", rel, e)),
            }
        })
    }

    /// Writes `rel`, replacing what is there: only for a key that names no fixed bytes
    /// (a tlog-tiles log's `checkpoint`, whose newer note replaces the older).
    pub(crate) fn put_replace(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        self.put(rel, bytes.into())
    }

    /// Writes `rel`, replacing what is there (used for content-addressed keys only).
    fn put(&self, rel: &str, payload: PutPayload) -> Result<()> {
        let path = self.path(rel);
        self.rt.block_on(async {
            self.store
                .put(&path, payload)
                .await
                .map(|_| ())
                .map_err(|e| self.err("write", rel, e))
        })
    }

    /// Size of `rel`, or `None` when absent.
    pub(crate) fn head(&self, rel: &str) -> Result<Option<u64>> {
        let path = self.path(rel);
        self.rt.block_on(async {
            match self.within(rel, self.store.head(&path)).await? {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err("look up", rel, e)),
            }
        })
    }

    /// Every key under `dir/` that sorts after `dir/after` (all of them when `after` is
    /// `None`), in key order.
    pub(crate) fn list(&self, dir: &str, after: Option<&str>) -> Result<Vec<KeyInfo>> {
        let prefix = self.path(dir);
        let offset = after.map(|a| self.path(&format!("{dir}/{a}")));
        self.rt.block_on(async {
            let mut stream = match &offset {
                Some(o) => self.store.list_with_offset(Some(&prefix), o),
                None => self.store.list(Some(&prefix)),
            };
            let mut keys = Vec::new();
            while let Some(m) = self.within(dir, stream.next()).await? {
                let m = m.map_err(|e| self.err("list", dir, e))?;
                keys.push(KeyInfo {
                    key: self.rel(m.location.as_ref()).to_string(),
                    size: m.size,
                });
            }
            keys.sort_by(|a: &KeyInfo, b: &KeyInfo| a.key.cmp(&b.key));
            Ok(keys)
        })
    }

    /// Uploads a file in parts; nothing is visible under `rel` unless every part arrived.
    pub(crate) fn put_file_multipart(&self, rel: &str, file: &mut std::fs::File) -> Result<()> {
        const PART: usize = 8 << 20;
        let path = self.path(rel);
        self.rt.block_on(async {
            let mut up = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.err("start upload of", rel, e))?;
            let result: Result<()> = async {
                loop {
                    // A fresh buffer per part: the payload owns it while the part is sent.
                    let mut buf = Vec::with_capacity(PART);
                    let n = std::io::Read::take(&mut *file, PART as u64)
                        .read_to_end(&mut buf)
                        .map_err(Error::io("read upload of", rel))?;
                    if n == 0 {
                        break;
                    }
                    up.put_part(buf.into())
                        .await
                        .map_err(|e| self.err("upload part of", rel, e))?;
                    if n < PART {
                        break;
                    }
                }
                up.complete()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err("complete upload of", rel, e))
            }
            .await;
            if result.is_err() {
                let _ = up.abort().await;
            }
            result
        })
    }
}

/// The error and its causes on one line: `object_store` hides the useful part
/// (connection refused, 403, ...) in its source chain.
fn flatten(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

pub(crate) fn object_key(id: &ObjectId) -> String {
    let h = id.hex();
    format!("objects/{}/{}", &h[..2], &h[2..])
}

/// The store's objects on a remote.
pub(crate) struct S3Backend {
    s3: Arc<S3>,
    /// The remote's packs, read once (a LIST and one GET per index) when first needed.
    packs: std::sync::Mutex<Option<Arc<RemotePacks>>>,
    /// Objects taken from whole packs by `prefetch`, until read.
    prefetched: std::sync::Mutex<packs::Prefetched>,
}

impl S3Backend {
    pub(crate) fn new(s3: Arc<S3>) -> Self {
        S3Backend {
            s3,
            packs: Default::default(),
            prefetched: Default::default(),
        }
    }
}

/// Objects up to this size are sent in one request from memory; larger ones spill to a
/// temp file and go up in parts, so memory stays flat for any size.
const SPILL: usize = 8 << 20;

struct S3Staged {
    s3: Arc<S3>,
    buf: Vec<u8>,
    spill: Option<tempfile::NamedTempFile>,
}

impl Write for S3Staged {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.spill {
            return f.write(data);
        }
        if self.buf.len() + data.len() > SPILL {
            let mut f = tempfile::NamedTempFile::new()?;
            f.write_all(&self.buf)?;
            self.buf = Vec::new();
            let n = f.write(data)?;
            self.spill = Some(f);
            return Ok(n);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staged for S3Staged {
    fn commit(self: Box<Self>, id: &ObjectId) -> Result<()> {
        let key = object_key(id);
        match self.spill {
            None => self.s3.put(&key, self.buf.into()),
            Some(f) => {
                let mut file = f.reopen().map_err(Error::io("reopen", f.path()))?;
                self.s3.put_file_multipart(&key, &mut file)
            }
        }
    }
}

struct S3Reader {
    s3: Arc<S3>,
    key: String,
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    pace: Pace,
    chunk: bytes::Bytes,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let next = self
                .s3
                .next_chunk(&mut self.stream, &mut self.pace, &self.key);
            match self.s3.rt.block_on(next) {
                Ok(None) => return Ok(0),
                Ok(Some(b)) => self.chunk = b,
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

impl Backend for S3Backend {
    fn stage(&self) -> Result<Box<dyn Staged>> {
        Ok(Box::new(S3Staged {
            s3: self.s3.clone(),
            buf: Vec::new(),
            spill: None,
        }))
    }

    fn has(&self, id: &ObjectId) -> Result<bool> {
        if self.remote_packs()?.at.contains_key(id) {
            return Ok(true);
        }
        Ok(self.s3.head(&object_key(id))?.is_some())
    }

    fn open(&self, id: &ObjectId) -> Result<Option<Box<dyn Read + Send>>> {
        if let Some(b) = self.read_packed(id)? {
            return Ok(Some(Box::new(io::Cursor::new(b))));
        }
        let key = object_key(id);
        Ok(self.s3.start_get(&key)?.map(|r| {
            Box::new(S3Reader {
                s3: self.s3.clone(),
                key,
                stream: r.into_stream(),
                pace: Pace::new(self.s3.window),
                chunk: bytes::Bytes::new(),
            }) as Box<dyn Read + Send>
        }))
    }

    fn list(&self) -> Result<Listing> {
        let mut out = Listing::default();
        for k in self.s3.list("objects", None)? {
            let name = k.key.strip_prefix("objects/").unwrap_or(&k.key);
            match name
                .split_once('/')
                .filter(|(a, b)| a.len() == 2 && b.len() == 62)
                .and_then(|(a, b)| ObjectId::parse(&format!("{a}{b}")).ok())
            {
                Some(id) => out.objects.push(id),
                None => out
                    .anomalies
                    .push((k.key.clone(), "not an object name".into())),
            }
        }
        let packs = self.remote_packs()?;
        out.objects.extend(packs.at.keys().copied());
        out.anomalies.extend(packs.anomalies.iter().cloned());
        out.objects.sort();
        out.objects.dedup();
        Ok(out)
    }

    fn locate(&self, id: &ObjectId) -> String {
        let places = self.remote_packs().ok().and_then(|p| p.at.get(id).cloned());
        match places {
            Some(places) if !places.is_empty() => places
                .iter()
                .map(|(pack, off, n)| format!("{pack} (bytes {off}+{n})"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => object_key(id),
        }
    }

    fn put_packed(&self, objects: &[(ObjectId, Vec<u8>)]) -> Result<u64> {
        self.put_packs(objects)
    }

    fn prefetch(&self, ids: &[ObjectId]) -> Result<()> {
        S3Backend::prefetch(self, ids)
    }

    fn damaged_copies(&self) -> Result<Vec<(String, String)>> {
        S3Backend::damaged_copies(self)
    }

    fn sync(&self) -> Result<()> {
        // A completed PUT is durable on S3; there is nothing to flush.
        Ok(())
    }

    fn describe(&self) -> String {
        self.s3.url.clone()
    }
}
