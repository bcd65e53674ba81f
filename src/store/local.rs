//! Objects as read-only files under `objects/<2 hex>/<62 hex>`, written as a read-only
//! temp file (in `objects/tmp/`, or beside its final name when the id is known first) and
//! renamed into place, so no half-written object is ever visible. Durability is one
//! `syncfs` (`Backend::sync`) before the journal names the objects, not an fsync each.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Backend, Listing, Staged};
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub(crate) struct LocalBackend {
    root: PathBuf,
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
            fs::create_dir_all(root.join(TMP))
                .map_err(Error::io("create object directory", root))?;
            if !fs::symlink_metadata(root.join(TMP)).is_ok_and(|m| m.is_dir()) {
                return Err(refuse());
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
        Ok(LocalBackend {
            root: root.to_path_buf(),
        })
    }

    pub(crate) fn path_of(&self, id: &ObjectId) -> PathBuf {
        object_path(&self.root, id)
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
        if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

struct LocalStaged {
    tmp: NamedTempFile,
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
        self.spend(buf.len())?;
        self.tmp.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.spend(buf.len())?;
        self.tmp.write_all(buf)?;
        self.written += buf.len() as u64;
        if self.written - self.kicked >= WRITEBACK_STEP {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a file descriptor we own; it only starts I/O.
            unsafe {
                libc::sync_file_range(
                    self.tmp.as_file().as_raw_fd(),
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
        self.tmp.flush()
    }
}

impl Staged for LocalStaged {
    fn commit(self: Box<Self>, id: &ObjectId) -> Result<()> {
        let target = object_path(&self.target_root, id);
        if fs::symlink_metadata(&target).is_ok() {
            // Already stored: idempotent success; the temp file is removed on drop. A
            // damaged copy is left as it is, as evidence: `audit` names it.
            return Ok(());
        }
        // The temp file was created read-only (0444) and its fan-out directory exists.
        // Durability comes from `Backend::sync` (one syncfs) before the journal commits,
        // not from an fsync per object: the rename is atomic either way.
        let dir = target.parent().expect("object path has a parent");
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        self.tmp.persist(&target).map_err(|e| Error::Io {
            action: "rename object into",
            path: target.clone(),
            source: e.error,
        })?;
        super::power_cut::wrote(&target);
        Ok(())
    }
}

impl LocalBackend {
    fn stage_in(&self, dir: PathBuf) -> Result<Box<dyn Staged>> {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(Permissions::from_mode(0o444))
            .tempfile_in(&dir)
            .map_err(Error::io("create temporary object in", &dir))?;
        Ok(Box::new(LocalStaged {
            tmp,
            target_root: self.root.clone(),
            budget: injected_budget(),
            written: 0,
            kicked: 0,
        }))
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

    fn open(&self, id: &ObjectId) -> Result<Option<Box<dyn Read + Send>>> {
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let mut opts = OpenOptions::new();
        opts.read(true);
        match opts.open(&p) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
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
            let ft = fan.file_type().map_err(Error::io("stat", fan.path()))?;
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
            for obj in fs::read_dir(fan.path()).map_err(Error::io("list", fan.path()))? {
                let obj = obj.map_err(Error::io("list", fan.path()))?;
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
        out.objects.sort();
        Ok(out)
    }

    fn clean_temps(&self, age: std::time::Duration) -> Result<usize> {
        let mut n = remove_stale_temps(&self.root.join(TMP), age);
        for i in 0..=255u8 {
            n += remove_stale_temps(&self.root.join(format!("{i:02x}")), age);
        }
        Ok(n)
    }

    fn sync(&self) -> Result<()> {
        let d = File::open(&self.root).map_err(Error::io("open", &self.root))?;
        rustix::fs::syncfs(&d).map_err(|e| Error::Io {
            action: "sync the filesystem of",
            path: self.root.clone(),
            source: e.into(),
        })
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
