//! Folders as an ingest finds them, before any file is read: a parallel walk (symlinks
//! recorded, never followed), then each directory matched against its record in the
//! directory cache, so what is unchanged is known before the first file is opened, and
//! an unchanged directory costs one `readdir` and a `stat` per file.

use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rustix::fd::AsFd;

use super::dircache::{self, Now, Record, Was};
use super::{DirCache, Entry, Kind, StatKey};
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta};

/// What the walk found under one name.
pub(super) enum Found {
    /// A regular file, its stat taken when listed (a change after that is caught next
    /// time), and what it is known to be.
    File {
        key: StatKey,
        known: Known,
    },
    Link(Vec<u8>),
    /// A FIFO, socket or device (kept only when the walk records them).
    Special(Kind),
    /// A subdirectory: the tree its parent's record had for it, and the tree it sealed to.
    Dir {
        was: Option<ObjectId>,
        tree: Option<ObjectMeta>,
    },
}

/// What a listed file is known to be.
pub(super) enum Known {
    /// Nothing yet: it is read.
    Nothing,
    /// What it was when its stat was this one: it is not read.
    Same(ObjectMeta),
    /// What it was when it was as long: it is read, and not copied if still that.
    Like(ObjectMeta),
    /// What reading it found.
    Read(ObjectMeta),
}

impl Known {
    /// The file's object, once known.
    pub(super) fn meta(&self) -> Option<&ObjectMeta> {
        match self {
            Known::Same(m) | Known::Read(m) => Some(m),
            Known::Nothing | Known::Like(_) => None,
        }
    }
}

pub(super) struct Listed {
    /// Where the name is in [`DirNode::names`].
    name: Range<u32>,
    pub found: Found,
}

/// One directory as the walk found it.
pub(super) struct DirNode {
    pub path: PathBuf,
    /// The parent's index in [`Walked::dirs`] and this directory's place among its entries;
    /// `None` for the root.
    pub parent: Option<(usize, usize)>,
    /// Every name, one after another (one allocation per directory, not per file).
    names: Vec<u8>,
    /// Sorted by name, as a tree lists them.
    pub entries: Vec<Listed>,
    /// The record's tree, when every entry matched the record (subdirectories by name:
    /// their trees are known only once they are sealed).
    pub same_as: Option<ObjectMeta>,
}

impl DirNode {
    pub(super) fn name(&self, e: &Listed) -> &[u8] {
        &self.names[e.name.start as usize..e.name.end as usize]
    }

    /// Whether the record's tree is this directory's: every entry as recorded, and every
    /// subdirectory sealed to the tree the record had for it.
    pub(super) fn unchanged(&self) -> Option<ObjectMeta> {
        let subtrees = self.entries.iter().all(|e| match &e.found {
            Found::Dir { was, tree } => was.is_some() && *was == tree.map(|t| t.id),
            _ => true,
        });
        self.same_as.filter(|_| subtrees)
    }

    /// The tree entry for `e`, once its file is stored and its subdirectory sealed.
    pub(super) fn entry(&self, e: &Listed) -> Entry {
        let name = self.name(e).to_vec();
        match &e.found {
            Found::File { key, known } => Entry::file(
                name,
                *known
                    .meta()
                    .expect("files are stored before their directory is sealed"),
                key.mode & 0o111 != 0,
            ),
            Found::Dir { tree, .. } => Entry::dir(
                name,
                tree.expect("subdirectories are sealed before their parent"),
            ),
            Found::Link(t) => Entry::symlink(name, t.clone()),
            Found::Special(k) => Entry::special(name, *k),
        }
    }

    /// This directory's record, for the tree `tree` it sealed to.
    pub(super) fn record(&self, tree: &ObjectMeta) -> Vec<u8> {
        dircache::encode(
            tree,
            self.entries.iter().map(|e| {
                let now = match &e.found {
                    Found::File { key, known } => {
                        Now::File(key, known.meta().expect("stored before sealing"))
                    }
                    Found::Dir { tree, .. } => {
                        Now::Dir(&tree.as_ref().expect("sealed before the parent").id)
                    }
                    Found::Link(t) => Now::Link(t),
                    Found::Special(k) => Now::Special(*k),
                };
                (self.name(e), now)
            }),
        )
    }

    /// Takes from this directory's record in `cache` what still holds: files whose stat
    /// it vouches for, what rebuilt files were, the trees subdirectories had.
    pub(super) fn match_cache(&mut self, cache: &dyn DirCache) {
        if let Some((bytes, recorded)) = cache.dir(&self.path) {
            if let Some(rec) = dircache::decode(bytes) {
                self.match_record(&rec, recorded);
            }
        }
    }

    fn match_record(&mut self, rec: &Record<'_>, recorded: i64) {
        let mut same = rec.entries.len() == self.entries.len();
        let mut was = rec.entries.iter().peekable();
        for e in &mut self.entries {
            let name = &self.names[e.name.start as usize..e.name.end as usize];
            while was.next_if(|(n, _)| *n < name).is_some() {
                same = false; // a name the directory no longer has
            }
            let matched = match (was.next_if(|(n, _)| *n == name), &mut e.found) {
                (Some((_, Was::File(k, m))), Found::File { key, known }) => {
                    if dircache::trusted(k, key, recorded) {
                        *known = Known::Same(*m);
                        true
                    } else {
                        if k.size == key.size {
                            *known = Known::Like(*m);
                        }
                        false
                    }
                }
                (Some((_, Was::Dir(id))), Found::Dir { was, .. }) => {
                    *was = Some(*id);
                    true
                }
                (Some((_, Was::Link(t))), Found::Link(now)) => *t == now.as_slice(),
                (Some((_, Was::Special(k))), Found::Special(now)) => k == now,
                _ => false,
            };
            same &= matched;
        }
        self.same_as = same.then_some(rec.tree);
    }
}

/// A directory tree, breadth first: every directory comes after its parent, and
/// `levels[d]` is the index range of the directories at depth `d`.
pub(super) struct Walked {
    pub dirs: Vec<DirNode>,
    pub levels: Vec<Range<usize>>,
    /// The folder walked, through which its files are opened.
    pub root: Root,
}

/// A folder being ingested, opened once: every directory and file below it is opened
/// through this descriptor by its path below it, following no symlink on the way
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or a component at a time
/// where the kernel lacks it). A folder inside swapped for a symlink while the ingest
/// runs is then refused, never followed out of the tree.
pub(super) struct Root {
    fd: rustix::fd::OwnedFd,
    pub path: PathBuf,
    /// Opens a component at a time even where `openat2` exists (a test hook).
    stepwise: bool,
}

/// Set once `openat2` is found missing (`ENOSYS`: kernels before 5.6, some seccomp
/// filters); the walk then opens one component at a time.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

impl Root {
    fn open(path: &Path) -> Result<Root> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| Error::io("read directory", path)(e.into()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            stepwise: crate::env::get("CTO_LEDGER_TEST_NO_OPENAT2").is_some(),
        })
    }

    /// Opens `path` (the root or a path below it, as the walk named it) with `flags`,
    /// following no symlink, not even in its last component. A symlink met on the way
    /// (a folder swapped for one since it was listed) is the error [`replaced`].
    pub(super) fn open_below(
        &self,
        path: &Path,
        flags: rustix::fs::OFlags,
    ) -> Result<rustix::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        let rel = path.strip_prefix(&self.path).expect("named below the root");
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut r = Err(Errno::NOSYS);
        if !self.stepwise && !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            r = rustix::fs::openat2(&self.fd, rel, flags, Mode::empty(), resolve);
            if matches!(r, Err(Errno::NOSYS)) {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
        }
        if matches!(r, Err(Errno::NOSYS)) {
            r = self.open_stepwise(rel, flags);
        }
        let action = if flags.contains(OFlags::DIRECTORY) {
            "read directory"
        } else {
            "open"
        };
        r.map_err(|e| match e {
            Errno::LOOP | Errno::XDEV | Errno::NOTDIR => crate::store::replaced(path),
            e => Error::io(action, path)(e.into()),
        })
    }

    /// `open_below` without `openat2`: each folder on the way opened from the one before
    /// it with `O_NOFOLLOW`, so none of them can be a symlink.
    fn open_stepwise(
        &self,
        rel: &Path,
        flags: rustix::fs::OFlags,
    ) -> rustix::io::Result<rustix::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut parts = rel.iter().peekable();
        let mut at: Option<rustix::fd::OwnedFd> = None;
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            let here = at.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let f = if last { flags } else { dir_flags };
            at = Some(rustix::fs::openat(here, part, f, Mode::empty())?);
        }
        Ok(at.expect("a path has at least one component"))
    }
}

/// Lists `root`, subdirectories read in parallel as rayon finds idle threads (trees like
/// `node_modules` are too lopsided for level-by-level reading to keep two cores busy).
/// Each directory read spawns a task per subdirectory, so the walk never recurses on a
/// stack, however deep the tree (it stops at [`super::MAX_DEPTH`]). Symlinks are
/// recorded, never followed; special files are refused, unless `specials` (run folders:
/// a FIFO a provider left is recorded by name and kind, never opened). `leave_out` names
/// entries of the root to pass over.
pub(super) fn walk(root: &Path, specials: bool, leave_out: &[&str]) -> Result<Walked> {
    let root = Root::open(root)?;
    /// A directory read: (depth, id, parent's id and this one's slot in it, directory).
    type Read = (usize, usize, Option<(usize, usize)>, DirNode);
    struct Shared<'a> {
        found: Mutex<Vec<Read>>,
        failed: Mutex<Option<Error>>,
        /// Set with `failed`, read without its lock by every task.
        stop: AtomicBool,
        ids: AtomicUsize,
        specials: bool,
        leave_out: &'a [&'a str],
        root: &'a Root,
    }
    fn visit<'s>(
        s: &rayon::Scope<'s>,
        sh: &'s Shared<'s>,
        path: PathBuf,
        depth: usize,
        parent: Option<(usize, usize)>,
    ) {
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let id = sh.ids.fetch_add(1, Ordering::Relaxed);
        let read = if depth > super::MAX_DEPTH {
            Err(super::too_deep(&sh.root.path.display().to_string()))
        } else {
            let leave_out = if depth == 0 { sh.leave_out } else { &[] };
            read_one(sh.root, path, sh.specials, leave_out)
        };
        match read {
            Ok(node) => {
                for (slot, e) in node.entries.iter().enumerate() {
                    if let Found::Dir { .. } = e.found {
                        let sub = node.path.join(OsStr::from_bytes(node.name(e)));
                        s.spawn(move |s| visit(s, sh, sub, depth + 1, Some((id, slot))));
                    }
                }
                let mut found = sh.found.lock().expect("not poisoned");
                found.push((depth, id, parent, node));
            }
            Err(e) => {
                sh.failed.lock().expect("not poisoned").get_or_insert(e);
                sh.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let sh = Shared {
        found: Mutex::new(Vec::new()),
        failed: Mutex::new(None),
        stop: AtomicBool::new(false),
        ids: AtomicUsize::new(0),
        specials,
        leave_out,
        root: &root,
    };
    rayon::scope(|s| visit(s, &sh, root.path.clone(), 0, None));
    if let Some(e) = sh.failed.into_inner().expect("not poisoned") {
        return Err(e);
    }
    // Breadth first, so every directory follows its parent and each depth is one range.
    let mut nodes = sh.found.into_inner().expect("not poisoned");
    nodes.sort_unstable_by(|a, b| {
        (a.0, a.3.path.as_os_str().as_bytes()).cmp(&(b.0, b.3.path.as_os_str().as_bytes()))
    });
    let mut at = vec![usize::MAX; sh.ids.into_inner()];
    let mut out = Walked {
        dirs: Vec::with_capacity(nodes.len()),
        levels: Vec::new(),
        root,
    };
    for (depth, id, parent, mut node) in nodes {
        if out.levels.len() <= depth {
            out.levels.push(out.dirs.len()..out.dirs.len());
        }
        let i = out.dirs.len();
        at[id] = i;
        node.parent = parent.map(|(p, slot)| (at[p], slot));
        out.dirs.push(node);
        out.levels[depth].end = i + 1;
    }
    if let Some(flag) = crate::env::get_os("CTO_LEDGER_TEST_WALKED") {
        pause_after_walk(Path::new(&flag));
    }
    Ok(out)
}

/// The `CTO_LEDGER_TEST_WALKED` hook: `flag` created, then waited on until it is gone.
fn pause_after_walk(flag: &Path) {
    let _ = std::fs::write(flag, b"walked\n");
    for _ in 0..6000 {
        if !flag.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// One directory's entries but those `leave_out` names, sorted; subdirectories are
/// named, not entered. Read through one descriptor of the directory, opened through
/// `root` (a directory swapped for a symlink while the walk runs is refused, not
/// followed), each entry looked up by name in it.
fn read_one(root: &Root, path: PathBuf, specials: bool, leave_out: &[&str]) -> Result<DirNode> {
    use rustix::fs::{AtFlags, Dir, FileType, OFlags};
    let mut node = DirNode {
        path,
        parent: None,
        // Most directories fit, without growing as they are read.
        names: Vec::with_capacity(256),
        entries: Vec::with_capacity(16),
        same_as: None,
    };
    let dir = &node.path;
    let listing = |e: rustix::io::Errno| Error::io("read directory", dir)(e.into());
    let fd = root.open_below(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let mut list = Dir::new(fd).map_err(listing)?;
    while let Some(ent) = list.read() {
        let ent = ent.map_err(listing)?;
        let fd = list.fd().map_err(listing)?;
        let name = ent.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." || leave_out.iter().any(|l| bytes == l.as_bytes()) {
            continue;
        }
        // The entry's path, joined only if there is an error to name it in.
        let at = |action| {
            move |e: rustix::io::Errno| {
                Error::io(action, dir.join(OsStr::from_bytes(bytes)))(e.into())
            }
        };
        let mut ft = ent.file_type();
        let mut stat = None;
        if matches!(ft, FileType::RegularFile | FileType::Unknown) {
            // The stat decides what the entry is: it may have changed since it was listed.
            let st = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(at("stat"))?;
            ft = FileType::from_raw_mode(st.st_mode);
            stat = Some(st);
        }
        let found = match ft {
            FileType::Directory => Found::Dir {
                was: None,
                tree: None,
            },
            FileType::RegularFile => Found::File {
                key: StatKey::of_stat(&stat.expect("taken for files")),
                known: Known::Nothing,
            },
            FileType::Symlink => {
                let t = rustix::fs::readlinkat(fd, name, Vec::new()).map_err(at("read link"))?;
                Found::Link(t.into_bytes())
            }
            other => match special_kind(other).filter(|_| specials) {
                Some(kind) => Found::Special(kind),
                None => {
                    return Err(Error::bad_input(
                        format!(
                            "{} is a special file (device, socket or FIFO)",
                            dir.join(OsStr::from_bytes(bytes)).display()
                        ),
                        "remove it from the directory or ingest the files around it; special files cannot be stored",
                    ))
                }
            },
        };
        let start = node.names.len() as u32;
        node.names.extend_from_slice(bytes);
        node.entries.push(Listed {
            name: start..node.names.len() as u32,
            found,
        });
    }
    let names = &node.names;
    let name = |e: &Listed| &names[e.name.start as usize..e.name.end as usize];
    node.entries.sort_unstable_by(|a, b| name(a).cmp(name(b)));
    Ok(node)
}

fn special_kind(ft: rustix::fs::FileType) -> Option<Kind> {
    use rustix::fs::FileType;
    match ft {
        FileType::Fifo => Some(Kind::Fifo),
        FileType::Socket => Some(Kind::Socket),
        FileType::CharacterDevice => Some(Kind::CharDevice),
        FileType::BlockDevice => Some(Kind::BlockDevice),
        _ => None,
    }
}
