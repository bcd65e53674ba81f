//! Directories as tree objects: a canonical (RFC 8785) JSON manifest of sorted
//! entries. Names and symlink targets that are not UTF-8 are kept as hex, so
//! every name survives a round trip, and there is exactly one encoding per tree.
//! Making trees from folders is [`ingest`]; writing them back out is [`restore`].

pub mod dircache;
pub mod flat;
mod ingest;
mod restore;
mod walk;

use serde::{Deserialize, Serialize};

pub use ingest::{
    ingest_listed, ingest_open, ingest_path, ingest_path_cached, ingest_path_like, DirCache,
    Ingested, OpenFolder, StatKey, StatRow,
};
pub use restore::restore;

use super::Store;
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};

pub const FORMAT: &str = "cto-ledger-tree-v1";
/// RFC 8785 numbers are IEEE 754 doubles: integers above 2^53 - 1 would not round-trip.
pub const MAX_SIZE: u64 = (1 << 53) - 1;
/// How many folders deep a tree may nest (git allows 4096; real trees, `node_modules`
/// included, stay far below this). Deeper folders are refused when ingested and when a
/// stored tree is walked, so no walk recurses without bound.
pub const MAX_DEPTH: usize = 256;

/// The error for a tree or folder nested deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(what: &str) -> Error {
    Error::bad_input(
        format!("{what} nests more than {MAX_DEPTH} folders deep"),
        format!("trees may nest at most {MAX_DEPTH} folders deep; flatten the folder or leave the deep part out"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A special file (only in run folders): recorded by name and kind, no content.
    Fifo,
    Socket,
    #[serde(rename = "char-device")]
    CharDevice,
    #[serde(rename = "block-device")]
    BlockDevice,
}

impl Kind {
    /// A FIFO, socket or device: a name with no content to store.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice
        )
    }

    /// The special kind of a file type, if it is one.
    pub fn special_of(ft: &std::fs::FileType) -> Option<Kind> {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            Some(Kind::Fifo)
        } else if ft.is_socket() {
            Some(Kind::Socket)
        } else if ft.is_char_device() {
            Some(Kind::CharDevice)
        } else if ft.is_block_device() {
            Some(Kind::BlockDevice)
        } else {
            None
        }
    }
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

    /// A FIFO, socket or device, by name and kind.
    pub fn special(name: Vec<u8>, kind: Kind) -> Entry {
        debug_assert!(kind.is_special());
        Entry {
            name,
            kind,
            executable: false,
            size: 0,
            object: None,
            sha256: None,
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
                k if k.is_special()
                    && (r.object.is_some()
                        || r.sha256.is_some()
                        || target.is_some()
                        || r.executable
                        || r.size != 0) =>
                {
                    return Err(format!(
                        "special entry {shown:?} must carry only its name and kind"
                    ))
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
}
