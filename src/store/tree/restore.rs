//! Trees back into folders: every link checked (through the tree's other links) before
//! anything is written, every file verified against its id as it is written.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{load, Kind, Tree};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::Store;

/// Every symlink of a tree, by its path inside the tree (components joined with `/`).
type Links = std::collections::HashMap<Vec<u8>, Vec<u8>>;

fn collect_links(store: &Store, tree: &Tree, prefix: &[u8], links: &mut Links) -> Result<()> {
    if prefix.split(|b| *b == b'/').count() > super::MAX_DEPTH {
        return Err(super::too_deep(&format!(
            "tree folder {}",
            String::from_utf8_lossy(prefix)
        )));
    }
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
            _ => {}
        }
    }
    Ok(())
}

/// How many links a path may pass through before it counts as a loop (Linux: 40).
const MAX_FOLLOWS: usize = 40;

/// A tree's links, found by a key of their path that is extended one component at a
/// time, so resolving a path costs one lookup per component whatever its length (a
/// lookup by the joined path costs the path's length, and a tree of long links made that
/// quadratic). Keys are hashed with this process's random seed; a match is confirmed
/// against the path itself.
struct Resolver<'a> {
    seed: std::collections::hash_map::RandomState,
    by_key: std::collections::HashMap<u64, Vec<LinkAt<'a>>>,
}

/// A link's path in the tree and its target.
type LinkAt<'a> = (&'a [u8], &'a [u8]);

impl<'a> Resolver<'a> {
    fn new(links: &'a Links) -> Resolver<'a> {
        let mut r = Resolver {
            seed: Default::default(),
            by_key: Default::default(),
        };
        for (path, target) in links {
            let k = path.split(|b| *b == b'/').fold(0, |k, c| r.key(k, c));
            r.by_key.entry(k).or_default().push((path, target));
        }
        r
    }

    fn key(&self, parent: u64, component: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.seed.hash_one((parent, component))
    }

    /// The target of the link at `cur` (whose last key is `k`), if it is one.
    fn link_at(&self, cur: &[(&[u8], u64)], k: u64) -> Option<&'a [u8]> {
        self.by_key.get(&k)?.iter().find_map(|(path, target)| {
            let same = path.split(|b| *b == b'/').eq(cur.iter().map(|(c, _)| *c));
            same.then_some(*target)
        })
    }
}

/// Where the link at `link` leads once the tree is on disk: followed through the tree's
/// own links as the kernel would follow them, so `..` after a component that is itself a
/// link climbs from where that link points. `Err` says why it escapes (or loops).
#[cfg(test)]
fn link_resolution(links: &Links, link: &[u8]) -> std::result::Result<(), &'static str> {
    resolve_link(&Resolver::new(links), links, link)
}

/// As [`link_resolution`], with the links' resolver made once for the whole tree.
fn resolve_link<'a>(
    r: &Resolver<'a>,
    links: &'a Links,
    link: &'a [u8],
) -> std::result::Result<(), &'static str> {
    let mut cur: Vec<(&[u8], u64)> = Vec::new();
    for c in link.split(|b| *b == b'/') {
        let k = r.key(cur.last().map_or(0, |l| l.1), c);
        cur.push((c, k));
    }
    let mut pending: std::collections::VecDeque<&[u8]> = Default::default();
    let mut follows = 0;
    let mut follow = |cur: &mut Vec<(&'a [u8], u64)>,
                      pending: &mut std::collections::VecDeque<&'a [u8]>,
                      target: &'a [u8]| {
        follows += 1;
        if follows > MAX_FOLLOWS {
            return Err("its links form a loop");
        }
        if target.is_empty() {
            return Err("it has no target");
        }
        if target[0] == b'/' {
            return Err("it points to an absolute path");
        }
        cur.pop(); // a link's target is relative to the directory holding it
        for c in target.split(|b| *b == b'/').rev() {
            pending.push_front(c);
        }
        Ok(())
    };
    follow(
        &mut cur,
        &mut pending,
        links.get(link).map(Vec::as_slice).unwrap_or_default(),
    )?;
    while let Some(c) = pending.pop_front() {
        match c {
            b"" | b"." => {}
            b".." => {
                if cur.pop().is_none() {
                    return Err("it climbs above the restore directory");
                }
            }
            name => {
                let k = r.key(cur.last().map_or(0, |l| l.1), name);
                cur.push((name, k));
                if let Some(t) = r.link_at(&cur, k) {
                    follow(&mut cur, &mut pending, t)?;
                }
            }
        }
    }
    Ok(())
}

/// Refuses the whole tree before anything is written if any link would resolve outside
/// it, directly or through the tree's other links.
fn check_escapes(store: &Store, tree: &Tree) -> Result<()> {
    let mut links = Links::new();
    collect_links(store, tree, b"", &mut links)?;
    let mut paths: Vec<&Vec<u8>> = links.keys().collect();
    paths.sort();
    let resolver = Resolver::new(&links);
    for p in paths {
        if let Err(why) = resolve_link(&resolver, &links, p) {
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
            // A FIFO, socket or device was recorded by name and kind; it has no content
            // to write back.
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {}
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
