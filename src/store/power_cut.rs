//! Fault injection for the test suite (`CTO_LEDGER_TEST_POWER_CUT=1`): the local store
//! remembers every object file it renames into place until a sync makes it durable, and
//! right after each journal commit deletes the ones still remembered, as a power cut
//! would lose them (SQLite's commit is on disk; the page cache is not). Through the
//! journal's one door ([`super::Synced`]) nothing is ever left to delete; a commit that
//! skipped the sync would leave events naming objects that `audit` then finds missing.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn unsynced() -> Option<&'static Mutex<Vec<PathBuf>>> {
    static ON: OnceLock<Option<Mutex<Vec<PathBuf>>>> = OnceLock::new();
    ON.get_or_init(|| crate::env::get("CTO_LEDGER_TEST_POWER_CUT").map(|_| Mutex::new(Vec::new())))
        .as_ref()
}

/// An object file became visible at `path` (not yet durable).
pub(crate) fn wrote(path: &std::path::Path) {
    if let Some(m) = unsynced() {
        m.lock().expect("not poisoned").push(path.to_path_buf());
    }
}

/// Everything written so far is durable.
pub(crate) fn synced() {
    if let Some(m) = unsynced() {
        m.lock().expect("not poisoned").clear();
    }
}

/// A journal commit just became durable: the power goes now.
pub(crate) fn after_commit() {
    if let Some(m) = unsynced() {
        for p in m.lock().expect("not poisoned").drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}
