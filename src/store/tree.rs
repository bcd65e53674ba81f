//! Directories as tree objects: a canonical (RFC 8785) JSON manifest of sorted
//! entries. Names and symlink targets that are not UTF-8 are kept as hex, so
//! every name survives a round trip, and there is exactly one encoding per tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};

pub const FORMAT: &str = "cto-ledger-tree-v1";
/// RFC 8785 numbers are IEEE 754 doubles: integers above 2^53 - 1 would not round-trip.
pub const MAX_SIZE: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub executable: bool,
    /// Bytes for a file, encoded tree bytes for a dir, target length for a symlink.
    pub size: u64,
    /// File contents or sub-tree; `None` for a symlink.
    pub object: Option<ObjectId>,
    pub sha256: Option<Sha256Digest>,
    pub target: Option<Vec<u8>>,
}

impl Entry {
    pub fn file(name: Vec<u8>, m: ObjectMeta, executable: bool) -> Entry {
        Entry {
            name,
            kind: Kind::File,
            executable,
            size: m.size,
            object: Some(m.id),
            sha256: Some(m.sha256),
            target: None,
        }
    }

    pub fn dir(name: Vec<u8>, tree: ObjectMeta) -> Entry {
        Entry {
            name,
            kind: Kind::Dir,
            executable: false,
            size: tree.size,
            object: Some(tree.id),
            sha256: Some(tree.sha256),
            target: None,
        }
    }

    pub fn symlink(name: Vec<u8>, target: Vec<u8>) -> Entry {
        Entry {
            name,
            kind: Kind::Symlink,
            executable: false,
            size: target.len() as u64,
            object: None,
            sha256: None,
            target: Some(target),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTree {
    entries: Vec<RawEntry>,
    format: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    // Fields in sorted key order: serde_json then writes exactly the RFC 8785 form
    // (checked against serde_jcs by tests/properties.rs), without a detour through Value.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    executable: bool,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    name_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    object: Option<ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sha256: Option<Sha256Digest>,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target_hex: Option<String>,
}

fn split_bytes(b: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (None, Some(hex::encode(b))),
    }
}

fn join_bytes(
    text: Option<String>,
    hexed: Option<String>,
    what: &str,
) -> std::result::Result<Option<Vec<u8>>, String> {
    match (text, hexed) {
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(h)) => {
            let b = hex::decode(&h).map_err(|_| format!("{what}_hex is not hex"))?;
            if std::str::from_utf8(&b).is_ok() {
                return Err(format!(
                    "{what}_hex holds valid UTF-8; it must be written as {what}"
                ));
            }
            Ok(Some(b))
        }
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!("both {what} and {what}_hex are set")),
    }
}

/// Why a name may not appear in a tree: it would escape or alias its directory.
pub fn check_name(name: &[u8]) -> std::result::Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(format!(
            "entry name {:?} is not allowed",
            String::from_utf8_lossy(name)
        ));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(format!(
            "entry name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let raw = RawTree {
            format: FORMAT.to_string(),
            entries: self
                .entries
                .iter()
                .map(|e| {
                    let (name, name_hex) = split_bytes(&e.name);
                    let (target, target_hex) = match &e.target {
                        Some(t) => split_bytes(t),
                        None => (None, None),
                    };
                    RawEntry {
                        name,
                        name_hex,
                        kind: e.kind,
                        executable: e.executable,
                        size: e.size,
                        object: e.object,
                        sha256: e.sha256,
                        target,
                        target_hex,
                    }
                })
                .collect(),
        };
        serde_json::to_vec(&raw).expect("tree manifest serialises")
    }

    /// Parses untrusted bytes; refuses anything that is not the one canonical encoding
    /// of a well-formed tree.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Tree, String> {
        let raw: RawTree =
            serde_json::from_slice(bytes).map_err(|e| format!("not a tree manifest: {e}"))?;
        if raw.format != FORMAT {
            return Err(format!("unknown tree format {:?}", raw.format));
        }
        let mut entries = Vec::with_capacity(raw.entries.len());
        for r in raw.entries {
            let name = join_bytes(r.name, r.name_hex, "name")?.ok_or("entry without a name")?;
            check_name(&name)?;
            let target = join_bytes(r.target, r.target_hex, "target")?;
            let shown = String::from_utf8_lossy(&name).into_owned();
            if r.size > MAX_SIZE {
                return Err(format!(
                    "entry {shown:?} has size {} above 2^53 - 1",
                    r.size
                ));
            }
            match r.kind {
                Kind::File if r.object.is_none() || r.sha256.is_none() || target.is_some() => {
                    return Err(format!(
                        "file entry {shown:?} needs object and sha256 and no target"
                    ))
                }
                Kind::Dir
                    if r.object.is_none()
                        || r.sha256.is_none()
                        || target.is_some()
                        || r.executable =>
                {
                    return Err(format!("dir entry {shown:?} needs object and sha256 only"))
                }
                Kind::Symlink if r.object.is_some() || r.sha256.is_some() || r.executable => {
                    return Err(format!("symlink entry {shown:?} must carry only a target"))
                }
                Kind::Symlink
                    if target
                        .as_ref()
                        .is_none_or(|t| t.is_empty() || t.contains(&0)) =>
                {
                    return Err(format!("symlink entry {shown:?} has no valid target"))
                }
                _ => {}
            }
            entries.push(Entry {
                name,
                kind: r.kind,
                executable: r.executable,
                size: r.size,
                object: r.object,
                sha256: r.sha256,
                target,
            });
        }
        if entries.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(
                "entries are not strictly sorted by name (duplicate or out of order)".into(),
            );
        }
        let tree = Tree { entries };
        if tree.encode() != bytes {
            return Err("tree manifest is not in canonical form".into());
        }
        Ok(tree)
    }
}

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
        };
        bytes(&[kind, e.executable as u8]);
        bytes(&e.size.to_le_bytes());
        bytes(e.object.as_ref().map_or(&[][..], |o| &o.0[..]));
        bytes(e.sha256.as_ref().map_or(&[][..], |o| &o.0[..]));
        bytes(e.target.as_deref().unwrap_or(&[]));
    }
    *blake3::hash(&buf).as_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjKind {
    Blob,
    Tree,
}

impl ObjKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjKind::Blob => "blob",
            ObjKind::Tree => "tree",
        }
    }

    pub fn parse(s: &str) -> Option<ObjKind> {
        match s {
            "blob" => Some(ObjKind::Blob),
            "tree" => Some(ObjKind::Tree),
            _ => None,
        }
    }
}

fn is_exec(m: &fs::Metadata) -> bool {
    m.permissions().mode() & 0o111 != 0
}

/// Stores a file as a blob or a directory as a tree, symlinks recorded, never followed.
pub fn ingest_path(store: &Store, path: &Path, progress: &ProgressBar) -> Result<Ingested> {
    ingest_path_cached(store, path, progress, || Ok(None::<NoCache>))
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
        return Ok(Ingested {
            root: m,
            root_kind: ObjKind::Blob,
            objects: vec![(m, ObjKind::Blob)],
            files: 1,
            cache_hits: 0,
            stat_rows: Vec::new(),
            tree_rows: Vec::new(),
        });
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
                super::file_type_name(&meta)
            ),
            hint,
        ));
    }
    let (walked, cache) = std::thread::scope(|s| {
        let walker = s.spawn(|| walk(path));
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
/// Symlinks are recorded, never followed; special files are refused.
fn walk(root: &Path) -> Result<Walked> {
    struct Nested {
        node: DirNode,
        children: Vec<Nested>,
    }
    fn read_nested(path: PathBuf) -> Result<Nested> {
        let node = read_one(path)?;
        let children = node
            .subdirs
            .par_iter()
            .map(|n| read_nested(node.path.join(n)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Nested { node, children })
    }
    // Breadth first, so every directory follows its parent and each depth is one range.
    let mut out = Walked {
        dirs: Vec::new(),
        levels: Vec::new(),
    };
    let mut level = vec![(read_nested(root.to_path_buf())?, None)];
    while !level.is_empty() {
        let start = out.dirs.len();
        let mut next = Vec::new();
        for (nested, parent) in level {
            let i = out.dirs.len();
            let mut node = nested.node;
            node.parent = parent;
            out.dirs.push(node);
            next.extend(nested.children.into_iter().map(|c| (c, Some(i))));
        }
        out.levels.push(start..out.dirs.len());
        level = next;
    }
    Ok(out)
}

/// One directory's entries; subdirectories are named, not entered.
fn read_one(path: PathBuf) -> Result<DirNode> {
    let mut out = DirNode {
        parent: None,
        files: Vec::new(),
        links: Vec::new(),
        subdirs: Vec::new(),
        path,
    };
    let dir = &out.path;
    for ent in fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        let ent = ent.map_err(Error::io("read directory", dir))?;
        let ft = ent.file_type().map_err(Error::io("stat", ent.path()))?;
        if ft.is_dir() {
            out.subdirs.push(ent.file_name());
        } else if ft.is_file() {
            // Taken before the file is read: a change after this is caught next time.
            let m = ent.metadata().map_err(Error::io("stat", ent.path()))?;
            out.files.push((ent.file_name(), m));
        } else if ft.is_symlink() {
            let p = ent.path();
            let t = fs::read_link(&p).map_err(Error::io("read link", &p))?;
            out.links
                .push((ent.file_name(), t.into_os_string().into_encoded_bytes()));
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
            match cache.and_then(|c| c.get(p, &key)) {
                Some(o) => Ok((o, is_exec(m), key, true)),
                None => store.put_file(p).map(|o| (o, is_exec(m), key, false)),
            }
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

/// A folder recorded together with files its recorder writes after reading it (a run
/// folder, whose `report.json` lists the digests of everything else): every file but
/// those `leave_out` names at its root is read, hashed and stored exactly once.
pub struct OpenFolder(Open);

/// Stores `dir` as [`OpenFolder`]; no stat cache (every file is read).
pub fn ingest_open(store: &Store, dir: &Path, leave_out: &[&str]) -> Result<OpenFolder> {
    let mut walked = walk(dir)?;
    walked.dirs[0]
        .files
        .retain(|(n, _)| !leave_out.iter().any(|l| n.as_bytes() == l.as_bytes()));
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

pub fn load(store: &Store, id: &ObjectId) -> Result<Tree> {
    let bytes = store.get_verified(id)?;
    Tree::decode(&bytes).map_err(|why| {
        Error::bad_input(
            format!("object {id} is not a valid tree: {why}"),
            "give the id of a tree object (an ingested directory)",
        )
    })
}

/// The entry at `rel` (`/`-separated) inside tree `root`, if there is one.
pub fn lookup(store: &Store, root: &ObjectId, rel: &[u8]) -> Result<Option<Entry>> {
    let mut tree = load(store, root)?;
    let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(e) = tree.entries.iter().find(|e| e.name == *part) else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(e.clone()));
        }
        match (e.kind, e.object) {
            (Kind::Dir, Some(id)) => tree = load(store, &id)?,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Every symlink of a tree, by its path inside the tree (components joined with `/`).
type Links = std::collections::HashMap<Vec<u8>, Vec<u8>>;

fn collect_links(store: &Store, tree: &Tree, prefix: &[u8], links: &mut Links) -> Result<()> {
    for e in &tree.entries {
        let mut here = prefix.to_vec();
        if !here.is_empty() {
            here.push(b'/');
        }
        here.extend_from_slice(&e.name);
        match e.kind {
            Kind::Symlink => {
                links.insert(here, e.target.clone().unwrap_or_default());
            }
            Kind::Dir => {
                let sub = load(store, &e.object.expect("decoded dir has object"))?;
                collect_links(store, &sub, &here, links)?;
            }
            Kind::File => {}
        }
    }
    Ok(())
}

/// How many links a path may pass through before it counts as a loop (Linux: 40).
const MAX_FOLLOWS: usize = 40;

/// Where the link at `link` leads once the tree is on disk: followed through the tree's
/// own links as the kernel would follow them, so `..` after a component that is itself a
/// link climbs from where that link points. `Err` says why it escapes (or loops).
pub(crate) fn link_resolution(links: &Links, link: &[u8]) -> std::result::Result<(), &'static str> {
    let mut w = LinkWalk {
        cur: link.split(|b| *b == b'/').collect(),
        pending: std::collections::VecDeque::new(),
        follows: 0,
    };
    w.follow(links.get(link).map(Vec::as_slice).unwrap_or_default())?;
    while let Some(c) = w.pending.pop_front() {
        match c {
            b"" | b"." => {}
            b".." => {
                if w.cur.pop().is_none() {
                    return Err("it climbs above the restore directory");
                }
            }
            name => {
                w.cur.push(name);
                if let Some(t) = links.get(&w.cur.join(&b'/')) {
                    w.follow(t)?;
                }
            }
        }
    }
    Ok(())
}

/// A path being resolved: where it is so far, and the components still to walk.
struct LinkWalk<'a> {
    cur: Vec<&'a [u8]>,
    pending: std::collections::VecDeque<&'a [u8]>,
    follows: usize,
}

impl<'a> LinkWalk<'a> {
    /// Replaces the link at the end of `cur` by its target.
    fn follow(&mut self, target: &'a [u8]) -> std::result::Result<(), &'static str> {
        self.follows += 1;
        if self.follows > MAX_FOLLOWS {
            return Err("its links form a loop");
        }
        if target.is_empty() {
            return Err("it has no target");
        }
        if target[0] == b'/' {
            return Err("it points to an absolute path");
        }
        self.cur.pop(); // a link's target is relative to the directory holding it
        for c in target.split(|b| *b == b'/').rev() {
            self.pending.push_front(c);
        }
        Ok(())
    }
}

/// Refuses the whole tree before anything is written if any link would resolve outside
/// it, directly or through the tree's other links.
fn check_escapes(store: &Store, tree: &Tree) -> Result<()> {
    let mut links = Links::new();
    collect_links(store, tree, b"", &mut links)?;
    let mut paths: Vec<&Vec<u8>> = links.keys().collect();
    paths.sort();
    for p in paths {
        if let Err(why) = link_resolution(&links, p) {
            return Err(Error::bad_input(
                format!(
                    "tree entry {} is a symlink to {:?}, which points outside the restore directory: {why}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(&links[p])
                ),
                "nothing was written; restore only trees whose links stay inside them",
            ));
        }
    }
    Ok(())
}

/// Writes tree `id` into `dest`, which must be absent or empty. Refuses names and
/// links that would escape `dest` before anything is written; every file is verified
/// against its id as written. A restore that fails leaves nothing behind: not what it
/// wrote, and not `dest` if it created it.
pub fn restore(store: &Store, id: &ObjectId, dest: &Path) -> Result<u64> {
    let tree = load(store, id)?;
    check_escapes(store, &tree)?;
    let created = match fs::read_dir(dest) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::bad_input(
                    format!("{} is not empty", dest.display()),
                    "restore into a new or empty directory",
                ));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(Error::io("create", dest))?;
            true
        }
        Err(e) => {
            return Err(Error::Io {
                action: "read",
                path: dest.to_path_buf(),
                source: e,
            })
        }
    };
    write_tree(store, &tree, dest).inspect_err(|_| {
        if created {
            let _ = fs::remove_dir_all(dest);
        } else if let Ok(rd) = fs::read_dir(dest) {
            for ent in rd.flatten() {
                let p = ent.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    })
}

fn write_tree(store: &Store, tree: &Tree, dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in &tree.entries {
        let name = OsStr::from_bytes(&e.name);
        let p = dir.join(name);
        match e.kind {
            Kind::File => {
                let mode = if e.executable { 0o755 } else { 0o644 };
                // create_new (O_EXCL) never follows a symlink standing at `p`.
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&p)
                    .map_err(Error::io("create", &p))?;
                let id = e.object.expect("decoded file has object");
                if let Err(err) = store.copy_verified(&id, &mut f) {
                    drop(f);
                    let _ = fs::remove_file(&p);
                    return Err(err);
                }
                f.flush().map_err(Error::io("write", &p))?;
                n += 1;
            }
            Kind::Dir => {
                fs::create_dir(&p).map_err(Error::io("create", &p))?;
                let sub = load(store, &e.object.expect("decoded dir has object"))?;
                n += write_tree(store, &sub, &p)?;
            }
            Kind::Symlink => {
                let t = OsStr::from_bytes(e.target.as_deref().expect("decoded link has target"));
                std::os::unix::fs::symlink(t, &p).map_err(Error::io("create symlink", &p))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &[u8]) -> Entry {
        let m = super::super::hash_bytes(name);
        Entry {
            name: name.to_vec(),
            kind: Kind::File,
            executable: false,
            size: 1,
            object: Some(m.id),
            sha256: Some(m.sha256),
            target: None,
        }
    }

    #[test]
    fn non_utf8_names_round_trip() {
        let t = Tree {
            entries: vec![file(b"a"), file(b"b\xff")],
        };
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn decode_refuses_escaping_and_unsorted_names() {
        for bad in [
            vec![file(b"..")],
            vec![file(b"a/b")],
            vec![file(b"b"), file(b"a")],
            vec![file(b"a"), file(b"a")],
        ] {
            let bytes = Tree {
                entries: bad.clone(),
            }
            .encode();
            assert!(Tree::decode(&bytes).is_err(), "{bad:?} was accepted");
        }
        assert!(Tree::decode(b"{\"entries\":[],\"format\":\"cto-ledger-tree-v1\"} ").is_err());
    }

    fn links(pairs: &[(&str, &str)]) -> Links {
        pairs
            .iter()
            .map(|(p, t)| (p.as_bytes().to_vec(), t.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn links_that_climb_out_are_caught() {
        let l = links(&[
            ("a/in", "../b"),
            ("a/out", "../../b"),
            ("abs", "/etc/passwd"),
            ("x", "x/../../y"),
        ]);
        assert_eq!(link_resolution(&l, b"a/in"), Ok(()));
        assert!(link_resolution(&l, b"a/out").is_err());
        assert!(link_resolution(&l, b"abs").is_err());
        assert!(link_resolution(&l, b"x").is_err());
    }

    #[test]
    fn links_that_climb_out_through_other_links_are_caught() {
        // evil/a/up -> .. ; evil/esc -> a/up/a/up/../../../etc/passwd
        let l = links(&[
            ("a/up", ".."),
            ("esc", "a/up/a/up/a/up/a/up/../../../../etc/passwd"),
        ]);
        assert_eq!(link_resolution(&l, b"a/up"), Ok(()));
        assert!(link_resolution(&l, b"esc").is_err());
        let parent = links(&[("a/up", ".."), ("parent", "a/up/..")]);
        assert!(link_resolution(&parent, b"parent").is_err());
        let chain = links(&[("l1", "l2"), ("l2", "../x")]);
        assert!(link_resolution(&chain, b"l1").is_err());
        let ok = links(&[("d/l", "../d/m"), ("d/m", "f")]);
        assert_eq!(link_resolution(&ok, b"d/l"), Ok(()));
        let looped = links(&[("a", "b"), ("b", "a")]);
        assert!(link_resolution(&looped, b"a").is_err());
    }
}
