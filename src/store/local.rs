//! Objects as read-only files under `objects/<2 hex>/<62 hex>`, written as a read-only
//! temp file (in `objects/tmp/`, or beside its final name when the id is known first) and
//! renamed into place, so no half-written object is ever visible; objects smaller than
//! [`pack::SMALL_MAX`] many to a file under `objects/packs/` ([`pack`]). Durability is
//! `Backend::sync` before the journal names the objects: a flush of each file this process
//! wrote or relied on and of their folders when they are few, else one `syncfs`.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::pack::{self, Packs};
use super::{Backend, Listing, Staged};
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub(crate) struct LocalBackend {
    root: PathBuf,
    packs: std::sync::Arc<Packs>,
}

const TMP: &str = "tmp";
/// Temp files (in `tmp/` or a fan-out directory) start with this; they are never objects.
pub(super) const TEMP_PREFIX: &str = ".obj-";

impl LocalBackend {
    /// Opens (and with `create`, makes) the object directory at `root`.
    pub(crate) fn open(root: &Path, create: bool) -> Result<Self> {
        // Never create or write through a link standing where the store should be.
        let refuse = || {
            Error::Integrity {
            message: format!(
                "{} is not a directory (a symlink or file stands in place of the object store); refusing to use it",
                root.display()
            ),
        }
        };
        match fs::symlink_metadata(root) {
            Ok(m) if !m.is_dir() => return Err(refuse()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {}
            Err(e) => {
                return Err(Error::Io {
                    action: "open object directory",
                    path: root.to_path_buf(),
                    source: e,
                })
            }
        }
        if create {
            for sub in [TMP, pack::DIR] {
                fs::create_dir_all(root.join(sub))
                    .map_err(Error::io("create object directory", root))?;
                if !fs::symlink_metadata(root.join(sub)).is_ok_and(|m| m.is_dir()) {
                    return Err(refuse());
                }
            }
            remove_stale_temps(&root.join(TMP), std::time::Duration::from_secs(3600));
            // All 256 fan-out directories up front, so writing an object never needs a mkdir.
            if !root.join("ff").is_dir() {
                for i in 0..=255u8 {
                    let d = root.join(format!("{i:02x}"));
                    if let Err(e) = fs::create_dir(&d) {
                        if e.kind() != io::ErrorKind::AlreadyExists {
                            return Err(Error::Io {
                                action: "create",
                                path: d,
                                source: e,
                            });
                        }
                    }
                }
                sync_dir(root).map_err(Error::io("fsync", root))?;
            }
        }
        super::power_cut::opened(root);
        Ok(LocalBackend {
            root: root.to_path_buf(),
            packs: std::sync::Arc::new(Packs::new(root.join(pack::DIR), injected_budget())),
        })
    }

    pub(crate) fn path_of(&self, id: &ObjectId) -> PathBuf {
        object_path(&self.root, id)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn packs(&self) -> &Packs {
        &self.packs
    }
}

fn object_path(root: &Path, id: &ObjectId) -> PathBuf {
    let hex = id.hex();
    root.join(&hex[..2]).join(&hex[2..])
}

/// Temp files left by a killed command are never objects; once nobody has written
/// them for `age`, nobody is still writing them. Returns how many were removed.
fn remove_stale_temps(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let cutoff = std::time::SystemTime::now() - age;
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(TEMP_PREFIX) && !name.starts_with(pack::TEMP_PREFIX) {
            continue;
        }
        if e.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff)
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Whether an intact copy of `id` is stored (packed, or the loose file at `loose`); if so
/// it is marked and remembered as relied on (see [`Packs::remark_relied`]).
fn rely_on_stored(packs: &Packs, loose: &Path, id: &ObjectId) -> Result<bool> {
    if let Some(pack) = packs.freshen(id)? {
        packs.rely_on(pack);
        return Ok(true);
    }
    if intact_file(loose, id) && pack::touch(loose).is_ok() {
        packs.rely_on(loose.to_path_buf());
        return Ok(true);
    }
    Ok(false)
}

/// Whether the file at `path` is a stored object `id`: a regular, read-only file of this
/// store (no link to a file elsewhere: its only other name may be `exec/<id>`) whose
/// bytes hash to `id` (BLAKE3, on every core).
fn intact_file(path: &Path, id: &ObjectId) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(path) else {
        return false;
    };
    let ours = m.is_file()
        && m.mode() & 0o222 == 0
        && (m.nlink() == 1
            || (m.nlink() == 2
                && path
                    .ancestors()
                    .nth(3)
                    .map(|home| home.join("exec").join(id.hex()))
                    .and_then(|e| fs::symlink_metadata(e).ok())
                    .is_some_and(|e| e.ino() == m.ino() && e.dev() == m.dev())));
    ours && super::object_id_of_file(path).is_ok_and(|got| got == *id)
}

/// Moves a damaged object file aside as `<name>.damaged-<ns>`: no object's name, so
/// `audit` reports it, and never read as the object again.
fn set_aside(path: &Path) -> Result<()> {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{ns}"));
    fs::rename(path, &aside).map_err(Error::io("move aside the damaged object", path))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Up to this many files a sync flushes each (and their folders); past it one `syncfs` of
/// the store's filesystem is cheaper. Measured here: about 0.35 ms a file on an idle disk,
/// where `syncfs` also waits for every other program's dirty data (a build's own 100 MB
/// output, written just before the store's copy of it).
const FLUSH_EACH_MAX: usize = 16;

/// Makes `files` (object files and packs under `objects/`) durable, with the folder
/// entries that name them: each file's folder and the one above it (a fan-out folder made
/// for it is an entry in `objects/`).
fn flush_each(files: &[PathBuf]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        File::open(f)
            .and_then(|h| h.sync_data())
            .map_err(Error::io("sync", f))?;
        dirs.extend(f.ancestors().skip(1).take(2));
    }
    for d in dirs {
        sync_dir(d).map_err(Error::io("sync", d))?;
    }
    Ok(())
}

/// An object being written: in memory while it is small enough for a pack, then (past
/// [`pack::SMALL_MAX`]) in a temp file that becomes a loose object.
struct LocalStaged {
    small: Option<Vec<u8>>,
    tmp: Option<NamedTempFile>,
    /// Where the temp file goes if the object outgrows a pack.
    spill: PathBuf,
    packs: std::sync::Arc<Packs>,
    target_root: PathBuf,
    /// Bytes this write may still take before an injected "disk full" (tests only).
    budget: Option<u64>,
    /// Bytes written, and how far writeback has been started.
    written: u64,
    kicked: u64,
}

/// Start writeback every this many bytes, so a big object reaches the disk while it
/// is still being hashed and the final sync has little left to do.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Fault injection for the test suite: `CTO_LEDGER_TEST_DISK_FULL_AFTER=N` makes every
/// object write fail with ENOSPC after N bytes, as a full disk would.
fn injected_budget() -> Option<u64> {
    crate::env::test_number("CTO_LEDGER_TEST_DISK_FULL_AFTER")
}

impl LocalStaged {
    /// The temp file, made (with what was buffered) when the object outgrows a pack.
    fn file(&mut self) -> io::Result<&mut NamedTempFile> {
        if self.tmp.is_none() {
            let mut tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .permissions(Permissions::from_mode(0o444))
                .tempfile_in(&self.spill)?;
            if let Some(b) = self.small.take() {
                tmp.write_all(&b)?;
                self.written = b.len() as u64;
            }
            self.tmp = Some(tmp);
        }
        Ok(self.tmp.as_mut().expect("made above"))
    }

    fn spend(&mut self, n: usize) -> io::Result<()> {
        if let Some(b) = &mut self.budget {
            if (n as u64) > *b {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            *b -= n as u64;
        }
        Ok(())
    }
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(b) = &mut self.small {
            if b.len() + buf.len() < pack::SMALL_MAX {
                b.extend_from_slice(buf);
                return Ok(());
            }
        }
        self.spend(buf.len())?;
        self.file()?.write_all(buf)?;
        self.written += buf.len() as u64;
        if self.written - self.kicked >= WRITEBACK_STEP {
            use std::os::fd::AsRawFd;
            let fd = self.file()?.as_file().as_raw_fd();
            // SAFETY: a plain system call on a file descriptor we own; it only starts I/O.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.kicked as libc::off64_t,
                    (self.written - self.kicked) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.kicked = self.written;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tmp {
            Some(t) => t.flush(),
            None => Ok(()),
        }
    }
}

impl Staged for LocalStaged {
    fn commit(mut self: Box<Self>, id: &ObjectId) -> Result<()> {
        let target = object_path(&self.target_root, id);
        if let Some(bytes) = self.small.take() {
            if rely_on_stored(&self.packs, &target, id)? {
                return Ok(());
            }
            return self.packs.add(id, bytes);
        }
        let tmp = self
            .tmp
            .take()
            .expect("an object is in memory or in a file");
        if fs::symlink_metadata(&target).is_ok() {
            if intact_file(&target, id) {
                // Already stored: idempotent success; the temp file is removed on drop.
                let _ = pack::touch(&target);
                self.packs.rely_on(target);
                return Ok(());
            }
            // Not this object (damaged, or planted): kept beside it as evidence under a
            // name that is no object's (`audit` names it); this copy takes its place.
            set_aside(&target)?;
        }
        // The temp file was created read-only (0444) and its fan-out directory exists.
        // Durability comes from `Backend::sync` before the journal commits, not from an
        // fsync here: the rename is atomic either way.
        let dir = target.parent().expect("object path has a parent");
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        super::power_cut::renaming(&self.target_root, &target, tmp.as_file());
        tmp.persist(&target).map_err(|e| Error::Io {
            action: "rename object into",
            path: target.clone(),
            source: e.error,
        })?;
        self.packs.wrote(&target);
        Ok(())
    }
}

impl LocalBackend {
    fn stage_in(&self, dir: PathBuf) -> Result<Box<dyn Staged>> {
        if !dir.is_dir() {
            return Err(Error::Io {
                action: "create temporary object in",
                path: dir,
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        Ok(Box::new(LocalStaged {
            small: Some(Vec::new()),
            tmp: None,
            spill: dir,
            packs: self.packs.clone(),
            target_root: self.root.clone(),
            budget: injected_budget(),
            written: 0,
            kicked: 0,
        }))
    }
}

impl LocalBackend {
    fn open_packed(&self, id: &ObjectId) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(self
            .packs
            .read_first_copy(id)?
            .map(|b| Box::new(io::Cursor::new(b)) as Box<dyn Read + Send>))
    }
}

impl Backend for LocalBackend {
    fn stage(&self) -> Result<Box<dyn Staged>> {
        self.stage_in(self.root.join(TMP))
    }

    /// When the id is known before writing, the temp file goes in the object's own
    /// fan-out directory: a rename within one directory costs a seventh of one across
    /// directories on this kind of disk (31 µs against 224 µs per object, measured).
    fn stage_for(&self, id: &ObjectId) -> Result<Box<dyn Staged>> {
        self.stage_in(self.root.join(&id.hex()[..2]))
    }

    fn has(&self, id: &ObjectId) -> Result<bool> {
        if self.packs.has(id)? {
            return Ok(true);
        }
        let p = self.path_of(id);
        match fs::symlink_metadata(&p) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Io {
                action: "stat",
                path: p,
                source: e,
            }),
        }
    }

    fn locate(&self, id: &ObjectId) -> String {
        let loose = self.path_of(id);
        if loose.exists() {
            return loose.display().to_string();
        }
        self.packs.locate(id).unwrap_or_else(|| id.to_string())
    }

    /// Re-hashes the copy relied on (an intact pack copy, or the loose file): a damaged
    /// or planted copy is not "already stored", so the caller stores its own.
    fn damaged_copies(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .packs
            .damaged_copies()?
            .into_iter()
            .map(|(pack, offset, id)| {
                (
                    format!("{pack} (offset {offset})"),
                    super::damaged_copy_message(&id),
                )
            })
            .collect())
    }

    fn freshen(&self, id: &ObjectId) -> Result<bool> {
        rely_on_stored(&self.packs, &self.path_of(id), id)
    }

    #[allow(private_interfaces)]
    fn local(&self) -> Option<&LocalBackend> {
        Some(self)
    }

    fn open(&self, id: &ObjectId) -> Result<Option<Box<dyn Read + Send>>> {
        // An intact packed copy first: nothing planted at the loose path (a junk file, a
        // link, a folder) can hide it.
        if let Some(b) = self.packs.read_intact(id)? {
            return Ok(Some(Box::new(io::Cursor::new(b))));
        }
        let p = self.path_of(id);
        match fs::symlink_metadata(&p) {
            Ok(m) if !m.is_file() => {
                return Err(Error::Integrity {
                    message: format!(
                        "{} is not a regular file; refusing to read object {id} through it",
                        p.display()
                    ),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.open_packed(id),
            _ => {}
        }
        let mut opts = OpenOptions::new();
        opts.read(true);
        match opts.open(&p) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.open_packed(id),
            Err(e) => Err(Error::Io {
                action: "open object",
                path: p,
                source: e,
            }),
        }
    }

    fn list(&self) -> Result<Listing> {
        let mut out = Listing::default();
        let rd = fs::read_dir(&self.root).map_err(Error::io("list", &self.root))?;
        for fan in rd {
            let fan = fan.map_err(Error::io("list", &self.root))?;
            let fname = fan.file_name().to_string_lossy().into_owned();
            if fname == TMP {
                out.temps += fs::read_dir(fan.path()).map(|d| d.count()).unwrap_or(0);
                continue;
            }
            if fname == pack::DIR && fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let ft = fan.file_type().map_err(Error::io_entry("stat", &fan))?;
            let valid_fan = fname.len() == 2
                && fname
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ft.is_dir() || !valid_fan {
                out.anomalies.push((
                    fan.path().display().to_string(),
                    "not an object fan-out directory".into(),
                ));
                continue;
            }
            let fan_path = fan.path();
            for obj in fs::read_dir(&fan_path).map_err(Error::io("list", &fan_path))? {
                let obj = obj.map_err(Error::io("list", &fan_path))?;
                if obj.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    out.temps += 1; // being written, or left by a killed command: never an object
                    continue;
                }
                let name = format!("{fname}{}", obj.file_name().to_string_lossy());
                let path = obj.path();
                match ObjectId::parse(&name) {
                    Ok(id) => {
                        let m = fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
                        if !m.is_file() {
                            out.anomalies
                                .push((path.display().to_string(), "not a regular file".into()));
                        } else if m.permissions().mode() & 0o222 != 0 {
                            out.anomalies.push((
                                path.display().to_string(),
                                format!(
                                    "writable (mode {:o}); objects must be read-only",
                                    m.permissions().mode() & 0o777
                                ),
                            ));
                            out.objects.push(id);
                        } else {
                            out.objects.push(id);
                        }
                    }
                    Err(_) => out.anomalies.push((
                        path.display().to_string(),
                        "name is not a BLAKE3 object id".into(),
                    )),
                }
            }
        }
        self.packs.list(&mut out)?;
        out.objects.sort();
        out.objects.dedup();
        Ok(out)
    }

    fn clean_temps(&self, age: std::time::Duration) -> Result<usize> {
        let mut n = remove_stale_temps(&self.root.join(TMP), age);
        n += remove_stale_temps(self.packs.dir(), age);
        for i in 0..=255u8 {
            n += remove_stale_temps(&self.root.join(format!("{i:02x}")), age);
        }
        Ok(n)
    }

    fn sync(&self) -> Result<()> {
        self.packs.flush()?;
        let mut files = self.packs.remark_relied()?;
        files.extend(self.packs.take_unsynced());
        // A file both written and relied on (a loose object stored again) is one flush.
        files.sort_unstable();
        files.dedup();
        if files.len() <= FLUSH_EACH_MAX {
            flush_each(&files)?;
            super::power_cut::flushed(&self.root, &files);
            return Ok(());
        }
        let d = File::open(&self.root).map_err(Error::io("open", &self.root))?;
        rustix::fs::syncfs(&d).map_err(|e| Error::Io {
            action: "sync the filesystem of",
            path: self.root.clone(),
            source: e.into(),
        })?;
        super::power_cut::synced_all(&self.root);
        Ok(())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
