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

/// `p` made absolute with `.` and `..` resolved by the text alone (as `realpath -m -s`
/// does): for recorded paths, whose folders may be gone.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in abs(p).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where `p` is on disk: its folder with every link and `..` resolved (as the kernel
/// resolves it), and its own name kept (an output may itself be a link). Falls back to
/// [`normalize`] when the folder does not exist.
pub(crate) fn resolve(p: &Path) -> PathBuf {
    let n = normalize(p);
    let (Some(parent), Some(name)) = (n.parent(), n.file_name()) else {
        return n;
    };
    match std::fs::canonicalize(parent) {
        Ok(dir) => dir.join(name),
        Err(_) => n,
    }
}

/// Where `name` runs from: a path (relative to `cwd`, where the command runs, as exec
/// resolves it there), else the first match on PATH.
pub(crate) fn which(name: &str, cwd: &Path) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(cwd.join(name)).filter(|p| p.is_file());
    }
    crate::env::get_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}
