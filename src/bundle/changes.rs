//! The diff of what a provider changed: each path the run's report lists as changed,
//! looked up in the fixture's tree and in the workspace's tree, as a unified diff. The
//! exporter and the verifier run the same code, the exporter over the store (noting
//! every object it read, which the bundle then carries) and the verifier over the
//! bundle's objects, so a diff that verifies is the diff of the recorded trees.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use crate::id::ObjectId;
use crate::report::Change;
use crate::store::tree::{Entry, Kind, Tree};
use crate::store::{hash_bytes, Store};

/// A file larger than this is shown by its digests, not its lines.
const MAX_SHOWN_BYTES: u64 = 1 << 20;

/// Objects by id, each checked against its id.
pub(crate) trait Objects {
    fn get(&self, id: &ObjectId) -> std::result::Result<Vec<u8>, String>;
}

/// The store's objects, noting each one read.
pub(crate) struct Recording<'a> {
    pub store: &'a Store,
    pub read: RefCell<BTreeMap<ObjectId, Vec<u8>>>,
}

impl Objects for Recording<'_> {
    fn get(&self, id: &ObjectId) -> std::result::Result<Vec<u8>, String> {
        let bytes = self.store.get_verified(id).map_err(|e| e.to_string())?;
        self.read.borrow_mut().insert(*id, bytes.clone());
        Ok(bytes)
    }
}

/// A bundle's `objects/HEX` members, noting each one read.
pub(crate) struct Carried<'a> {
    pub members: &'a BTreeMap<String, Vec<u8>>,
    pub used: RefCell<std::collections::BTreeSet<String>>,
}

pub(crate) fn member(id: &ObjectId) -> String {
    format!("objects/{}", id.hex())
}

impl Objects for Carried<'_> {
    fn get(&self, id: &ObjectId) -> std::result::Result<Vec<u8>, String> {
        let name = member(id);
        let bytes = self
            .members
            .get(&name)
            .ok_or_else(|| format!("{name} is not in the bundle"))?;
        if hash_bytes(bytes).id != *id {
            return Err(format!("{name} does not hash to its name"));
        }
        self.used.borrow_mut().insert(name);
        Ok(bytes.clone())
    }
}

/// Trees read once each: a diff of many paths under one folder reads it once, and finds
/// each name by binary search (a tree's entries are strictly sorted, `Tree::decode`).
struct Trees<'a> {
    objs: &'a dyn Objects,
    read: HashMap<ObjectId, Tree>,
}

impl Trees<'_> {
    fn tree(&mut self, id: &ObjectId) -> std::result::Result<&Tree, String> {
        if !self.read.contains_key(id) {
            let t = Tree::decode(&self.objs.get(id)?)
                .map_err(|e| format!("object {id} is not a tree: {e}"))?;
            self.read.insert(*id, t);
        }
        Ok(&self.read[id])
    }

    /// The entry at `path` in tree `root`, reading only the trees along the way.
    fn entry_at(
        &mut self,
        root: &ObjectId,
        path: &str,
    ) -> std::result::Result<Option<Entry>, String> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut id = *root;
        for (i, part) in parts.iter().enumerate() {
            let t = self.tree(&id)?;
            let Ok(at) = t
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(part.as_bytes()))
            else {
                return Ok(None);
            };
            let e = &t.entries[at];
            if i + 1 == parts.len() {
                return Ok(Some(e.clone()));
            }
            match (e.kind, e.object) {
                (Kind::Dir, Some(sub)) => id = sub,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

fn describe(e: &Entry) -> String {
    match e.kind {
        Kind::File => format!(
            "file, {} bytes, {}",
            e.size,
            e.sha256.map(|s| s.to_string()).unwrap_or_default()
        ),
        Kind::Symlink => format!(
            "symlink to {:?}",
            String::from_utf8_lossy(e.target.as_deref().unwrap_or_default())
        ),
        Kind::Dir => "empty folder".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The bytes of a file entry small enough to show as lines, else `None`.
fn shown(objs: &dyn Objects, e: Option<&Entry>) -> std::result::Result<Option<Vec<u8>>, String> {
    match e {
        None => Ok(Some(Vec::new())),
        Some(e) if e.kind == Kind::File && e.size <= MAX_SHOWN_BYTES => match e.object {
            Some(id) => objs.get(&id).map(Some),
            None => Ok(None),
        },
        Some(_) => Ok(None),
    }
}

fn binary(b: &[u8]) -> bool {
    b[..b.len().min(8000)].contains(&0)
}

/// The unified diff of `changes` between the fixture's tree and the workspace's.
pub(crate) fn diff(
    objs: &dyn Objects,
    fixture: &ObjectId,
    workspace: &ObjectId,
    changes: &[Change],
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut trees = Trees {
        objs,
        read: HashMap::new(),
    };
    for c in changes {
        let before = trees.entry_at(fixture, &c.path)?;
        let after = trees.entry_at(workspace, &c.path)?;
        let old = shown(objs, before.as_ref())?;
        let new = shown(objs, after.as_ref())?;
        match (old, new) {
            (Some(old), Some(new)) if !binary(&old) && !binary(&new) => {
                let p = Path::new(&c.path);
                let old_path = before.as_ref().map(|_| p);
                let new_path = after.as_ref().map(|_| p);
                let patch = git2::Patch::from_buffers(&old, old_path, &new, new_path, None)
                    .and_then(|mut p| p.to_buf())
                    .map_err(|e| format!("diff of {}: {e}", c.path))?;
                let text = String::from_utf8_lossy(&patch);
                if text.is_empty() {
                    let _ = writeln!(out, "# {}: {} (contents unchanged)", c.path, c.status);
                } else {
                    out.push_str(&text);
                }
            }
            _ => {
                let side = |e: &Option<Entry>| e.as_ref().map_or("absent".into(), describe);
                let _ = writeln!(
                    out,
                    "# {}: {}: {} -> {}",
                    c.path,
                    c.status,
                    side(&before),
                    side(&after)
                );
            }
        }
    }
    Ok(out)
}
