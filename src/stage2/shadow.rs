//! What a provider may add that Python would import instead of the fixture's tests or
//! their runner, or that make would read instead of a protected makefile. The judge
//! counts each as tampering: none of it is carried into the judged tree, so the
//! protected tests are what runs.
//!
//! Python's path finder, for a name `X` in a folder, takes a package `X/` (with
//! `__init__`) first, then an extension module (`X.<tag>.so`, `X.abi3.so`, `X.so`), then
//! `X.py`, then `X.pyc`, and a namespace package `X/` last. So a protected `X.py` is
//! shadowed by a folder `X/` or an extension `X*.so` next to it, and a protected test's
//! package folder `P/` (a namespace package when it has no `__init__.py`) by `P.py` or
//! `P*.so` next to it. Bytecode is dropped before this is asked.

use std::collections::BTreeSet;

use crate::store::tree::{Entry, Kind};

/// Files a provider may add that Python would load instead of, or before, the test
/// runner: shadowing `unittest` or `pytest`, or code run at interpreter start-up.
const RUNNER_SHADOWS: [&str; 7] = [
    "unittest.py",
    "unittest",
    "pytest.py",
    "pytest",
    "_pytest",
    "sitecustomize.py",
    "usercustomize.py",
];

/// A bytecode cache a provider (or a model that ran the tests itself) left, which Python
/// would load in place of its source (`-B` only stops writing them): never carried into
/// the judged tree.
pub(super) fn is_bytecode(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').any(|c| c == b"__pycache__")
        || path.ends_with(b".pyc")
        || path.ends_with(b".pyo")
}

/// Extension module and other importable suffixes a module file may have here.
fn is_extension(name: &[u8]) -> bool {
    name.ends_with(b".so") || name.ends_with(b".pyd")
}

/// The import names the protected tests rely on, by the folder they are found in:
/// (folder, name, whether it is a module file's name rather than a package's).
pub(super) struct Protected {
    names: BTreeSet<(Vec<u8>, Vec<u8>, bool)>,
    /// The protected paths themselves.
    files: BTreeSet<Vec<u8>>,
}

impl Protected {
    /// From the protected paths (`/`-separated, relative to the tree).
    pub(super) fn new<'a>(paths: impl Iterator<Item = &'a [u8]>) -> Protected {
        let (mut names, mut files) = (BTreeSet::new(), BTreeSet::new());
        for p in paths {
            files.insert(p.to_vec());
            let parts: Vec<&[u8]> = p.split(|b| *b == b'/').collect();
            for (i, part) in parts.iter().enumerate() {
                let folder = parts[..i].join(&b'/');
                let last = i + 1 == parts.len();
                match (last, part.strip_suffix(b".py")) {
                    (true, Some(stem)) => names.insert((folder, stem.to_vec(), true)),
                    (true, None) => false,
                    (false, _) => names.insert((folder, part.to_vec(), false)),
                };
            }
        }
        Protected { names, files }
    }

    /// Why the provider's file at `path` would stand in for the protected tests or steer
    /// their runner, if it would. `unchanged` is `None` for a file the fixture does not
    /// have, else whether the provider left the fixture's as it was; `bytes` gives the
    /// provider's contents. The Python rules apply only when the tests run Python.
    pub(super) fn why_tampering(
        &self,
        path: &[u8],
        bytes: impl FnOnce() -> Option<Vec<u8>>,
        unchanged: Option<bool>,
        python: bool,
        fixture_has_dir: impl Fn(&[u8]) -> bool,
    ) -> Option<&'static str> {
        if python && unchanged != Some(true) && configures_pytest(path, bytes) {
            return Some("added or changed by the provider: a pytest configuration, read before the tests run");
        }
        if unchanged.is_some() {
            None
        } else if python && shadows_runner(path) {
            Some("added by the provider where it would shadow the test runner or run at interpreter start-up")
        } else if python && self.shadowed_by(path, fixture_has_dir) {
            Some("added by the provider where Python would import it in place of a protected test module or package")
        } else if shadows_makefile(path, |q| self.files.contains(q)) {
            Some("added by the provider where make would read it in place of a protected makefile")
        } else {
            None
        }
    }

    fn has(&self, folder: &[u8], name: &[u8], module: bool) -> bool {
        self.names
            .contains(&(folder.to_vec(), name.to_vec(), module))
    }

    /// Whether the provider's file at `path` would be imported in place of a protected
    /// test module or package. `fixture_has_dir` says whether the fixture itself has a
    /// folder at a path (its own packages are not shadows).
    fn shadowed_by(&self, path: &[u8], fixture_has_dir: impl Fn(&[u8]) -> bool) -> bool {
        let parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        for (i, part) in parts.iter().enumerate() {
            let folder = parts[..i].join(&b'/');
            let stem = part.split(|b| *b == b'.').next().unwrap_or(part);
            if i + 1 < parts.len() {
                // A folder named as a protected module: a package that wins over it.
                let dir = parts[..=i].join(&b'/');
                if self.has(&folder, part, true) && !fixture_has_dir(&dir) {
                    return true;
                }
                continue;
            }
            let any = self.has(&folder, stem, true) || self.has(&folder, stem, false);
            if is_extension(part) && any {
                return true;
            }
            if part.strip_suffix(b".py") == Some(stem) && self.has(&folder, stem, false) {
                return true;
            }
        }
        false
    }
}

/// The names GNU make looks for, in its order: one the provider adds before a protected
/// makefile in the same folder is read instead of it.
const MAKEFILES: [&[u8]; 3] = [b"GNUmakefile", b"makefile", b"Makefile"];

/// Whether `path` is a makefile GNU make would read in place of a protected one beside it.
fn shadows_makefile(path: &[u8], is_protected: impl Fn(&[u8]) -> bool) -> bool {
    let (folder, name) = match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    let Some(at) = MAKEFILES.iter().position(|m| *m == name) else {
        return false;
    };
    MAKEFILES[at + 1..]
        .iter()
        .any(|later| is_protected(&[folder, later].concat()))
}

/// pytest's configuration files, read before any test runs (`addopts = --collect-only`
/// exits 0 having run nothing), each with the section that makes pytest read it (`None`:
/// the file alone does).
const PYTEST_CONFIGS: [(&[u8], Option<&[u8]>); 5] = [
    (b"pytest.ini", None),
    (b".pytest.ini", None),
    (b"pyproject.toml", Some(b"[tool.pytest")),
    (b"tox.ini", Some(b"[pytest]")),
    (b"setup.cfg", Some(b"[tool:pytest]")),
];

/// Whether a file the provider added or changed at `path` configures pytest. `bytes`
/// gives its contents when that decides it (`None`: not a regular file, or too large to
/// read, which counts as configuring it).
fn configures_pytest(path: &[u8], bytes: impl FnOnce() -> Option<Vec<u8>>) -> bool {
    let name = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
    let Some((_, section)) = PYTEST_CONFIGS.iter().find(|(n, _)| *n == name) else {
        return false;
    };
    match (section, bytes()) {
        (None, _) | (Some(_), None) => true,
        (Some(s), Some(b)) => b.windows(s.len()).any(|w| w == *s),
    }
}

/// A regular file's bytes from the store, up to 1 MiB; `None` for anything else.
pub(super) fn small_file_bytes(store: &crate::store::Store, e: &Entry) -> Option<Vec<u8>> {
    let id = e.object.filter(|_| e.kind == Kind::File)?;
    store
        .read_at_most(&id, 1 << 20)
        .ok()
        .flatten()
        .map(|(_, b)| b)
}

/// Whether `path` shadows the test runner or runs code at interpreter start-up.
fn shadows_runner(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').any(|c| {
        RUNNER_SHADOWS.iter().any(|s| c == s.as_bytes())
            || c == b"conftest.py"
            || c.ends_with(b".pth")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadowed(protected: &[&str], path: &str, fixture_dirs: &[&str]) -> bool {
        let p = Protected::new(protected.iter().map(|s| s.as_bytes()));
        p.shadowed_by(path.as_bytes(), |d| {
            fixture_dirs.iter().any(|f| f.as_bytes() == d)
        })
    }

    #[test]
    fn a_package_or_extension_named_as_a_protected_module_shadows_it() {
        let t = &["test_strings.py"];
        assert!(shadowed(t, "test_strings/__init__.py", &[]));
        assert!(shadowed(t, "test_strings/anything", &[]));
        assert!(shadowed(t, "test_strings.so", &[]));
        assert!(shadowed(
            t,
            "test_strings.cpython-311-x86_64-linux-gnu.so",
            &[]
        ));
        assert!(shadowed(t, "test_strings.abi3.so", &[]));
        assert!(!shadowed(t, "strings.py", &[]));
        assert!(!shadowed(t, "test_strings_helper.py", &[]));
        assert!(
            !shadowed(t, "sub/test_strings.so", &[]),
            "another folder is another module"
        );
    }

    #[test]
    fn a_module_or_extension_named_as_a_protected_tests_package_shadows_it() {
        let t = &["tests/test_x.py"];
        assert!(shadowed(t, "tests.py", &["tests"]));
        assert!(shadowed(t, "tests.abi3.so", &["tests"]));
        assert!(shadowed(t, "tests/test_x/__init__.py", &["tests"]));
        assert!(shadowed(
            t,
            "tests/test_x.cpython-311-x86_64-linux-gnu.so",
            &["tests"]
        ));
        assert!(
            !shadowed(t, "tests/helper.py", &["tests"]),
            "the fixture's own package"
        );
        assert!(!shadowed(t, "tests/test_y.py", &["tests"]));
    }

    #[test]
    fn a_makefile_make_reads_first_shadows_a_protected_one() {
        let protected = |p: &[u8]| p == b"Makefile" || p == b"sub/makefile";
        assert!(shadows_makefile(b"GNUmakefile", protected));
        assert!(shadows_makefile(b"makefile", protected));
        assert!(shadows_makefile(b"sub/GNUmakefile", protected));
        assert!(
            !shadows_makefile(b"sub/Makefile", protected),
            "read after sub/makefile"
        );
        assert!(!shadows_makefile(b"other/GNUmakefile", protected));
        assert!(!shadows_makefile(b"GNUmakefile.bak", protected));
    }

    #[test]
    fn pytest_configuration_is_told_by_name_and_section() {
        let with = |b: &'static [u8]| move || Some(b.to_vec());
        assert!(configures_pytest(b"pytest.ini", with(b"")));
        assert!(configures_pytest(b"sub/.pytest.ini", with(b"")));
        assert!(configures_pytest(
            b"pyproject.toml",
            with(b"[tool.pytest.ini_options]\naddopts = \"--co\"\n")
        ));
        assert!(!configures_pytest(
            b"pyproject.toml",
            with(b"[project]\nname = \"x\"\n")
        ));
        assert!(configures_pytest(b"tox.ini", with(b"[pytest]\n")));
        assert!(configures_pytest(b"setup.cfg", with(b"[tool:pytest]\n")));
        assert!(
            configures_pytest(b"setup.cfg", || None),
            "unreadable counts"
        );
        assert!(!configures_pytest(b"strings.py", || None));
    }

    #[test]
    fn runner_and_start_up_shadows_are_named() {
        for p in [
            "unittest.py",
            "unittest/__init__.py",
            "a/conftest.py",
            "x.pth",
            "sitecustomize.py",
        ] {
            assert!(shadows_runner(p.as_bytes()), "{p}");
        }
        assert!(!shadows_runner(b"strings.py"));
    }
}
