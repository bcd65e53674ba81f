//! Fault injection for the test suite (`CTO_LEDGER_TEST_POWER_CUT=1`): right after each
//! journal commit the power goes, and every file under the store's `objects/` that no sync
//! made durable is deleted, as a power cut would lose it (SQLite's commit is on disk; the
//! page cache is not). Durable are the files a sync of any process flushed one by one,
//! everything present when a sync was one `syncfs`, and the files that were there when
//! this process opened the store unless a command wrote them and never flushed them. A
//! file is known by its path and inode, so one renamed over a flushed one is not durable
//! by that flush. Through the journal's one door ([`super::Synced`]) nothing named is
//! ever lost; a sync that missed a file (or a commit that skipped the sync) leaves events
//! naming objects that `audit` then finds missing.
//!
//! Processes sharing a store (`run stage2 --jobs 2`) share a log beside the ledger home:
//! what each flushed, and what each wrote and has yet to flush, which another
//! process's power cut leaves alone while the writer runs (it will sync it) and takes
//! once the writer is dead.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Per store root, the files (path, inode) there when this process opened it.
type Opened = HashMap<PathBuf, HashSet<(PathBuf, u64)>>;

fn model() -> Option<&'static Mutex<Opened>> {
    static ON: OnceLock<Option<Mutex<Opened>>> = OnceLock::new();
    ON.get_or_init(|| crate::env::get("CTO_LEDGER_TEST_POWER_CUT").map(|_| Mutex::default()))
        .as_ref()
}

fn identity(path: &Path) -> Option<(PathBuf, u64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((path.to_path_buf(), m.ino()))
}

/// The object files and packs under `root` (temp files are never objects: losing one
/// loses nothing a journal names).
fn files_under(root: &Path) -> impl Iterator<Item = (PathBuf, u64)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let n = e.file_name().as_encoded_bytes();
            !n.starts_with(super::local::TEMP_PREFIX.as_bytes())
                && !n.starts_with(super::pack::TEMP_PREFIX.as_bytes())
        })
        .filter_map(|e| identity(e.path()))
}

/// `<home>.power-cut.log` beside the ledger home (inside it, `audit` would rightly call it
/// something that does not belong).
fn log_of(root: &Path) -> PathBuf {
    let home = root.parent().unwrap_or(root);
    let mut name = home.file_name().unwrap_or_default().to_os_string();
    name.push(".power-cut.log");
    home.with_file_name(name)
}

/// Appends `F` (flushed) or `W` (written, not yet flushed) lines: pid, inode, path.
fn note(root: &Path, what: char, files: impl Iterator<Item = (PathBuf, u64)>) {
    let mut text = String::new();
    for (p, ino) in files {
        text.push_str(&format!(
            "{what}\t{}\t{ino}\t{}\n",
            std::process::id(),
            p.display()
        ));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_of(root));
    if let Ok(mut f) = log {
        let _ = f.write_all(text.as_bytes());
    }
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

/// `file` is about to be renamed to `target` under `root` (and then not yet durable):
/// noted first, so that no other process's power cut takes it for a file nobody wrote.
pub(crate) fn renaming(root: &Path, target: &Path, file: &std::fs::File) {
    if model().is_some() {
        if let Ok(m) = file.metadata() {
            note(root, 'W', std::iter::once((target.to_path_buf(), m.ino())));
        }
    }
}

/// A sync flushed these files one by one.
pub(crate) fn flushed(root: &Path, files: &[PathBuf]) {
    if model().is_some() {
        note(root, 'F', files.iter().filter_map(|f| identity(f)));
    }
}

/// A sync flushed the whole filesystem.
pub(crate) fn synced_all(root: &Path) {
    if model().is_some() {
        note(root, 'F', files_under(root));
    }
}

/// A journal commit just became durable: the power goes now.
pub(crate) fn after_commit() {
    let Some(m) = model() else { return };
    let me = std::process::id().to_string();
    for (root, opened) in m.lock().expect("not poisoned").iter() {
        // Listed before the log is read: a file another process renamed into place was
        // noted there first, so every file listed here that another process is still
        // writing is in the log by the time it is read.
        let present: Vec<(PathBuf, u64)> = files_under(root).collect();
        let log = std::fs::read_to_string(log_of(root)).unwrap_or_default();
        let (mut flushed, mut written, mut others) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        for l in log.lines() {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            let [what, pid, ino, path] = f[..] else {
                continue;
            };
            let id = (PathBuf::from(path), ino.parse::<u64>().unwrap_or(0));
            if what == "F" {
                flushed.insert(id);
                continue;
            }
            // Still running elsewhere: it will sync what it wrote, or die with the power.
            if pid != me && Path::new("/proc").join(pid).exists() {
                others.insert(id.clone());
            }
            written.insert(id);
        }
        for f in present {
            // A file that was there when this process opened the store is durable unless
            // a command wrote it and never flushed it (it was killed first).
            let durable = flushed.contains(&f) || (opened.contains(&f) && !written.contains(&f));
            if !durable && !others.contains(&f) {
                let _ = std::fs::remove_file(&f.0);
            }
        }
    }
}
