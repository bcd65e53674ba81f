//! Path helpers shared by commands that record paths in events.

use std::path::{Path, PathBuf};

/// A path as text for an event or a message (lossy for non-UTF-8 names).
pub(crate) fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A path made absolute against the current directory, as given otherwise.
pub(crate) fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
