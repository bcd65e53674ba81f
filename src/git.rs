//! Reading git clones through libgit2. git2 types never leave this module.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Repository, Status, StatusOptions};

use crate::error::{Error, Result};
use crate::id::CommitId;
use crate::state::ChangeStatus;

/// What a clone looks like right now.
#[derive(Debug, Clone)]
pub(crate) struct CloneState {
    pub workdir: PathBuf,
    pub url: Option<String>,
    pub commit: CommitId,
    pub branch: Option<String>,
    pub tree: String,
    /// (path, status) for every path that differs from HEAD, untracked files included.
    pub changes: Vec<(Vec<u8>, ChangeStatus)>,
    /// Index entries flagged so that git stops looking at them (`assume-unchanged`,
    /// `skip-worktree`), with the flag: their contents are compared all the same.
    pub flagged: Vec<(Vec<u8>, &'static str)>,
    /// Every path in the index.
    pub tracked: Vec<Vec<u8>>,
    /// Submodules that are not what the commit records, with why: git status leaves
    /// them out, and their checkout is part of what a build compiled.
    pub submodules: Vec<(String, &'static str)>,
}

pub(crate) enum Pin {
    Commit(CommitId),
    Unknown,
    Ambiguous(Vec<CommitId>),
}

/// A commit id as libgit2 prints it.
fn commit_id(oid: git2::Oid) -> CommitId {
    CommitId::parse(&oid.to_string()).expect("libgit2 prints object ids as lowercase hex")
}

fn gerr<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(git2::Error) -> Error + 'a {
    move |e| Error::Git {
        action,
        path: path.to_path_buf(),
        message: e.message().to_string(),
    }
}

/// The work tree of the clone containing `path`, if any.
pub(crate) fn discover(path: &Path) -> Option<PathBuf> {
    let start = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let start = if start.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        start
    };
    let repo = Repository::discover(&start).ok()?;
    repo.workdir()
        .map(|w| w.canonicalize().unwrap_or_else(|_| w.to_path_buf()))
}

/// The git directory (`.git`) that `path` lies inside, if it lies inside one: files
/// there are git's own bookkeeping, never a build's output.
pub(crate) fn inside_git_dir(path: &Path) -> Option<PathBuf> {
    let canon = path.canonicalize().ok()?;
    let start = canon.parent()?;
    let repo = Repository::discover(start).ok()?;
    let git_dir = repo.path().canonicalize().ok()?;
    canon.starts_with(&git_dir).then_some(git_dir)
}

fn open(dir: &Path) -> Result<Repository> {
    Repository::open(dir).map_err(|e| {
        Error::bad_input(
            format!("{} is not a git clone ({})", dir.display(), e.message()),
            "give the top directory of a git clone (where `.git` is)",
        )
    })
}

pub(crate) fn state(dir: &Path) -> Result<CloneState> {
    let repo = open(dir)?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| {
            Error::bad_input(
                format!("{} is a bare repository", dir.display()),
                "give a clone with a work tree",
            )
        })?
        .to_path_buf();
    let head = repo.head().map_err(|e| {
        if e.code() == ErrorCode::UnbornBranch {
            Error::bad_input(
                format!("{} has no commits yet", dir.display()),
                "commit the source first, then record it",
            )
        } else {
            Error::Git {
                action: "read HEAD",
                path: dir.to_path_buf(),
                message: e.message().to_string(),
            }
        }
    })?;
    let commit = head.peel_to_commit().map_err(gerr("resolve HEAD", dir))?;
    let branch = if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        None
    };
    let url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
        .or_else(|| {
            let names = repo.remotes().ok()?;
            let first = names.iter().flatten().flatten().next()?.to_string();
            repo.find_remote(&first)
                .ok()?
                .url()
                .ok()
                .map(str::to_string)
        });
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true)
        .renames_head_to_index(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(gerr("read status", dir))?;
    let mut changes = Vec::new();
    for s in statuses.iter() {
        let st = s.status();
        let label = if st.is_conflicted() {
            ChangeStatus::Conflicted
        } else if st.intersects(Status::WT_DELETED | Status::INDEX_DELETED) {
            ChangeStatus::Deleted
        } else if st.intersects(Status::WT_TYPECHANGE | Status::INDEX_TYPECHANGE) {
            ChangeStatus::Typechange
        } else if st.intersects(
            Status::WT_MODIFIED
                | Status::INDEX_MODIFIED
                | Status::WT_RENAMED
                | Status::INDEX_RENAMED,
        ) {
            ChangeStatus::Modified
        } else if st.contains(Status::INDEX_NEW) {
            ChangeStatus::Added
        } else if st.contains(Status::WT_NEW) {
            ChangeStatus::Untracked
        } else {
            continue;
        };
        changes.push((s.path_bytes().to_vec(), label));
    }
    let index = repo.index().map_err(gerr("read index", dir))?;
    let flagged = hidden_changes(&index, &workdir, &mut changes);
    changes.sort();
    let tracked = index
        .iter()
        .filter(|e| (e.mode & 0o170000) != 0o160000)
        .map(|e| e.path)
        .collect();
    let submodules = changed_submodules(&repo);
    let workdir = workdir.canonicalize().unwrap_or(workdir);
    Ok(CloneState {
        workdir,
        url,
        commit: commit_id(commit.id()),
        branch,
        tree: commit.tree_id().to_string(),
        changes,
        flagged,
        tracked,
        submodules,
    })
}

/// Each initialised submodule whose checkout, work tree or index differs from the
/// commit the superproject records for it (untracked files inside it aside, as at top
/// level).
fn changed_submodules(repo: &git2::Repository) -> Vec<(String, &'static str)> {
    use git2::SubmoduleStatus as S;
    let Ok(list) = repo.submodules() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sm in list {
        let Ok(name) = sm.name() else { continue };
        let Ok(st) = repo.submodule_status(name, git2::SubmoduleIgnore::None) else {
            continue;
        };
        let why = if st.contains(S::WD_UNINITIALIZED) {
            continue;
        } else if st.contains(S::WD_MODIFIED) {
            "its checkout is at another commit than the one recorded"
        } else if st.intersects(S::WD_INDEX_MODIFIED | S::WD_WD_MODIFIED) {
            "it has uncommitted changes"
        } else if st.intersects(S::INDEX_MODIFIED | S::INDEX_ADDED | S::INDEX_DELETED) {
            "a change to it is staged, not committed"
        } else if st.contains(S::WD_DELETED) {
            "its folder is missing"
        } else {
            continue;
        };
        out.push((sm.path().to_string_lossy().into_owned(), why));
    }
    out.sort();
    out
}

/// `assume-unchanged` in the index entry's flags, `skip-worktree` in its extended flags.
const ASSUME_UNCHANGED: u16 = 0x8000;
const SKIP_WORKTREE: u16 = 0x4000;

/// Paths whose index flags make git stop looking at the work tree. Their contents are
/// compared here instead (a hidden edit is a modification like any other); returns the
/// flagged paths with their flags, and adds what changed to `changes`.
fn hidden_changes(
    index: &git2::Index,
    workdir: &Path,
    changes: &mut Vec<(Vec<u8>, ChangeStatus)>,
) -> Vec<(Vec<u8>, &'static str)> {
    use std::os::unix::ffi::OsStrExt;
    let mut flagged = Vec::new();
    for e in index.iter() {
        let flag = if e.flags & ASSUME_UNCHANGED != 0 {
            "assume-unchanged"
        } else if e.flags_extended & SKIP_WORKTREE != 0 {
            "skip-worktree"
        } else {
            continue;
        };
        flagged.push((e.path.clone(), flag));
        if changes.iter().any(|(p, _)| *p == e.path) {
            continue;
        }
        let on_disk = workdir.join(std::ffi::OsStr::from_bytes(&e.path));
        let status = match std::fs::symlink_metadata(&on_disk) {
            Err(_) => Some(ChangeStatus::Deleted),
            Ok(m) if !m.is_file() => Some(ChangeStatus::Typechange),
            Ok(_) => match git2::Oid::hash_file(git2::ObjectType::Blob, &on_disk) {
                Ok(oid) if oid == e.id => None,
                _ => Some(ChangeStatus::Modified),
            },
        };
        if let Some(s) = status {
            changes.push((e.path.clone(), s));
        }
    }
    flagged.sort();
    flagged
}

/// Resolves a hex prefix to exactly one commit of the clone at `dir`.
pub(crate) fn resolve_pin(dir: &Path, pin: &str) -> Result<Pin> {
    let repo = open(dir)?;
    let found = repo.find_commit_by_prefix(pin).map(|c| commit_id(c.id()));
    match found {
        Ok(c) => Ok(Pin::Commit(c)),
        Err(e) if e.code() == ErrorCode::Ambiguous => {
            let mut found = Vec::new();
            let odb = repo.odb().map_err(gerr("open object database", dir))?;
            odb.foreach(|oid| {
                if oid.to_string().starts_with(pin) && repo.find_commit(*oid).is_ok() {
                    found.push(commit_id(*oid));
                }
                true
            })
            .map_err(gerr("list objects", dir))?;
            found.sort();
            found.dedup();
            if found.len() == 1 {
                Ok(Pin::Commit(found.remove(0)))
            } else {
                Ok(Pin::Ambiguous(found))
            }
        }
        Err(e)
            if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec)
                || e.class() == git2::ErrorClass::Object =>
        {
            Ok(Pin::Unknown)
        }
        Err(e) => Err(Error::Git {
            action: "resolve pin",
            path: dir.to_path_buf(),
            message: e.message().to_string(),
        }),
    }
}

/// Makes `dir` a fresh git repository with everything in it committed once,
/// by a fixed author, so every run starts from the same commit.
pub(crate) fn init_and_commit(dir: &Path, message: &str) -> Result<String> {
    let repo = Repository::init(dir).map_err(gerr("init", dir))?;
    let mut index = repo.index().map_err(gerr("open index", dir))?;
    index
        .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .map_err(gerr("add files", dir))?;
    index.write().map_err(gerr("write index", dir))?;
    let tree_id = index.write_tree().map_err(gerr("write tree", dir))?;
    let tree = repo.find_tree(tree_id).map_err(gerr("find tree", dir))?;
    let sig = git2::Signature::new("cto-ledger", "cto-ledger@localhost", &git2::Time::new(0, 0))
        .map_err(gerr("make signature", dir))?;
    let id = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[])
        .map_err(gerr("commit", dir))?;
    Ok(id.to_string())
}

/// Whether `rel` (relative to the work tree) is matched by the clone's ignore rules.
pub(crate) fn is_ignored(workdir: &Path, rel: &Path) -> bool {
    Repository::open(workdir)
        .and_then(|r| r.is_path_ignored(rel))
        .unwrap_or(false)
}

/// A clean work tree of `commit` from the clone at `src`, made in `dest` (which must
/// not exist): a local clone, detached at the commit, nothing but committed files.
pub(crate) fn checkout_clean(src: &Path, commit: &CommitId, dest: &Path) -> Result<()> {
    let url = src.to_str().ok_or_else(|| {
        Error::bad_input(
            format!("{} is not a UTF-8 path", src.display()),
            "move the clone",
        )
    })?;
    let repo = git2::build::RepoBuilder::new()
        .clone(url, dest)
        .map_err(gerr("clone", src))?;
    // The scratch clone speaks for the source: its origin is the source's origin (or
    // none), never the local path it was cloned from.
    let origin = open(src)?
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string));
    match origin {
        Some(u) => repo.remote_set_url("origin", &u),
        None => repo.remote_delete("origin"),
    }
    .map_err(gerr("set the scratch clone's origin", dest))?;
    let oid = git2::Oid::from_str(commit.as_str()).map_err(gerr("parse commit", src))?;
    let c = repo.find_commit(oid).map_err(|e| {
        Error::bad_input(
            format!(
                "commit {commit} is not in {} ({})",
                src.display(),
                e.message()
            ),
            "fetch the commit into the clone, or check it from a clone that has it",
        )
    })?;
    repo.checkout_tree(
        c.as_object(),
        Some(git2::build::CheckoutBuilder::new().force()),
    )
    .map_err(gerr("check out", dest))?;
    repo.set_head_detached(oid)
        .map_err(gerr("detach HEAD", dest))?;
    Ok(())
}
