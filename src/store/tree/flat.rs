//! Trees as flat maps from `/`-separated paths to their leaf entries (files, links,
//! special files and empty folders), and back: how the Stage 2 judge compares a
//! provider's workspace with its fixture and composes the tree the tests run in,
//! without reading or writing a file on disk.

use std::collections::BTreeMap;

use super::{load, Entry, Kind, ObjKind, Tree};
use crate::error::Result;
use crate::id::{ObjectId, ObjectMeta};
use crate::store::Store;

/// Path (components joined by `/`) to leaf entry; the entry's `name` is its last component.
pub type Flat = BTreeMap<Vec<u8>, Entry>;

/// Every leaf of tree `root`, by path. A folder appears only when it is empty.
pub fn flatten(store: &Store, root: &ObjectId) -> Result<Flat> {
    let mut out = Flat::new();
    flatten_into(store, &load(store, root)?, b"", 0, &mut out)?;
    Ok(out)
}

fn flatten_into(
    store: &Store,
    t: &Tree,
    prefix: &[u8],
    depth: usize,
    out: &mut Flat,
) -> Result<()> {
    if depth > super::MAX_DEPTH {
        return Err(super::too_deep(&format!(
            "tree folder {}",
            String::from_utf8_lossy(prefix)
        )));
    }
    for e in &t.entries {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&e.name);
        match (e.kind, e.object) {
            (Kind::Dir, Some(sub)) => {
                let subtree = load(store, &sub)?;
                if subtree.entries.is_empty() {
                    out.insert(path, e.clone());
                } else {
                    flatten_into(store, &subtree, &path, depth + 1, out)?;
                }
            }
            _ => {
                out.insert(path, e.clone());
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Dir {
    entries: Vec<Entry>,
    subdirs: BTreeMap<Vec<u8>, Dir>,
}

/// The tree of `leaves` (as [`flatten`] gives them), stored; returns its root and every
/// tree object written. Leaf contents must already be in the store.
pub fn build(store: &Store, leaves: &Flat) -> Result<(ObjectMeta, Vec<(ObjectMeta, ObjKind)>)> {
    let mut root = Dir::default();
    for (path, e) in leaves {
        let mut parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        let last = parts.pop().expect("a path has a last component");
        let mut d = &mut root;
        for p in parts {
            d = d.subdirs.entry(p.to_vec()).or_default();
        }
        let mut e = e.clone();
        e.name = last.to_vec();
        d.entries.push(e);
    }
    let mut objects = Vec::new();
    let root = seal(store, root, &mut objects)?;
    Ok((root, objects))
}

fn seal(store: &Store, d: Dir, objects: &mut Vec<(ObjectMeta, ObjKind)>) -> Result<ObjectMeta> {
    let mut entries = d.entries;
    for (name, sub) in d.subdirs {
        // An empty folder leaf and files under the same name: the files win.
        entries.retain(|e| e.name != name);
        let m = seal(store, sub, objects)?;
        entries.push(Entry::dir(name, m));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let m = store.put_bytes(&Tree { entries }.encode())?;
    objects.push((m, ObjKind::Tree));
    Ok(m)
}

/// The tree of files given by content (a fixture's, compiled in or read from its folder):
/// each stored as a blob, not executable.
pub fn of_files(
    store: &Store,
    files: &[(String, Vec<u8>)],
) -> Result<(ObjectMeta, Vec<(ObjectMeta, ObjKind)>)> {
    let mut leaves = Flat::new();
    let mut blobs = Vec::new();
    for (path, bytes) in files {
        let m = store.put_bytes(bytes)?;
        blobs.push((m, ObjKind::Blob));
        let name = path.rsplit('/').next().unwrap_or(path).as_bytes().to_vec();
        leaves.insert(path.as_bytes().to_vec(), Entry::file(name, m, false));
    }
    let (root, mut trees) = build(store, &leaves)?;
    blobs.append(&mut trees);
    Ok((root, blobs))
}
