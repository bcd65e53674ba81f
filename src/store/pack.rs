//! Small objects, many to a file: `objects/packs/<blake3 of the file>.pack`.
//!
//! A pack is written whole in memory, then as a read-only temp file beside its final name,
//! then renamed into place, so a pack that is visible is complete; nothing is ever
//! appended to one. Each process writes its own packs (their names are their contents'
//! hash, so two identical packs are one file) and reads everyone's. Durability is the
//! store's sync before the journal names the objects, as for loose objects.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "CTOPACK1"                        8 bytes
//! object bytes, back to back
//! index: per object  id (32) | offset (8) | length (8)
//! footer: index offset (8) | count (8) | "CTOPACK1"
//! ```
//!
//! Every read is verified above this layer (the store re-hashes what it reads), so a
//! damaged pack can make an object unreadable, never make wrong bytes count. The index is
//! checked for shape when loaded: entries that point outside the object area make the
//! whole pack an anomaly `audit` names.

use std::collections::HashMap;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::id::ObjectId;

pub(super) const DIR: &str = "packs";
const MAGIC: &[u8; 8] = b"CTOPACK1";
const ENTRY: usize = 32 + 8 + 8;
const FOOTER: usize = 8 + 8 + 8;
/// Objects smaller than this go in packs. Above it a file's create and rename (about
/// 0.1-0.3 ms on this disk) is under a tenth of writing its bytes, so packing gains
/// little, while a packed object is read whole into memory.
pub(crate) const SMALL_MAX: usize = 256 << 10;
/// A pack being filled is written out once it holds this many objects (an index of
/// 4.8 MB), whatever their size.
const PACK_OBJECTS_MAX: usize = 100_000;
/// A pack being filled is written out once it holds this much.
const PACK_TARGET: usize = 32 << 20;
/// No pack cto-ledger writes is larger (a pack is written once it holds `PACK_TARGET`,
/// so it holds at most that plus one small object, and its index): a larger file is not
/// one of ours, and its index is never read into memory.
const PACK_FILE_MAX: u64 = 64 << 20;
/// Copies of one object kept from the packs' indexes (see `refresh`).
const COPIES_MAX: usize = 16;
/// Temp files of packs being written start with this; they are never read as packs.
pub(super) const TEMP_PREFIX: &str = ".pack-";

/// Where an object sits in a pack file.
#[derive(Clone)]
struct Slot {
    file: Arc<File>,
    path: Arc<Path>,
    offset: u64,
    len: u64,
}

impl Slot {
    fn bytes(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.offset)?;
        Ok(buf)
    }
}

/// The object ids of one pack file and where each is, checked for shape.
pub(crate) struct PackIndex {
    pub(crate) entries: Vec<(ObjectId, u64, u64)>,
}

/// Reads and checks a pack's footer and index (not its objects).
pub(crate) fn read_index(f: &File) -> std::result::Result<PackIndex, String> {
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < (MAGIC.len() + FOOTER) as u64 {
        return Err(format!("{len} bytes: too short to be a pack"));
    }
    if len > PACK_FILE_MAX {
        return Err(format!(
            "{len} bytes: larger than any pack cto-ledger writes ({PACK_FILE_MAX})"
        ));
    }
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0).map_err(|e| e.to_string())?;
    let mut foot = [0u8; FOOTER];
    f.read_exact_at(&mut foot, len - FOOTER as u64)
        .map_err(|e| e.to_string())?;
    if &head != MAGIC || &foot[16..] != MAGIC {
        return Err("not a pack (no CTOPACK1 header and footer)".into());
    }
    let at = u64::from_le_bytes(foot[..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(foot[8..16].try_into().expect("8 bytes"));
    let index_len = count.checked_mul(ENTRY as u64);
    if at < MAGIC.len() as u64
        || index_len.and_then(|n| n.checked_add(at)) != Some(len - FOOTER as u64)
    {
        return Err(format!(
            "its footer describes {count} objects from offset {at}, which is not the file's shape"
        ));
    }
    let mut raw = vec![0u8; index_len.expect("checked above") as usize];
    f.read_exact_at(&mut raw, at).map_err(|e| e.to_string())?;
    let mut entries = Vec::with_capacity(count as usize);
    for e in raw.chunks_exact(ENTRY) {
        let id = ObjectId(e[..32].try_into().expect("32 bytes"));
        let off = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let n = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
        if n >= SMALL_MAX as u64 {
            return Err(format!(
                "its index gives object {id} {n} bytes, more than a packed object holds"
            ));
        }
        if off < MAGIC.len() as u64 || off.checked_add(n).is_none_or(|end| end > at) {
            return Err(format!(
                "its index places object {id} at {off}+{n}, outside the object area"
            ));
        }
        entries.push((id, off, n));
    }
    Ok(PackIndex { entries })
}

/// Builds a pack's bytes from objects; returns them and their index.
pub(crate) fn encode(objects: &[(ObjectId, &[u8])]) -> (Vec<u8>, Vec<(ObjectId, u64, u64)>) {
    let mut out = Vec::new();
    let index = write_pack(objects, &mut |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    })
    .expect("writing to memory does not fail");
    (out, index)
}

/// A pack's index entries as bytes: what follows the objects (and what a remote keeps
/// beside a pack as its `.idx`).
pub(crate) fn index_bytes(index: &[(ObjectId, u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() * ENTRY);
    for (id, off, n) in index {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

/// Writes a pack (header, objects, index, footer) through `put`; returns its index.
fn write_pack(
    objects: &[(ObjectId, &[u8])],
    put: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Vec<(ObjectId, u64, u64)>> {
    put(MAGIC)?;
    let mut at = MAGIC.len() as u64;
    let mut index = Vec::with_capacity(objects.len());
    for (id, b) in objects {
        index.push((*id, at, b.len() as u64));
        put(b)?;
        at += b.len() as u64;
    }
    put(&index_bytes(&index))?;
    put(&at.to_le_bytes())?;
    put(&(index.len() as u64).to_le_bytes())?;
    put(MAGIC)?;
    Ok(index)
}

/// Objects committed by this process and not yet in a pack file.
#[derive(Default)]
struct Filling {
    objects: Vec<(ObjectId, Vec<u8>)>,
    at: HashMap<ObjectId, usize>,
    bytes: usize,
}

#[derive(Default)]
struct Loaded {
    /// Pack file names already read, and the directory's change time when last listed.
    names: std::collections::HashSet<String>,
    listed: Option<SystemTime>,
    /// Every copy the loaded packs hold of each object, the newest written here first: a
    /// damaged or planted copy cannot hide an intact one.
    slots: HashMap<ObjectId, Vec<Slot>>,
}

/// The packs of one store: what this process is filling, and every pack file's index.
pub(super) struct Packs {
    dir: PathBuf,
    filling: Mutex<Filling>,
    loaded: Mutex<Loaded>,
    /// Bytes a pack write may still take before an injected "disk full" (tests only).
    budget: Mutex<Option<u64>>,
    /// When this process last marked each pack as used ([`Packs::freshen`]).
    marked: Mutex<HashMap<Arc<Path>, std::time::Instant>>,
    /// Files holding objects this process relied on instead of storing them (marked when
    /// found, and again at `sync`, just before the journal names them).
    relied: Mutex<std::collections::HashSet<PathBuf>>,
    /// Object files and packs this process renamed into place since its last sync.
    unsynced: Mutex<Vec<PathBuf>>,
}

/// A pack's name, for messages.
fn shown(p: &Path) -> String {
    p.display().to_string()
}

impl Packs {
    pub(super) fn new(dir: PathBuf, budget: Option<u64>) -> Packs {
        Packs {
            dir,
            filling: Mutex::default(),
            loaded: Mutex::default(),
            budget: Mutex::new(budget),
            marked: Mutex::default(),
            relied: Mutex::default(),
            unsynced: Mutex::default(),
        }
    }

    /// Takes a small object; writes a pack once enough has gathered.
    pub(super) fn add(&self, id: &ObjectId, bytes: Vec<u8>) -> Result<()> {
        let mut f = self.filling.lock().expect("not poisoned");
        if f.at.contains_key(id) {
            return Ok(());
        }
        f.bytes += bytes.len();
        let n = f.objects.len();
        f.at.insert(*id, n);
        f.objects.push((*id, bytes));
        if f.bytes >= PACK_TARGET || f.objects.len() >= PACK_OBJECTS_MAX {
            self.write_out(&mut f)?;
        }
        Ok(())
    }

    /// Writes what is being filled as a pack file (not yet durable: see `Backend::sync`).
    pub(super) fn flush(&self) -> Result<()> {
        let mut f = self.filling.lock().expect("not poisoned");
        self.write_out(&mut f)
    }

    fn write_out(&self, f: &mut Filling) -> Result<()> {
        if f.objects.is_empty() {
            return Ok(());
        }
        let refs: Vec<(ObjectId, &[u8])> = f.objects.iter().map(|(id, b)| (*id, &b[..])).collect();
        let total = MAGIC.len() + f.bytes + refs.len() * ENTRY + FOOTER;
        if let Some(b) = self.budget.lock().expect("not poisoned").as_mut() {
            if total as u64 > *b {
                return Err(Error::Io {
                    action: "write pack",
                    path: self.dir.clone(),
                    source: io::Error::from(io::ErrorKind::StorageFull),
                });
            }
            *b -= total as u64;
        }
        // Streamed to the temp file and hashed on the way: no second copy in memory.
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(Permissions::from_mode(0o444))
            .tempfile_in(&self.dir)
            .map_err(Error::io("create a pack in", &self.dir))?;
        let mut hasher = blake3::Hasher::new();
        let index = {
            let mut w = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut put = |b: &[u8]| {
                hasher.update(b);
                w.write_all(b)
            };
            let index = write_pack(&refs, &mut put);
            index
                .and_then(|index| w.flush().map(|()| index))
                .map_err(Error::io("write pack", &self.dir))?
        };
        let name = format!("{}.pack", hasher.finalize().to_hex());
        let target = self.dir.join(&name);
        {
            if let Some(root) = self.dir.parent() {
                super::power_cut::renaming(root, &target, tmp.as_file());
            }
            match tmp.persist_noclobber(&target) {
                Ok(_) => self.wrote(&target),
                // The same name is the same bytes: another process wrote this pack, and
                // may not have synced it yet.
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    self.rely_on(target.clone())
                }
                Err(e) => {
                    return Err(Error::Io {
                        action: "rename pack into",
                        path: target,
                        source: e.error,
                    })
                }
            }
        }
        let file = Arc::new(File::open(&target).map_err(Error::io("open pack", &target))?);
        let path: Arc<Path> = Arc::from(target.as_path());
        let mut l = self.loaded.lock().expect("not poisoned");
        for (id, offset, len) in index {
            // The copy just written goes first: it was hashed here.
            l.slots.entry(id).or_default().insert(
                0,
                Slot {
                    file: file.clone(),
                    path: path.clone(),
                    offset,
                    len,
                },
            );
        }
        l.names.insert(name);
        *f = Filling::default();
        Ok(())
    }

    /// Loads the index of every pack file not read yet, when the directory changed
    /// since it was last listed. Malformed packs are skipped here (`list` names them).
    fn refresh(&self, l: &mut Loaded) -> Result<()> {
        let changed = fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        if changed.is_some() && changed == l.listed {
            return Ok(());
        }
        let Some(rd) = read_dir_if_present(&self.dir)? else {
            return Ok(());
        };
        for e in rd {
            let e = e.map_err(Error::io("list", &self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".pack") || l.names.contains(&name) {
                continue;
            }
            let path = e.path();
            let Ok(file) = open_pack(&path) else { continue };
            let Ok(index) = read_index(&file) else {
                continue;
            };
            let file = Arc::new(file);
            let path: Arc<Path> = Arc::from(path.as_path());
            for (id, offset, len) in index.entries {
                let copies = l.slots.entry(id).or_default();
                // A few copies of one object are normal (processes that stored it at once);
                // thousands are planted, and would cost a hash each on every read.
                if copies.len() < COPIES_MAX
                    && !copies
                        .iter()
                        .any(|c| Arc::ptr_eq(&c.file, &file) && c.offset == offset && c.len == len)
                {
                    copies.push(Slot {
                        file: file.clone(),
                        path: path.clone(),
                        offset,
                        len,
                    });
                }
            }
            l.names.insert(name);
        }
        l.listed = changed;
        Ok(())
    }

    /// Every copy of the object in the packs (none: empty).
    fn slots(&self, id: &ObjectId) -> Result<Vec<Slot>> {
        let mut l = self.loaded.lock().expect("not poisoned");
        if let Some(s) = l.slots.get(id) {
            return Ok(s.clone());
        }
        self.refresh(&mut l)?;
        Ok(l.slots.get(id).cloned().unwrap_or_default())
    }

    /// The first copy of the object whose bytes hash to its id, with those bytes.
    fn intact(&self, id: &ObjectId) -> Result<Option<(Slot, Vec<u8>)>> {
        for s in self.slots(id)? {
            if let Ok(b) = s.bytes() {
                if blake3::hash(&b).as_bytes() == &id.0 {
                    return Ok(Some((s, b)));
                }
            }
        }
        Ok(None)
    }

    /// The pack files holding the object and where in each, for messages.
    pub(super) fn locate(&self, id: &ObjectId) -> Option<String> {
        let all = self.slots(id).ok()?;
        let shown: Vec<String> = all
            .iter()
            .map(|s| format!("{} (bytes {}+{})", s.path.display(), s.offset, s.len))
            .collect();
        (!shown.is_empty()).then(|| shown.join(", "))
    }

    pub(super) fn has(&self, id: &ObjectId) -> Result<bool> {
        if self
            .filling
            .lock()
            .expect("not poisoned")
            .at
            .contains_key(id)
        {
            return Ok(true);
        }
        Ok(!self.slots(id)?.is_empty())
    }

    /// Whether an intact copy of the object is here (its bytes re-hashed: a command that
    /// relies on it instead of storing its own must not rely on a damaged or planted
    /// copy), marking its pack as just used (`gc` keeps packs used within its grace
    /// period). A pack `gc` removed is not here, whatever this process loaded before.
    /// Returns the pack file relied on (`None` when no intact copy is here); an object
    /// still being filled is relied on through the pack it will be written to, which is
    /// new: its file is returned as the packs folder itself.
    pub(super) fn freshen(&self, id: &ObjectId) -> Result<Option<std::path::PathBuf>> {
        if self
            .filling
            .lock()
            .expect("not poisoned")
            .at
            .contains_key(id)
        {
            return Ok(Some(self.dir.clone()));
        }
        let Some((s, _)) = self.intact(id)? else {
            return Ok(None);
        };
        // One mark per pack a minute is enough for a grace period of hours, and keeps an
        // unchanged tree's re-ingest from touching the same pack for every file.
        let mut marked = self.marked.lock().expect("not poisoned");
        let now = std::time::Instant::now();
        // `gc` keeps anything marked within its grace period, never less than two minutes.
        let recent = marked
            .get(&s.path)
            .is_some_and(|t| now.duration_since(*t) < std::time::Duration::from_secs(60));
        if recent {
            return Ok(Some(s.path.to_path_buf()));
        }
        if touch(&s.path).is_err() {
            return Ok(None);
        }
        marked.insert(s.path.clone(), now);
        Ok(Some(s.path.to_path_buf()))
    }

    pub(super) fn rely_on(&self, file: PathBuf) {
        self.relied.lock().expect("not poisoned").insert(file);
    }

    /// An object file or pack became visible at `path` (not yet durable).
    pub(super) fn wrote(&self, path: &Path) {
        self.unsynced
            .lock()
            .expect("not poisoned")
            .push(path.to_path_buf());
    }

    /// The files renamed into place since the last call, for the sync to flush.
    pub(super) fn take_unsynced(&self) -> Vec<PathBuf> {
        std::mem::take(&mut *self.unsynced.lock().expect("not poisoned"))
    }

    /// Marks again every file this process relied on, right before the journal commit that
    /// names what is in them: `gc` keeps what was marked within its grace period, so
    /// nothing it removes can be named by this commit. A file `gc` already removed (the
    /// command ran longer than the grace period) fails the command before anything is
    /// committed. Returns the files marked, which the sync must also make durable (one
    /// may be another process's write that it has not synced yet).
    pub(super) fn remark_relied(&self) -> Result<Vec<PathBuf>> {
        let relied: Vec<PathBuf> = self.relied.lock().expect("not poisoned").drain().collect();
        for f in &relied {
            if let Err(e) = touch(f) {
                return Err(Error::Integrity {
                    message: format!(
                        "{} held objects this command relied on, and is gone ({e}): `cto-ledger gc` removed it while the command ran; nothing was committed: run the command again",
                        f.display()
                    ),
                });
            }
        }
        Ok(relied)
    }

    /// The bytes of an intact copy (one that hashes to the id), or `None`.
    pub(super) fn read_intact(&self, id: &ObjectId) -> Result<Option<Vec<u8>>> {
        {
            let f = self.filling.lock().expect("not poisoned");
            if let Some(&i) = f.at.get(id) {
                return Ok(Some(f.objects[i].1.clone()));
            }
        }
        Ok(self.intact(id)?.map(|(_, b)| b))
    }

    /// The first copy's bytes as they are, for when no copy is intact
    /// ([`Packs::read_intact`] found none): the store refuses them, naming the object.
    pub(super) fn read_first_copy(&self, id: &ObjectId) -> Result<Option<Vec<u8>>> {
        let Some(s) = self.slots(id)?.into_iter().next() else {
            return Ok(None);
        };
        s.bytes().map(Some).map_err(|e| Error::Integrity {
            message: format!(
                "object {id} could not be read from {} at offset {} ({e})",
                s.path.display(),
                s.offset
            ),
        })
    }

    /// Every copy in the loaded packs that does not hash to the id it is filed under:
    /// (pack, offset, id). `audit` names them (the object may still read from another).
    pub(super) fn damaged_copies(&self) -> Result<Vec<(String, u64, ObjectId)>> {
        let mut l = self.loaded.lock().expect("not poisoned");
        l.listed = None;
        self.refresh(&mut l)?;
        let mut out = Vec::new();
        for (id, slots) in &l.slots {
            for s in slots {
                let ok = s
                    .bytes()
                    .is_ok_and(|b| blake3::hash(&b).as_bytes() == &id.0);
                if !ok {
                    out.push((s.path.display().to_string(), s.offset, *id));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every object in a pack file or being filled; malformed packs and stray names as
    /// anomalies; temp files counted.
    pub(super) fn list(&self, out: &mut super::Listing) -> Result<()> {
        {
            let f = self.filling.lock().expect("not poisoned");
            out.objects.extend(f.objects.iter().map(|(id, _)| *id));
        }
        if fs::symlink_metadata(&self.dir).is_ok_and(|m| !m.is_dir()) {
            out.anomalies.push((
                shown(&self.dir),
                "not a directory (something stands in place of the packs folder)".into(),
            ));
            return Ok(());
        }
        let Some(rd) = read_dir_if_present(&self.dir)? else {
            return Ok(());
        };
        for e in rd {
            let e = e.map_err(Error::io("list", &self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(TEMP_PREFIX) {
                out.temps += 1;
                continue;
            }
            let stem = name.strip_suffix(".pack");
            if stem.is_none_or(|s| s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit())) {
                out.anomalies
                    .push((shown(&path), "not a pack file cto-ledger writes".into()));
                continue;
            }
            match open_pack(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| read_index(&f))
            {
                Ok(index) => out.objects.extend(index.entries.iter().map(|e| e.0)),
                Err(why) => out
                    .anomalies
                    .push((shown(&path), format!("damaged pack: {why}"))),
            }
        }
        Ok(())
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A directory's entries, or `None` when there is no such directory.
pub(crate) fn read_dir_if_present(dir: &Path) -> Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Some(rd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            action: "list",
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// Sets a file's modification time to now: the mark `gc`'s grace period reads.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// Opens a pack file for reading, refusing anything but a regular, read-only file.
pub(crate) fn open_pack(path: &Path) -> io::Result<File> {
    let m = fs::symlink_metadata(path)?;
    if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if m.permissions().mode() & 0o222 != 0 {
        return Err(io::Error::other(format!(
            "writable (mode {:o}); packs must be read-only",
            m.permissions().mode() & 0o777
        )));
    }
    File::open(path)
}

impl Drop for Packs {
    /// What a command stored but never synced still lands in a pack (not made durable:
    /// nothing committed names it, so a crash losing it loses nothing).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
