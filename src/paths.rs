//! Path helpers shared by commands that record paths in events.

use std::path::{Path, PathBuf};

/// A path as text for an event or a message (lossy for non-UTF-8 names).
pub(crate) fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A path as text that names it exactly: UTF-8 as it is but a backslash doubled, and
/// each byte that is not UTF-8 as `\xHH`. Two different names never read the same
/// (`x\xff` and `x\xfe` are two names, where [`lossy`] makes both `x\u{fffd}`): for
/// paths that are keys (a run's artifacts, an ingest's items).
pub(crate) fn escaped(p: &Path) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for chunk in p.as_os_str().as_encoded_bytes().utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
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

/// Where `name` runs from when a command is started by that name in `cwd`, with the PATH
/// this process has (see [`which_on`]).
pub(crate) fn which(name: &str, cwd: &Path) -> Option<PathBuf> {
    which_on(name, cwd, &crate::env::get_os("PATH").unwrap_or_default())
}

/// Where `name` runs from in `cwd` on `path_var`, as exec resolves it there: a name with a
/// slash is a path from `cwd`; else the first PATH entry holding a regular file this user
/// may execute (a file that is not is skipped, as `execvp` skips it), a relative or empty
/// entry being a folder of `cwd`.
pub(crate) fn which_on(name: &str, cwd: &Path, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
            && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
    };
    if name.contains('/') {
        return Some(cwd.join(name)).filter(|p| runnable(p));
    }
    std::env::split_paths(path_var)
        .map(|d| cwd.join(d).join(name))
        .find(|p| runnable(p))
}

/// The system's folders, for a confined command whose user's PATH has none to give.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The PATH a confined command gets: the user's absolute entries. A relative or empty
/// entry names a folder of wherever the command runs, and Stage 2's commands run in
/// folders the provider wrote: a `sh` left there would otherwise judge its own work.
pub(crate) fn absolute_path_var() -> std::ffi::OsString {
    let given = crate::env::get_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let kept: Vec<PathBuf> = std::env::split_paths(&given)
        .filter(|d| d.is_absolute())
        .collect();
    // Never empty: exec takes an empty PATH as the current folder.
    match std::env::join_paths(kept) {
        Ok(p) if !p.is_empty() => p,
        _ => DEFAULT_PATH.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn escaped_names_are_exact_and_distinct() {
        let p = |b: &[u8]| escaped(Path::new(OsStr::from_bytes(b)));
        assert_eq!(p(b"a/b.txt"), "a/b.txt");
        assert_eq!(p("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(p(b"x\xff"), "x\\xff");
        assert_ne!(p(b"x\xff"), p(b"x\xfe"));
        // A name that spells an escape is not the byte it spells.
        assert_eq!(p(b"x\\xff"), "x\\\\xff");
        assert_ne!(p(b"x\\xff"), p(b"x\xff"));
        assert_ne!(p("x\u{fffd}".as_bytes()), p(b"x\xff"));
    }
}
