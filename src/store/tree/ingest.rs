//! Folders into trees: a parallel walk (symlinks recorded, never followed), every file
//! stored once (or vouched for by the stat cache), directories sealed deepest first.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::{Entry, Kind, ObjKind, Tree, FORMAT};
use crate::error::{Error, Result};
use crate::id::ObjectMeta;
use crate::store::Store;

/// What an ingest stored: the root and every object it read (files found unchanged
/// in the stat cache are not read and not listed), and fresh stat-cache rows.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub root: ObjectMeta,
    pub root_kind: ObjKind,
    pub objects: Vec<(ObjectMeta, ObjKind)>,
    pub files: u64,
    pub cache_hits: u64,
    pub stat_rows: Vec<StatRow>,
    /// Directories encoded because the tree cache lacked them (none without a cache),
    /// to remember after the commit.
    pub tree_rows: Vec<TreeRow>,
}

/// A directory's entries, as digested by [`fingerprint`], and the tree they encode to.
#[derive(Debug, Clone)]
pub struct TreeRow {
    pub path: Vec<u8>,
    pub fingerprint: [u8; 32],
    pub meta: ObjectMeta,
}

/// What `stat` says about a file, the key of the stat cache.
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

/// Objects already known for files whose stat has not changed.
pub trait StatCache: Sync {
    fn get(&self, path: &Path, key: &StatKey) -> Option<ObjectMeta>;
    /// The tree directory `dir` encoded to when its entries had this fingerprint.
    fn tree(&self, dir: &Path, fingerprint: &[u8; 32]) -> Option<ObjectMeta> {
        let _ = (dir, fingerprint);
        None
    }
    /// What the file at `path` was when last ingested, if as long as now though its stat
    /// changed: a rebuilt file's bytes, which [`Store::put_file_like`] checks, not copies.
    fn like(&self, path: &Path, key: &StatKey) -> Option<ObjectMeta> {
        let _ = (path, key);
        None
    }
}

/// A digest of everything a manifest of these (sorted) entries encodes, computed without
/// encoding it: equal fingerprints mean byte-identical manifests.
fn fingerprint(entries: &[Entry]) -> [u8; 32] {
    // Laid out in one buffer and hashed once: BLAKE3 is fast per byte, not per call.
    let mut buf = Vec::with_capacity(FORMAT.len() + entries.len() * 160);
    let mut bytes = |b: &[u8]| {
        buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
        buf.extend_from_slice(b);
    };
    bytes(FORMAT.as_bytes());
    for e in entries {
        bytes(&e.name);
        let kind: u8 = match e.kind {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Fifo => 4,
            Kind::Socket => 5,
            Kind::CharDevice => 6,
            Kind::BlockDevice => 7,
        };
        bytes(&[kind, e.executable as u8]);
        bytes(&e.size.to_le_bytes());
        bytes(e.object.as_ref().map_or(&[][..], |o| &o.0[..]));
        bytes(e.sha256.as_ref().map_or(&[][..], |o| &o.0[..]));
        bytes(e.target.as_deref().unwrap_or(&[]));
    }
    *blake3::hash(&buf).as_bytes()
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
            stat_rows: Vec::new(),
            tree_rows: Vec::new(),
        }
    }
}

/// The stat cache of callers that have none.
struct NoCache;

impl StatCache for NoCache {
    fn get(&self, _: &Path, _: &StatKey) -> Option<ObjectMeta> {
        None
    }
}

/// As [`ingest_path`], skipping the read of files the stat cache vouches for. The cache
/// is loaded by `load_cache` on this thread while the directory is walked on others.
pub fn ingest_path_cached<C: StatCache>(
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
    let cache = cache?;
    ingest_walked(
        store,
        walked?,
        progress,
        cache.as_ref().map(|c| c as &dyn StatCache),
    )
}

/// One directory as the walk found it, before any file is read.
struct DirNode {
    path: PathBuf,
    /// Index of the parent in [`Walked::dirs`]; `None` for the root.
    parent: Option<usize>,
    /// Regular files with the stat taken when they were listed.
    files: Vec<(std::ffi::OsString, fs::Metadata)>,
    links: Vec<(std::ffi::OsString, Vec<u8>)>,
    /// FIFOs, sockets and devices (kept only when the walk records them).
    specials: Vec<(std::ffi::OsString, Kind)>,
    subdirs: Vec<std::ffi::OsString>,
}

/// A directory tree, breadth first: every directory comes after its parent, and
/// `levels[d]` is the index range of the directories at depth `d`.
struct Walked {
    dirs: Vec<DirNode>,
    levels: Vec<std::ops::Range<usize>>,
}

/// Lists `root`, subdirectories read in parallel as rayon finds idle threads (trees like
/// `node_modules` are too lopsided for level-by-level reading to keep two cores busy).
/// Each directory read spawns a task per subdirectory, so the walk never recurses on a
/// stack, however deep the tree (it stops at [`super::MAX_DEPTH`]). Symlinks are
/// recorded, never followed; special files are refused, unless `specials` (run folders:
/// a FIFO a provider left is recorded by name and kind, never opened).
fn walk(root: &Path, specials: bool, leave_out: &[&str]) -> Result<Walked> {
    use std::sync::Mutex;
    struct Shared<'a> {
        found: Mutex<Vec<(usize, DirNode)>>,
        failed: Mutex<Option<Error>>,
        specials: bool,
        leave_out: &'a [&'a str],
        root: &'a Path,
    }
    fn visit<'s>(s: &rayon::Scope<'s>, sh: &'s Shared<'s>, path: PathBuf, depth: usize) {
        if sh.failed.lock().expect("not poisoned").is_some() {
            return;
        }
        let read = if depth > super::MAX_DEPTH {
            Err(super::too_deep(&sh.root.display().to_string()))
        } else {
            let leave_out = if depth == 0 { sh.leave_out } else { &[] };
            read_one(path, sh.specials, leave_out)
        };
        match read {
            Ok(node) => {
                for n in &node.subdirs {
                    let sub = node.path.join(n);
                    s.spawn(move |s| visit(s, sh, sub, depth + 1));
                }
                sh.found.lock().expect("not poisoned").push((depth, node));
            }
            Err(e) => {
                sh.failed.lock().expect("not poisoned").get_or_insert(e);
            }
        }
    }
    let sh = Shared {
        found: Mutex::new(Vec::new()),
        failed: Mutex::new(None),
        specials,
        leave_out,
        root,
    };
    rayon::scope(|s| visit(s, &sh, root.to_path_buf(), 0));
    if let Some(e) = sh.failed.into_inner().expect("not poisoned") {
        return Err(e);
    }
    // Breadth first, so every directory follows its parent and each depth is one range.
    let mut nodes = sh.found.into_inner().expect("not poisoned");
    nodes.sort_by(|a, b| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)));
    let mut out = Walked {
        dirs: Vec::with_capacity(nodes.len()),
        levels: Vec::new(),
    };
    let mut index: std::collections::HashMap<PathBuf, usize> = Default::default();
    for (depth, mut node) in nodes {
        if out.levels.len() <= depth {
            out.levels.push(out.dirs.len()..out.dirs.len());
        }
        let i = out.dirs.len();
        node.parent = match depth {
            0 => None,
            _ => node.path.parent().and_then(|p| index.get(p)).copied(),
        };
        index.insert(node.path.clone(), i);
        out.dirs.push(node);
        out.levels[depth].end = i + 1;
    }
    Ok(out)
}

/// One directory's entries but those `leave_out` names; subdirectories are named, not
/// entered.
fn read_one(path: PathBuf, specials: bool, leave_out: &[&str]) -> Result<DirNode> {
    let mut out = DirNode {
        parent: None,
        files: Vec::new(),
        links: Vec::new(),
        specials: Vec::new(),
        subdirs: Vec::new(),
        path,
    };
    let dir = &out.path;
    for ent in fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        let ent = ent.map_err(Error::io("read directory", dir))?;
        if leave_out
            .iter()
            .any(|l| ent.file_name().as_bytes() == l.as_bytes())
        {
            continue;
        }
        let ft = ent.file_type().map_err(Error::io_entry("stat", &ent))?;
        if ft.is_dir() {
            out.subdirs.push(ent.file_name());
        } else if ft.is_file() {
            // Taken before the file is read: a change after this is caught next time.
            let m = ent.metadata().map_err(Error::io_entry("stat", &ent))?;
            out.files.push((ent.file_name(), m));
        } else if ft.is_symlink() {
            let p = ent.path();
            let t = fs::read_link(&p).map_err(Error::io("read link", &p))?;
            out.links
                .push((ent.file_name(), t.into_os_string().into_encoded_bytes()));
        } else if let Some(kind) = Kind::special_of(&ft).filter(|_| specials) {
            out.specials.push((ent.file_name(), kind));
        } else {
            return Err(Error::bad_input(
                format!(
                    "{} is a special file (device, socket or FIFO)",
                    ent.path().display()
                ),
                "remove it from the directory or ingest the files around it; special files cannot be stored",
            ));
        }
    }
    Ok(out)
}

fn ingest_walked(
    store: &Store,
    walked: Walked,
    progress: &ProgressBar,
    cache: Option<&dyn StatCache>,
) -> Result<Ingested> {
    store_below_root(store, walked, progress, cache)?.seal(store, cache, Vec::new())
}

/// A walked directory stored up to its root: every file below it stored (or vouched for
/// by the stat cache), every subdirectory sealed as a tree, the root's entries still open.
struct Open {
    root: PathBuf,
    root_entries: Vec<Entry>,
    objects: Vec<(ObjectMeta, ObjKind)>,
    stat_rows: Vec<StatRow>,
    tree_rows: Vec<TreeRow>,
    files: u64,
    cache_hits: u64,
}

fn store_below_root(
    store: &Store,
    walked: Walked,
    progress: &ProgressBar,
    cache: Option<&dyn StatCache>,
) -> Result<Open> {
    let Walked { dirs, levels } = walked;
    let mut open = Open {
        root: dirs[0].path.clone(),
        root_entries: Vec::new(),
        objects: Vec::new(),
        stat_rows: Vec::new(),
        tree_rows: Vec::new(),
        files: 0,
        cache_hits: 0,
    };
    let mut entries = store_files(store, &dirs, progress, cache, &mut open)?;
    // Deepest level first; level 0 is the root alone, left open.
    for range in levels.into_iter().skip(1).rev() {
        seal_level(store, &dirs, range, &mut entries, cache, &mut open)?;
    }
    open.root_entries = std::mem::take(&mut entries[0]);
    Ok(open)
}

/// Stores every listed file (in parallel) and returns each directory's file and link
/// entries, by directory index.
fn store_files(
    store: &Store,
    dirs: &[DirNode],
    progress: &ProgressBar,
    cache: Option<&dyn StatCache>,
    open: &mut Open,
) -> Result<Vec<Vec<Entry>>> {
    let files: Vec<(usize, PathBuf, &fs::Metadata)> = dirs
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.files.iter().map(move |(n, m)| (i, d.path.join(n), m)))
        .collect();
    progress.set_length(files.len() as u64);
    // (object, executable, stat key, whether the stat cache vouched for it instead of a read)
    let stored: Vec<Result<(ObjectMeta, bool, StatKey, bool)>> = files
        .par_iter()
        .enumerate()
        .map(|(i, (_, p, m))| {
            // One shared counter touched per file would bounce between cores.
            if i % 64 == 0 {
                progress.inc(64.min((files.len() - i) as u64));
            }
            let key = StatKey::of(m);
            if let Some(o) = cache.and_then(|c| c.get(p, &key)) {
                return Ok((o, is_exec(m), key, true));
            }
            match cache.and_then(|c| c.like(p, &key)) {
                Some(like) => store.put_file_like(p, &like),
                None => store.put_file(p),
            }
            .map(|o| (o, is_exec(m), key, false))
        })
        .collect();
    let mut entries: Vec<Vec<Entry>> = dirs
        .iter()
        .map(|d| Vec::with_capacity(d.files.len() + d.links.len() + d.subdirs.len()))
        .collect();
    open.files = files.len() as u64;
    open.objects.reserve(files.len() + dirs.len());
    for ((dir, p, _), r) in files.iter().zip(stored) {
        let (m, exec, key, hit) = r?;
        if hit {
            open.cache_hits += 1;
        } else {
            open.objects.push((m, ObjKind::Blob));
            open.stat_rows.push(StatRow {
                path: p.as_os_str().as_bytes().to_vec(),
                key,
                meta: m,
            });
        }
        let name = p.file_name().expect("listed files have names").as_bytes();
        entries[*dir].push(Entry::file(name.to_vec(), m, exec));
    }
    for (i, d) in dirs.iter().enumerate() {
        for (n, t) in &d.links {
            entries[i].push(Entry::symlink(n.as_bytes().to_vec(), t.clone()));
        }
        for (n, kind) in &d.specials {
            entries[i].push(Entry::special(n.as_bytes().to_vec(), *kind));
        }
    }
    Ok(entries)
}

/// Seals the directories of one level (in parallel), each into its parent's entries.
fn seal_level(
    store: &Store,
    dirs: &[DirNode],
    range: std::ops::Range<usize>,
    entries: &mut [Vec<Entry>],
    cache: Option<&dyn StatCache>,
    open: &mut Open,
) -> Result<()> {
    let work: Vec<(usize, Vec<Entry>)> = range
        .map(|i| (i, std::mem::take(&mut entries[i])))
        .collect();
    let built: Vec<Result<(usize, Sealed)>> = work
        .into_par_iter()
        .map(|(i, es)| seal_dir(store, &dirs[i].path, es, cache).map(|s| (i, s)))
        .collect();
    for r in built {
        let (i, sealed) = r?;
        let m = open.keep(&dirs[i].path, sealed);
        let parent = dirs[i].parent.expect("only the root has no parent");
        let name = dirs[i].path.file_name().expect("subdirectories have names");
        entries[parent].push(Entry::dir(name.as_bytes().to_vec(), m));
    }
    Ok(())
}

/// A directory's tree, whether it was encoded here (rather than found in the tree
/// cache), and the fingerprint a cache will keep.
struct Sealed {
    meta: ObjectMeta,
    encoded: bool,
    fingerprint: Option<[u8; 32]>,
}

fn seal_dir(
    store: &Store,
    path: &Path,
    mut es: Vec<Entry>,
    cache: Option<&dyn StatCache>,
) -> Result<Sealed> {
    es.sort_by(|a, b| a.name.cmp(&b.name));
    // Without a cache (build snapshots, run folders) there is nothing to look up or
    // remember, so no fingerprint.
    let fp = cache.map(|c| (c, fingerprint(&es)));
    if let Some(meta) = fp.and_then(|(c, fp)| c.tree(path, &fp)) {
        return Ok(Sealed {
            meta,
            encoded: false,
            fingerprint: None,
        });
    }
    Ok(Sealed {
        meta: store.put_bytes(&Tree { entries: es }.encode())?,
        encoded: true,
        fingerprint: fp.map(|(_, fp)| fp),
    })
}

impl Open {
    /// Keeps what sealing `path` made; returns its tree.
    fn keep(&mut self, path: &Path, s: Sealed) -> ObjectMeta {
        // A cached tree was recorded by the ingest that cached it (as a cached file was).
        if s.encoded {
            self.objects.push((s.meta, ObjKind::Tree));
        }
        if let Some(fingerprint) = s.fingerprint {
            self.tree_rows.push(TreeRow {
                path: path.as_os_str().as_bytes().to_vec(),
                fingerprint,
                meta: s.meta,
            });
        }
        s.meta
    }

    /// Seals the root, with `extra` entries added to its own.
    fn seal(
        mut self,
        store: &Store,
        cache: Option<&dyn StatCache>,
        extra: Vec<Entry>,
    ) -> Result<Ingested> {
        let mut es = std::mem::take(&mut self.root_entries);
        es.extend(extra);
        let root = self.root.clone();
        let sealed = seal_dir(store, &root, es, cache)?;
        let root = self.keep(&root, sealed);
        Ok(Ingested {
            root,
            root_kind: ObjKind::Tree,
            objects: self.objects,
            files: self.files,
            cache_hits: self.cache_hits,
            stat_rows: self.stat_rows,
            tree_rows: self.tree_rows,
        })
    }
}

/// A folder recorded together with what its recorder adds after reading it (a run
/// folder, whose `report.json` lists the digests of everything else, and whose
/// workspace was stored already): every file but those `leave_out` names at its root
/// (files or folders) is read, hashed and stored exactly once.
pub struct OpenFolder(Open);

/// Stores `dir` as [`OpenFolder`]; no stat cache (every file is read), and FIFOs,
/// sockets and devices recorded as entries of their own kind.
pub fn ingest_open(store: &Store, dir: &Path, leave_out: &[&str]) -> Result<OpenFolder> {
    let walked = walk(dir, true, leave_out)?;
    Ok(OpenFolder(store_below_root(
        store,
        walked,
        &ProgressBar::hidden(),
        None,
    )?))
}

impl OpenFolder {
    /// Every file read, by its path, with its digests.
    pub fn files(&self) -> impl Iterator<Item = (&Path, ObjectMeta)> {
        self.0
            .stat_rows
            .iter()
            .map(|r| (Path::new(OsStr::from_bytes(&r.path)), r.meta))
    }

    /// Seals the folder's tree with `extra` entries added at its root.
    pub fn seal(self, store: &Store, extra: Vec<Entry>) -> Result<Ingested> {
        self.0.seal(store, None, extra)
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
        stat_rows: Vec::new(),
        tree_rows: Vec::new(),
    })
}
