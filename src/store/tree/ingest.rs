//! Folders into trees: every file stored once (or vouched for by the directory cache),
//! directories sealed deepest first, an unchanged directory's tree taken from its record.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::dircache::DirRow;
use super::walk::{walk, DirNode, Found, Known, Root, Walked};
use super::{Entry, ObjKind, Tree};
use crate::error::{Error, Result};
use crate::id::ObjectMeta;
use crate::store::Store;

/// What an ingest stored: the root and every object it read (files the directory cache
/// vouched for are not read and not listed, nor are trees taken from it), and the
/// directories' fresh records.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub root: ObjectMeta,
    pub root_kind: ObjKind,
    pub objects: Vec<(ObjectMeta, ObjKind)>,
    pub files: u64,
    pub cache_hits: u64,
    /// Every file read, by path, with its stat and digests.
    pub read: Vec<StatRow>,
    /// Records of the directories whose trees were encoded (none without a cache), to
    /// write after the commit.
    pub dir_rows: Vec<DirRow>,
}

/// What `stat` says about a file: what the directory cache and the stat cache compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub mode: u32,
}

impl StatKey {
    /// The key of a `stat` taken through rustix (as the walk does).
    pub fn of_stat(st: &rustix::fs::Stat) -> StatKey {
        StatKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
            mode: st.st_mode,
        }
    }

    pub fn of(m: &fs::Metadata) -> StatKey {
        use std::os::unix::fs::MetadataExt;
        StatKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            mode: m.mode(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatRow {
    pub path: Vec<u8>,
    pub key: StatKey,
    pub meta: ObjectMeta,
}

/// The directory cache an ingest matches folders against.
pub trait DirCache: Sync {
    /// The record the last ingest that encoded directory `dir` left (see
    /// [`super::dircache`]), and when it was written (ns since the epoch).
    fn dir(&self, dir: &Path) -> Option<(&[u8], i64)>;
}

fn is_exec(m: &fs::Metadata) -> bool {
    m.permissions().mode() & 0o111 != 0
}

/// Stores a file as a blob or a directory as a tree, symlinks recorded, never followed.
pub fn ingest_path(store: &Store, path: &Path, progress: &ProgressBar) -> Result<Ingested> {
    ingest_path_cached(store, path, progress, || Ok(None::<NoCache>))
}

/// As [`ingest_path`], for an output expected to be `like` (what the ledger recorded for
/// it before): a regular file goes through [`Store::put_file_like`], which writes nothing
/// when the bytes are `like`'s; anything else is ingested as `ingest_path` does.
pub fn ingest_path_like(
    store: &Store,
    path: &Path,
    progress: &ProgressBar,
    like: Option<&ObjectMeta>,
) -> Result<Ingested> {
    match like {
        Some(like) if fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) => {
            let m = store.put_file_like(path, like)?;
            progress.inc(1);
            Ok(Ingested::file(m))
        }
        _ => ingest_path(store, path, progress),
    }
}

impl Ingested {
    /// A single file stored as one blob.
    fn file(m: ObjectMeta) -> Ingested {
        Ingested {
            root: m,
            root_kind: ObjKind::Blob,
            objects: vec![(m, ObjKind::Blob)],
            files: 1,
            cache_hits: 0,
            read: Vec::new(),
            dir_rows: Vec::new(),
        }
    }
}

/// The cache of callers that have none.
struct NoCache;

impl DirCache for NoCache {
    fn dir(&self, _: &Path) -> Option<(&[u8], i64)> {
        None
    }
}

/// As [`ingest_path`], skipping what the directory cache `load_cache` returns vouches for.
/// The cache is loaded by `load_cache` on this thread while the directory is walked on
/// others; each directory is then matched against its record (in parallel).
pub fn ingest_path_cached<C: DirCache>(
    store: &Store,
    path: &Path,
    progress: &ProgressBar,
    load_cache: impl FnOnce() -> Result<Option<C>>,
) -> Result<Ingested> {
    let meta = fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::bad_input(
            format!("{} does not exist", path.display()),
            "check the path; nothing was stored",
        ),
        _ => Error::Io {
            action: "stat",
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_file() {
        let m = store.put_file(path)?;
        progress.inc(1);
        return Ok(Ingested::file(m));
    }
    if !meta.is_dir() {
        let hint = if meta.file_type().is_symlink() {
            "give the file or directory it points to; symlinks are recorded only inside a directory"
        } else {
            "give a regular file or a directory: a pipe, device or socket has no fixed contents"
        };
        return Err(Error::bad_input(
            format!(
                "{} is {}, not a regular file or directory",
                path.display(),
                crate::store::file_type_name(&meta)
            ),
            hint,
        ));
    }
    let (walked, cache) = std::thread::scope(|s| {
        let walker = s.spawn(|| walk(path, false, &[]));
        let cache = load_cache();
        (walker.join().expect("the walk does not panic"), cache)
    });
    let (mut walked, cache) = (walked?, cache?);
    if let Some(c) = &cache {
        walked.dirs.par_iter_mut().for_each(|d| d.match_cache(c));
    }
    store_below_root(store, walked, progress, cache.is_some())?.seal(store, Vec::new())
}

/// A walked directory stored up to its root: every file below it stored (or vouched for
/// by the cache), every subdirectory sealed as a tree, the root's entries still open.
struct Open {
    root: DirNode,
    made: Made,
}

/// What storing and sealing made so far.
struct Made {
    /// Whether to make records of the directories encoded (there is a cache to keep them).
    records: bool,
    objects: Vec<(ObjectMeta, ObjKind)>,
    read: Vec<StatRow>,
    dir_rows: Vec<DirRow>,
    files: u64,
    cache_hits: u64,
}

fn store_below_root(
    store: &Store,
    walked: Walked,
    progress: &ProgressBar,
    records: bool,
) -> Result<Open> {
    let Walked {
        mut dirs,
        levels,
        root,
    } = walked;
    let mut made = Made {
        records,
        objects: Vec::new(),
        read: Vec::new(),
        dir_rows: Vec::new(),
        files: 0,
        cache_hits: 0,
    };
    store_files(store, &root, &mut dirs, progress, &mut made)?;
    // Deepest level first; level 0 is the root alone, left open.
    for range in levels.into_iter().skip(1).rev() {
        seal_level(store, &mut dirs, range, &mut made)?;
    }
    Ok(Open {
        root: dirs.swap_remove(0),
        made,
    })
}

/// Stores (in parallel) every listed file the cache did not vouch for, recording what
/// each is in its directory's entries.
fn store_files(
    store: &Store,
    root: &Root,
    dirs: &mut [DirNode],
    progress: &ProgressBar,
    open: &mut Made,
) -> Result<()> {
    /// A listed file to read: its directory's index and its slot there, its path, the
    /// device and inode the walk saw, and what it was when it was as long.
    struct ToRead(usize, usize, PathBuf, (u64, u64), Option<ObjectMeta>);
    let mut todo: Vec<ToRead> = Vec::new();
    for (d, dir) in dirs.iter().enumerate() {
        for (i, e) in dir.entries.iter().enumerate() {
            if let Found::File { known, key } = &e.found {
                open.files += 1;
                let like = match known {
                    Known::Same(_) | Known::Read(_) => continue,
                    Known::Nothing => None,
                    Known::Like(m) => Some(*m),
                };
                let p = dir.path.join(OsStr::from_bytes(dir.name(e)));
                todo.push(ToRead(d, i, p, (key.dev, key.ino), like));
            }
        }
    }
    open.cache_hits = open.files - todo.len() as u64;
    progress.set_length(open.files);
    progress.inc(open.cache_hits);
    let stored: Vec<Result<ObjectMeta>> = todo
        .par_iter()
        .enumerate()
        .map(|(n, ToRead(_, _, p, seen, like))| {
            // One shared counter touched per file would bounce between cores.
            if n % 64 == 0 {
                progress.inc(64.min((todo.len() - n) as u64));
            }
            // The file the walk listed, or an error: never what its name now leads to.
            let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK;
            let f = fs::File::from(root.open_below(p, flags)?);
            let f = crate::store::check_listed(f, p, *seen)?;
            match like {
                Some(like) => store.put_open_like(f, p, like),
                None => store.put_open(f, p),
            }
        })
        .collect();
    open.objects.reserve(todo.len() + dirs.len());
    for (ToRead(d, i, p, ..), r) in todo.into_iter().zip(stored) {
        let m = r?;
        if let Found::File { key, known } = &mut dirs[d].entries[i].found {
            *known = Known::Read(m);
            open.objects.push((m, ObjKind::Blob));
            open.read.push(StatRow {
                path: p.into_os_string().into_vec(),
                key: *key,
                meta: m,
            });
        }
    }
    Ok(())
}

/// Seals the directories of one level (in parallel), each into its parent's entries.
fn seal_level(
    store: &Store,
    dirs: &mut [DirNode],
    range: std::ops::Range<usize>,
    open: &mut Made,
) -> Result<()> {
    let records = open.records;
    let sealed: Vec<Result<Sealed>> = dirs[range.clone()]
        .par_iter()
        .map(|d| seal_dir(store, d, Vec::new(), records))
        .collect();
    for (i, r) in range.zip(sealed) {
        let m = open.keep(r?);
        let (parent, slot) = dirs[i].parent.expect("only the root has no parent");
        if let Found::Dir { tree, .. } = &mut dirs[parent].entries[slot].found {
            *tree = Some(m);
        }
    }
    Ok(())
}

/// A directory's tree, whether it was encoded here (rather than taken from its record),
/// and the record to write for it.
struct Sealed {
    meta: ObjectMeta,
    encoded: bool,
    row: Option<DirRow>,
}

/// `dir`'s tree, with `extra` entries added to its own; its record's when nothing in it
/// changed, and a record made for it when `records`.
fn seal_dir(store: &Store, dir: &DirNode, extra: Vec<Entry>, records: bool) -> Result<Sealed> {
    if let Some(meta) = dir.unchanged().filter(|_| extra.is_empty()) {
        return Ok(Sealed {
            meta,
            encoded: false,
            row: None,
        });
    }
    let records = records && extra.is_empty();
    let mut es: Vec<Entry> = dir.entries.iter().map(|e| dir.entry(e)).collect();
    if !extra.is_empty() {
        es.extend(extra);
        es.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let meta = store.put_bytes(&Tree { entries: es }.encode())?;
    Ok(Sealed {
        meta,
        encoded: true,
        row: records.then(|| DirRow {
            path: dir.path.as_os_str().as_bytes().to_vec(),
            record: dir.record(&meta),
        }),
    })
}

impl Made {
    /// Keeps what sealing a directory made; returns its tree.
    fn keep(&mut self, s: Sealed) -> ObjectMeta {
        // A tree taken from a record was listed by the ingest that recorded it (as a
        // file the record vouches for was).
        if s.encoded {
            self.objects.push((s.meta, ObjKind::Tree));
        }
        self.dir_rows.extend(s.row);
        s.meta
    }
}

impl Open {
    /// Seals the root, with `extra` entries added to its own.
    fn seal(self, store: &Store, extra: Vec<Entry>) -> Result<Ingested> {
        let Open { root, mut made } = self;
        let sealed = seal_dir(store, &root, extra, made.records)?;
        let root = made.keep(sealed);
        Ok(Ingested {
            root,
            root_kind: ObjKind::Tree,
            objects: made.objects,
            files: made.files,
            cache_hits: made.cache_hits,
            read: made.read,
            dir_rows: made.dir_rows,
        })
    }
}

/// A folder recorded together with what its recorder adds after reading it (a run
/// folder, whose `report.json` lists the digests of everything else, and whose
/// workspace was stored already): every file but those `leave_out` names at its root
/// (files or folders) is read, hashed and stored exactly once.
pub struct OpenFolder(Open);

/// Stores `dir` as [`OpenFolder`]; no cache (every file is read), and FIFOs, sockets and
/// devices recorded as entries of their own kind.
pub fn ingest_open(store: &Store, dir: &Path, leave_out: &[&str]) -> Result<OpenFolder> {
    let walked = walk(dir, true, leave_out)?;
    Ok(OpenFolder(store_below_root(
        store,
        walked,
        &ProgressBar::hidden(),
        false,
    )?))
}

impl OpenFolder {
    /// Every file read, by its path, with its digests.
    pub fn files(&self) -> impl Iterator<Item = (&Path, ObjectMeta)> {
        self.0
            .made
            .read
            .iter()
            .map(|r| (Path::new(OsStr::from_bytes(&r.path)), r.meta))
    }

    /// Seals the folder's tree with `extra` entries added at its root.
    pub fn seal(self, store: &Store, extra: Vec<Entry>) -> Result<Ingested> {
        self.0.seal(store, extra)
    }
}

/// Builds a tree from an explicit list of (relative path, file on disk) pairs, as for
/// the tracked files of a git clone. Paths use `/`; intermediate directories are implied.
pub fn ingest_listed(
    store: &Store,
    base: &Path,
    rel_paths: &[Vec<u8>],
    progress: &ProgressBar,
) -> Result<Ingested> {
    progress.set_length(rel_paths.len() as u64);
    #[derive(Default)]
    struct Dir {
        entries: Vec<Entry>,
        subdirs: BTreeMap<Vec<u8>, Dir>,
    }
    let results: Vec<Result<Option<Entry>>> = rel_paths
        .par_iter()
        .map(|rel| {
            let p = base.join(OsStr::from_bytes(rel));
            let name = rel.rsplit(|b| *b == b'/').next().unwrap_or(rel).to_vec();
            let m = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None), // deleted: not on disk
                Err(e) => {
                    return Err(Error::Io {
                        action: "stat",
                        path: p,
                        source: e,
                    })
                }
            };
            progress.inc(1);
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p)
                    .map_err(Error::io("read link", &p))?
                    .into_os_string()
                    .into_encoded_bytes();
                Ok(Some(Entry::symlink(name, t)))
            } else if m.is_file() {
                let om = store.put_file(&p)?;
                Ok(Some(Entry::file(name, om, is_exec(&m))))
            } else {
                Ok(None) // a submodule or a directory where a file was tracked
            }
        })
        .collect();
    let mut root = Dir::default();
    let mut objects = Vec::new();
    let mut count = 0;
    for (rel, r) in rel_paths.iter().zip(results) {
        let Some(entry) = r? else { continue };
        if let (Some(id), Some(sha)) = (entry.object, entry.sha256) {
            objects.push((
                ObjectMeta {
                    id,
                    sha256: sha,
                    size: entry.size,
                },
                ObjKind::Blob,
            ));
        }
        count += 1;
        let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
        parts.pop();
        let mut d = &mut root;
        for part in parts {
            d = d.subdirs.entry(part.to_vec()).or_default();
        }
        d.entries.push(entry);
    }
    fn seal(store: &Store, d: Dir, objects: &mut Vec<(ObjectMeta, ObjKind)>) -> Result<ObjectMeta> {
        let mut entries = d.entries;
        for (name, sub) in d.subdirs {
            let m = seal(store, sub, objects)?;
            entries.push(Entry::dir(name, m));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let m = store.put_bytes(&Tree { entries }.encode())?;
        objects.push((m, ObjKind::Tree));
        Ok(m)
    }
    let root_meta = seal(store, root, &mut objects)?;
    Ok(Ingested {
        root: root_meta,
        root_kind: ObjKind::Tree,
        objects,
        files: count,
        cache_hits: 0,
        read: Vec::new(),
        dir_rows: Vec::new(),
    })
}
