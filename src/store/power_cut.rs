//! Fault injection for the test suite (`CTO_LEDGER_TEST_POWER_CUT=1`): right after each
//! journal commit the power goes, and every file under the store's `objects/` that no sync
//! made durable is deleted, as a power cut would lose it (SQLite's commit is on disk; the
//! page cache is not). Durable are the files that were there when this process opened
//! the store, the files a sync flushed one by one, and everything present when a sync was
//! one `syncfs`. A file is known by its path and inode, so one renamed over a flushed one
//! is not durable by that flush. Through the journal's one door ([`super::Synced`])
//! nothing named is ever lost; a sync that missed a file (or a commit that skipped the
//! sync) leaves events naming objects that `audit` then finds missing.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Per store root, the files (path, inode) a power cut would keep.
type Durable = HashMap<PathBuf, HashSet<(PathBuf, u64)>>;

fn model() -> Option<&'static Mutex<Durable>> {
    static ON: OnceLock<Option<Mutex<Durable>>> = OnceLock::new();
    ON.get_or_init(|| crate::env::get("CTO_LEDGER_TEST_POWER_CUT").map(|_| Mutex::default()))
        .as_ref()
}

fn identity(path: &Path) -> Option<(PathBuf, u64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((path.to_path_buf(), m.ino()))
}

fn files_under(root: &Path) -> impl Iterator<Item = (PathBuf, u64)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| identity(e.path()))
}

/// The store at `root` was opened: what is there already survives.
pub(crate) fn opened(root: &Path) {
    if let Some(m) = model() {
        let mut m = m.lock().expect("not poisoned");
        if !m.contains_key(root) {
            m.insert(root.to_path_buf(), files_under(root).collect());
        }
    }
}

/// A sync flushed these files one by one.
pub(crate) fn flushed(root: &Path, files: &[PathBuf]) {
    if let Some(m) = model() {
        let mut m = m.lock().expect("not poisoned");
        m.entry(root.to_path_buf())
            .or_default()
            .extend(files.iter().filter_map(|f| identity(f)));
    }
}

/// A sync flushed the whole filesystem.
pub(crate) fn synced_all(root: &Path) {
    if let Some(m) = model() {
        let mut m = m.lock().expect("not poisoned");
        m.entry(root.to_path_buf())
            .or_default()
            .extend(files_under(root));
    }
}

/// A journal commit just became durable: the power goes now.
pub(crate) fn after_commit() {
    if let Some(m) = model() {
        let m = m.lock().expect("not poisoned");
        for (root, durable) in m.iter() {
            for f in files_under(root).filter(|f| !durable.contains(f)) {
                let _ = std::fs::remove_file(&f.0);
            }
        }
    }
}
