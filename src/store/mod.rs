//! The content-addressed store. Backends only keep bytes by id ([`Backend`]);
//! hashing, verification and tree encoding live once, here, above them.

mod local;
pub(crate) mod maintain;
pub(crate) mod pack;
pub(crate) mod power_cut;
pub(crate) mod s3;
pub mod tree;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};

pub(crate) use local::LocalBackend;

/// Bytes read per step while hashing and copying. Large enough for BLAKE3's
/// multithreaded path to pay off, small enough to keep memory flat.
const CHUNK: usize = 1 << 20;
/// What [`Store::put_file_like`] hashes at a time: big enough for BLAKE3 to split over
/// every core.
const LIKE_CHUNK: usize = 8 << 20;
/// Below this, hashing both digests on one thread beats handing work to rayon.
const PARALLEL_MIN: usize = 128 << 10;

/// A place that keeps object bytes by id. Implementations must make `commit`
/// atomic (all bytes or nothing visible) and idempotent (an existing object is success).
pub trait Backend: Send + Sync {
    /// Opens a private place to write an object whose id is not known yet.
    fn stage(&self) -> Result<Box<dyn Staged>>;
    /// As `stage`, for an object whose id is already known (a backend may place it better).
    fn stage_for(&self, id: &ObjectId) -> Result<Box<dyn Staged>> {
        let _ = id;
        self.stage()
    }
    fn has(&self, id: &ObjectId) -> Result<bool>;
    /// As `has`, for a caller about to rely on the object without writing it: a present
    /// object is marked as just used, so `gc`'s grace period protects it as it protects
    /// one just written. A backend without `gc` needs nothing more than `has`.
    fn freshen(&self, id: &ObjectId) -> Result<bool> {
        self.has(id)
    }
    /// Where the object's bytes are (or would be), for messages: a key, or a pack and
    /// where in it.
    fn locate(&self, id: &ObjectId) -> String {
        id.to_string()
    }
    /// Stores many small objects (id, verified bytes) in as few writes as the backend
    /// can (a remote takes them as packs); returns how many writes that took.
    fn put_packed(&self, objects: &[(ObjectId, Vec<u8>)]) -> Result<u64> {
        for (id, b) in objects {
            let mut staged = self.stage_for(id)?;
            staged
                .write_all(b)
                .map_err(Error::io("write object", Path::new(&id.to_string())))?;
            staged.commit(id)?;
        }
        Ok(objects.len() as u64)
    }
    /// Every packed copy that does not hash to the id it is filed under, as (where, what):
    /// a damaged or planted copy that reads may pass over for an intact one.
    fn damaged_copies(&self) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// Says which objects are about to be read, so a remote can fetch them in few requests.
    fn prefetch(&self, ids: &[ObjectId]) -> Result<()> {
        let _ = ids;
        Ok(())
    }
    /// The local store, for what only it does (`repack`, `gc`, sharing a provider's bytes).
    #[allow(private_interfaces)]
    fn local(&self) -> Option<&LocalBackend> {
        None
    }
    /// `Ok(None)` when the object is absent; I/O failures are errors.
    fn open(&self, id: &ObjectId) -> Result<Option<Box<dyn Read + Send>>>;
    /// Every object id present, and every name in the store that is not a valid object.
    fn list(&self) -> Result<Listing>;
    /// Removes temp files older than `age` (left by killed commands); returns how many.
    fn clean_temps(&self, age: std::time::Duration) -> Result<usize> {
        let _ = age;
        Ok(0)
    }
    /// Makes every committed object durable. Called once before the journal names them.
    fn sync(&self) -> Result<()>;
    /// A short description for messages (`/path/to/objects`, `s3://...`).
    fn describe(&self) -> String;
}

/// An object being written. Dropping it without `commit` leaves nothing behind.
pub trait Staged: Write + Send {
    fn commit(self: Box<Self>, id: &ObjectId) -> Result<()>;
}

#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectId>,
    /// Names in the store that are not objects (stray files, leftovers), with what is wrong.
    pub anomalies: Vec<(String, String)>,
    /// Temp files beside the objects (being written, or left by a killed command).
    pub temps: usize,
}

/// What `audit` says of a packed copy that does not hash to its id.
pub(crate) fn damaged_copy_message(id: &ObjectId) -> String {
    format!("a copy of object {id} here does not hash to its id (damaged, or planted); reads take an intact copy where one exists; `cto-ledger ingest` (or `push`, for a remote) of the original stores an intact one; keep this as evidence, or remove it")
}

/// Hashes BLAKE3 and SHA-256 in one pass over the bytes.
#[derive(Default, Clone)]
pub(crate) struct DualHasher {
    blake: blake3::Hasher,
    sha: Sha256,
    size: u64,
}

impl DualHasher {
    pub(crate) fn update(&mut self, buf: &[u8]) {
        if buf.len() >= PARALLEL_MIN {
            let (blake, sha) = (&mut self.blake, &mut self.sha);
            rayon::join(|| blake.update_rayon(buf), || sha.update(buf));
        } else {
            self.blake.update(buf);
            self.sha.update(buf);
        }
        self.size += buf.len() as u64;
    }

    pub(crate) fn finish(self) -> ObjectMeta {
        ObjectMeta {
            id: ObjectId(*self.blake.finalize().as_bytes()),
            sha256: Sha256Digest(self.sha.finalize().into()),
            size: self.size,
        }
    }
}

pub(crate) fn hash_bytes(bytes: &[u8]) -> ObjectMeta {
    let mut h = DualHasher::default();
    h.update(bytes);
    h.finish()
}

/// Streams `reader` through the hasher, and into `sink` when given.
fn pump(reader: &mut dyn Read, mut sink: Option<&mut dyn Write>, src: &Path) -> Result<ObjectMeta> {
    // Grown to what the reader holds, not a zeroed chunk: most objects are a few KiB, and
    // zeroing 1 MiB for each was a fifth of a push's time.
    let mut buf = Vec::new();
    let n = reader
        .take(CHUNK as u64)
        .read_to_end(&mut buf)
        .map_err(Error::io("read", src))?;
    if n < CHUNK {
        let mut hasher = DualHasher::default();
        hasher.update(&buf[..n]);
        if let Some(w) = sink.as_deref_mut() {
            w.write_all(&buf[..n])
                .map_err(Error::io("write object from", src))?;
        }
        return Ok(hasher.finish());
    }
    pump_pipelined(buf, reader, sink, src)
}

/// Chunks in flight between the reader and the two hashing threads.
const IN_FLIGHT: usize = 3;

/// Big inputs: SHA-256 and BLAKE3 each on their own thread, fed the same chunks while
/// this thread reads the next one and writes to the sink, so the slower hash (SHA-256)
/// runs without pause and bounds the whole pass, as `openssl dgst` is bounded.
fn pump_pipelined(
    first: Vec<u8>,
    reader: &mut dyn Read,
    mut sink: Option<&mut dyn Write>,
    src: &Path,
) -> Result<ObjectMeta> {
    use std::sync::{mpsc, Arc};
    std::thread::scope(|s| {
        let (sha_tx, sha_rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
        let (b3_tx, b3_rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
        let sha = s.spawn(move || {
            let mut h = Sha256::new();
            for c in sha_rx {
                h.update(&c[..]);
            }
            h.finalize()
        });
        let b3 = s.spawn(move || {
            let mut h = blake3::Hasher::new();
            for c in b3_rx {
                h.update(&c[..]);
            }
            h.finalize()
        });
        let mut size = 0u64;
        let mut chunk = first;
        // Chunks handed to the hashers, reused once both have let go of them.
        let mut sent: std::collections::VecDeque<Arc<Vec<u8>>> = Default::default();
        let result = (|| -> Result<()> {
            loop {
                let c = Arc::new(chunk);
                size += c.len() as u64;
                // A send fails only if a hashing thread is gone, which `join` reports below.
                let _ = sha_tx.send(c.clone());
                let _ = b3_tx.send(c.clone());
                if let Some(w) = sink.as_deref_mut() {
                    w.write_all(&c)
                        .map_err(Error::io("write object from", src))?;
                }
                let last = c.len() < CHUNK;
                sent.push_back(c);
                if last {
                    return Ok(());
                }
                chunk = match sent.front().map(Arc::strong_count) {
                    Some(1) if sent.len() > IN_FLIGHT => {
                        Arc::try_unwrap(sent.pop_front().expect("front exists"))
                            .unwrap_or_else(|_| vec![0u8; CHUNK])
                    }
                    _ => vec![0u8; CHUNK],
                };
                chunk.resize(CHUNK, 0);
                let n = read_full(reader, &mut chunk).map_err(Error::io("read", src))?;
                if n == 0 {
                    return Ok(());
                }
                chunk.truncate(n);
            }
        })();
        drop((sha_tx, b3_tx));
        let sha = sha.join().expect("the SHA-256 thread does not panic");
        let b3 = b3.join().expect("the BLAKE3 thread does not panic");
        result.map(|()| ObjectMeta {
            id: ObjectId(*b3.as_bytes()),
            sha256: Sha256Digest(sha.into()),
            size,
        })
    })
}

/// Reads until `buf` is full or EOF, so chunks are as large as possible.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Copies `r` into `sink`; an error unless the bytes hash to `id`.
fn copy_checked(r: &mut dyn Read, id: &ObjectId, sink: &mut dyn Write) -> Result<ObjectMeta> {
    let meta = pump(r, Some(sink), Path::new(&id.to_string()))?;
    if meta.id != *id {
        return Err(Error::Integrity {
            message: format!("object {id} is corrupt: its bytes hash to {}", meta.id),
        });
    }
    Ok(meta)
}

/// What a file that is not regular is, for messages.
pub(crate) fn file_type_name(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens a regular file for reading. A FIFO, device or socket is refused before a read
/// could block forever (a pipe with no writer) or never end (`/dev/zero`): the open uses
/// `O_NONBLOCK`, so even opening a FIFO returns at once.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Error::io("open", path))?;
    let m = f.metadata().map_err(Error::io("stat", path))?;
    if !m.is_file() {
        return Err(Error::bad_input(
            format!(
                "{} is {}, not a regular file",
                path.display(),
                file_type_name(&m)
            ),
            "give a regular file: a pipe or device has no fixed contents to hash or store",
        ));
    }
    Ok(f)
}

/// A file a walk listed, as opened (without following a symlink), refused unless it is
/// still the regular file the walk listed (device and inode `seen`): a name swapped
/// for another file between the walk's `stat` and the open is [`replaced`], so the
/// bytes stored under a name are those of the file whose stat is recorded with them.
pub(crate) fn check_listed(f: File, path: &Path, seen: (u64, u64)) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().map_err(Error::io("stat", path))?;
    if !m.is_file() || (m.dev(), m.ino()) != seen {
        return Err(replaced(path));
    }
    Ok(f)
}

/// The error for an entry that changed into another file or folder while it was read.
pub(crate) fn replaced(path: &Path) -> Error {
    Error::bad_input(
        format!(
            "{} was replaced while it was being ingested: it is no longer the file or folder the walk listed",
            path.display()
        ),
        "let nothing move or replace entries of the folder while it is ingested, then ingest it again; nothing was recorded",
    )
}

/// Hashes a file without storing it.
pub fn hash_file(path: &Path) -> Result<ObjectMeta> {
    let mut f = open_regular(path)?;
    pump(&mut f, None, path)
}

/// A file's object id (BLAKE3) alone: memory-mapped and hashed on every core, for
/// checks that need the content address and not the SHA-256 (an executable of the
/// ledger's own, re-hashed before each run). Only for files nothing else writes: a file
/// truncated while mapped faults. Checked first as `hash_file` checks (a regular file).
pub(crate) fn object_id_of_file(path: &Path) -> Result<ObjectId> {
    open_regular(path)?;
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).map_err(Error::io("read", path))?;
    Ok(ObjectId(*h.finalize().as_bytes()))
}

/// Proof that every object stored so far is durable: the only way into the journal
/// ([`crate::Ledger::commit`] takes one). Only [`Store::sync`] makes one, and while it
/// lives it holds the store mutably borrowed, so nothing can be stored between that sync
/// and the commit that consumes it. The compiler, not a convention, keeps a committed
/// event from naming an object a crash could lose.
#[must_use = "a sync is only worth something to the commit that follows it"]
pub struct Synced<'a> {
    _store: std::marker::PhantomData<&'a mut Store>,
}

/// The store: a backend plus the hashing and verification every caller relies on.
pub struct Store {
    backend: Box<dyn Backend>,
}

impl Store {
    pub fn new(backend: Box<dyn Backend>) -> Self {
        Store { backend }
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Stores a stream, hashing while writing; returns the digests of what was stored.
    pub fn put_reader(&self, reader: &mut dyn Read, src: &Path) -> Result<ObjectMeta> {
        let mut staged = self.backend.stage()?;
        let meta = pump(reader, Some(&mut staged), src)?;
        staged.commit(&meta.id)?;
        Ok(meta)
    }

    /// Stores a file. A file that fits one chunk is read once into memory, hashed, and
    /// written only if the store lacks it, so re-ingesting known files creates nothing.
    pub fn put_file(&self, path: &Path) -> Result<ObjectMeta> {
        self.put_open(open_regular(path)?, path)
    }

    /// As [`Store::put_file`], for a file already opened (from `path`).
    pub(crate) fn put_open(&self, mut f: File, path: &Path) -> Result<ObjectMeta> {
        let len = f.metadata().map_err(Error::io("stat", path))?.len();
        if len < CHUNK as u64 {
            let mut buf = Vec::with_capacity(len as usize + 1);
            (&mut f)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(Error::io("read", path))?;
            if buf.len() < CHUNK {
                return self.put_bytes_from(&buf, path);
            }
            // It grew while we read: stream what we have and the rest.
            let mut chained = std::io::Cursor::new(buf).chain(f);
            return self.put_reader(&mut chained, path);
        }
        self.put_reader(&mut f, path)
    }

    /// As [`Store::put_file`], for a file expected to be `like` (an object the ledger
    /// recorded for the same output before): when the file is as long, its bytes hash
    /// to `like`'s id (BLAKE3 alone, on every core) and the store holds an intact copy of
    /// it, nothing is written and no SHA-256 computed (equal bytes, equal digests). A
    /// rebuild with the same output then costs one read, not a copy of it. Otherwise
    /// (another file, or `like` not stored here) the file is stored as `put_file` does.
    pub fn put_file_like(&self, path: &Path, like: &ObjectMeta) -> Result<ObjectMeta> {
        self.put_open_like(open_regular(path)?, path, like)
    }

    /// As [`Store::put_file_like`], for a file already opened (from `path`).
    pub(crate) fn put_open_like(
        &self,
        mut f: File,
        path: &Path,
        like: &ObjectMeta,
    ) -> Result<ObjectMeta> {
        use std::io::{Seek, SeekFrom};
        // Small files are read whole and only written if the store lacks them.
        if like.size >= CHUNK as u64
            && f.metadata().map_err(Error::io("stat", path))?.len() == like.size
        {
            let mut h = blake3::Hasher::new();
            let mut buf = vec![0u8; LIKE_CHUNK];
            let mut read = 0u64;
            loop {
                let n = read_full(&mut f, &mut buf).map_err(Error::io("read", path))?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                h.update_rayon(&buf[..n]);
            }
            if read == like.size
                && h.finalize().as_bytes() == &like.id.0
                && self.backend.freshen(&like.id)?
            {
                return Ok(*like);
            }
            // Stored from the same descriptor: reopening the name could find another file.
            f.seek(SeekFrom::Start(0))
                .map_err(Error::io("seek", path))?;
        }
        self.put_open(f, path)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ObjectMeta> {
        self.put_bytes_from(bytes, Path::new(&self.backend.describe()))
    }

    fn put_bytes_from(&self, bytes: &[u8], src: &Path) -> Result<ObjectMeta> {
        let meta = hash_bytes(bytes);
        if !self.backend.freshen(&meta.id)? {
            let mut staged = self.backend.stage()?;
            staged
                .write_all(bytes)
                .map_err(Error::io("write object from", src))?;
            staged.commit(&meta.id)?;
        }
        Ok(meta)
    }

    /// Makes every object written so far durable, and returns the proof the journal
    /// asks for before it commits an event (see [`Synced`]).
    pub fn sync(&mut self) -> Result<Synced<'_>> {
        if let Some(ms) = crate::env::test_number::<u64>("CTO_LEDGER_TEST_SYNC_DELAY_MS") {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        self.backend.sync()?;
        Ok(Synced {
            _store: std::marker::PhantomData,
        })
    }

    pub fn has(&self, id: &ObjectId) -> Result<bool> {
        self.backend.has(id)
    }

    /// Whether the store holds `id`, which the caller will name without storing it again
    /// (see [`Backend::freshen`]).
    pub fn has_fresh(&self, id: &ObjectId) -> Result<bool> {
        self.backend.freshen(id)
    }

    fn open_required(&self, id: &ObjectId) -> Result<Box<dyn Read + Send>> {
        self.backend.open(id)?.ok_or_else(|| Error::Integrity {
            message: format!(
                "object {id} is named by the ledger but missing from {}",
                self.backend.describe()
            ),
        })
    }

    /// Re-hashes a stored object. `Ok(None)` when it is absent.
    pub fn rehash(&self, id: &ObjectId) -> Result<Option<ObjectMeta>> {
        match self.backend.open(id)? {
            None => Ok(None),
            Some(mut r) => pump(&mut r, None, Path::new(&id.to_string())).map(Some),
        }
    }

    /// An object's bytes (at most `max` + 1 of them) and what they hash to, unverified:
    /// for checks that report what they found rather than fail. `Ok(None)` when absent.
    pub fn read_at_most(&self, id: &ObjectId, max: u64) -> Result<Option<(ObjectMeta, Vec<u8>)>> {
        let Some(r) = self.backend.open(id)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        let m = pump(
            &mut r.take(max + 1),
            Some(&mut bytes),
            Path::new(&id.to_string()),
        )?;
        Ok(Some((m, bytes)))
    }

    /// Copies an object into `sink`, then checks that what was copied hashes to `id`.
    /// Callers must treat the sink as untrusted until this returns `Ok`.
    pub fn copy_verified(&self, id: &ObjectId, sink: &mut dyn Write) -> Result<ObjectMeta> {
        let mut r = self.open_required(id)?;
        copy_checked(&mut r, id, sink)
    }

    /// As `copy_verified`, with `Ok(None)` when the object is absent.
    pub fn copy_verified_if_present(
        &self,
        id: &ObjectId,
        sink: &mut dyn Write,
    ) -> Result<Option<ObjectMeta>> {
        match self.backend.open(id)? {
            None => Ok(None),
            Some(mut r) => copy_checked(&mut r, id, sink).map(Some),
        }
    }

    /// Copies the object `want` describes into `sink`, reading at most `want.size` + 1
    /// bytes, and checks that what was copied is exactly that object: an object longer
    /// than its record is refused without being read to its end. `Ok(None)` when absent.
    /// Callers must treat the sink as untrusted until this returns `Ok`.
    pub fn copy_recorded(
        &self,
        want: &ObjectMeta,
        sink: &mut dyn Write,
    ) -> Result<Option<ObjectMeta>> {
        let Some(r) = self.backend.open(&want.id)? else {
            return Ok(None);
        };
        let mut r = r.take(want.size + 1);
        let got = pump(&mut r, Some(sink), Path::new(&want.id.to_string()))?;
        let why = if got.size > want.size {
            format!("it is longer than the {} bytes recorded for it", want.size)
        } else if got.id != want.id {
            format!("its bytes hash to {}", got.id)
        } else if got != *want {
            "it hashes to its id but not to the SHA-256 and size recorded for it".into()
        } else {
            return Ok(Some(got));
        };
        Err(Error::Integrity { message: why })
    }

    /// Reads a (small) object fully and verifies it.
    pub fn get_verified(&self, id: &ObjectId) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.copy_verified(id, &mut out)?;
        Ok(out)
    }
}
