//! Directories as tree objects: a canonical (RFC 8785) JSON manifest of sorted
//! entries. Names and symlink targets that are not UTF-8 are kept as hex, so
//! every name survives a round trip, and there is exactly one encoding per tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

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
}

fn is_exec(m: &fs::Metadata) -> bool {
    m.permissions().mode() & 0o111 != 0
}

/// Stores a file as a blob or a directory as a tree, symlinks recorded, never followed.
pub fn ingest_path(store: &Store, path: &Path, progress: &ProgressBar) -> Result<Ingested> {
    ingest_path_cached(store, path, progress, None)
}

/// As [`ingest_path`], skipping the read of files the stat cache vouches for.
pub fn ingest_path_cached(
    store: &Store,
    path: &Path,
    progress: &ProgressBar,
    cache: Option<&dyn StatCache>,
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
        });
    }
    if !meta.is_dir() {
        return Err(Error::bad_input(
            format!("{} is not a regular file or directory", path.display()),
            "give the file or directory it points to; symlinks are recorded only inside a directory",
        ));
    }
    ingest_dir(store, path, progress, cache)
}

fn ingest_dir(
    store: &Store,
    root: &Path,
    progress: &ProgressBar,
    cache: Option<&dyn StatCache>,
) -> Result<Ingested> {
    let mut dirs: Vec<(usize, PathBuf)> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut links: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for ent in walkdir::WalkDir::new(root).follow_links(false) {
        let ent = ent.map_err(|e| {
            let p = e.path().unwrap_or(root).to_path_buf();
            Error::Io {
                action: "walk",
                path: p,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            }
        })?;
        let ft = ent.file_type();
        let p = ent.path().to_path_buf();
        if ft.is_dir() {
            dirs.push((ent.depth(), p));
        } else if ft.is_file() {
            files.push(p); // stat happens in the parallel stage below
        } else if ft.is_symlink() {
            let t = fs::read_link(&p).map_err(Error::io("read link", &p))?;
            links.push((p, t.into_os_string().into_encoded_bytes()));
        } else {
            return Err(Error::bad_input(
                format!("{} is a special file (device, socket or FIFO)", p.display()),
                "remove it from the directory or ingest the files around it; special files cannot be stored",
            ));
        }
    }
    progress.set_length(files.len() as u64);

    // (object, executable, stat key, whether the stat cache vouched for it instead of a read)
    let stored: Vec<Result<(ObjectMeta, bool, StatKey, bool)>> = files
        .par_iter()
        .map(|p| {
            progress.inc(1);
            let m = fs::symlink_metadata(p).map_err(Error::io("stat", p))?;
            let key = StatKey::of(&m);
            match cache.and_then(|c| c.get(p, &key)) {
                Some(o) => Ok((o, is_exec(&m), key, true)),
                None => store.put_file(p).map(|o| (o, is_exec(&m), key, false)),
            }
        })
        .collect();
    let mut stat_rows = Vec::new();
    let mut cache_hits = 0;

    let mut children: std::collections::HashMap<PathBuf, Vec<Entry>> =
        std::collections::HashMap::with_capacity(dirs.len());
    let mut objects = Vec::with_capacity(files.len() + dirs.len());
    let name_of = |p: &Path| {
        p.file_name()
            .expect("walked entries have names")
            .as_bytes()
            .to_vec()
    };
    let parent_of = |p: &Path| {
        p.parent()
            .expect("walked entries have parents")
            .to_path_buf()
    };
    for (p, r) in files.iter().zip(stored) {
        let (m, exec, key, hit) = r?;
        if hit {
            cache_hits += 1;
        } else {
            objects.push((m, ObjKind::Blob));
            stat_rows.push(StatRow {
                path: p.as_os_str().as_bytes().to_vec(),
                key,
                meta: m,
            });
        }
        children
            .entry(parent_of(p))
            .or_default()
            .push(Entry::file(name_of(p), m, exec));
    }
    for (p, t) in links {
        children
            .entry(parent_of(&p))
            .or_default()
            .push(Entry::symlink(name_of(&p), t));
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    let mut root_meta = None;
    for (depth, d) in dirs {
        let mut entries = children.remove(&d).unwrap_or_default();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = Tree { entries }.encode();
        let m = store.put_bytes(&bytes)?;
        objects.push((m, ObjKind::Tree));
        if depth == 0 {
            root_meta = Some(m);
        } else {
            children
                .entry(parent_of(&d))
                .or_default()
                .push(Entry::dir(name_of(&d), m));
        }
    }
    let root = root_meta.expect("the walk yields its root directory");
    Ok(Ingested {
        root,
        root_kind: ObjKind::Tree,
        objects,
        files: files.len() as u64,
        cache_hits,
        stat_rows,
    })
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

/// Checks that a symlink at `entry_dir` (relative to the restore root) pointing at
/// `target` stays inside the root.
fn link_stays_inside(entry_dir: &Path, target: &[u8]) -> bool {
    let t = Path::new(OsStr::from_bytes(target));
    if t.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry_dir.components().count() as i64;
    for c in t.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Writes tree `id` into `dest`, which must be absent or empty. Refuses names and
/// links that would escape `dest`; every file is verified against its id as written.
pub fn restore(store: &Store, id: &ObjectId, dest: &Path) -> Result<u64> {
    let tree = load(store, id)?;
    match fs::read_dir(dest) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::bad_input(
                    format!("{} is not empty", dest.display()),
                    "restore into a new or empty directory",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(Error::io("create", dest))?;
        }
        Err(e) => {
            return Err(Error::Io {
                action: "read",
                path: dest.to_path_buf(),
                source: e,
            })
        }
    }
    check_escapes(store, &tree, Path::new(""))?;
    write_tree(store, &tree, dest, Path::new(""))
}

/// Refuses the whole tree before anything is written if any link would escape.
fn check_escapes(store: &Store, tree: &Tree, rel: &Path) -> Result<()> {
    for e in &tree.entries {
        let here = rel.join(OsStr::from_bytes(&e.name));
        match e.kind {
            Kind::Symlink => {
                let t = e.target.as_deref().unwrap_or_default();
                if !link_stays_inside(rel, t) {
                    return Err(Error::bad_input(
                        format!("tree entry {} is a symlink to {:?}, which points outside the restore directory", here.display(), String::from_utf8_lossy(t)),
                        "nothing was written; restore only trees whose links stay inside them",
                    ));
                }
            }
            Kind::Dir => {
                let sub = load(store, &e.object.expect("decoded dir has object"))?;
                check_escapes(store, &sub, &here)?;
            }
            Kind::File => {}
        }
    }
    Ok(())
}

fn write_tree(store: &Store, tree: &Tree, dir: &Path, rel: &Path) -> Result<u64> {
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
                n += write_tree(store, &sub, &p, &rel.join(name))?;
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

    #[test]
    fn links_that_climb_out_are_caught() {
        assert!(link_stays_inside(Path::new("a"), b"../b"));
        assert!(!link_stays_inside(Path::new("a"), b"../../b"));
        assert!(!link_stays_inside(Path::new(""), b"/etc/passwd"));
        assert!(!link_stays_inside(Path::new(""), b"x/../../y"));
    }
}
