//! Stage 2 fixtures: a tiny repository, a Case task and (for the fake lane) a
//! solution. The built-in one is compiled in; `--fixture DIR` reads the same layout:
//!
//! ```text
//! fixture.json              name, task, repo, language, package_manager, test_command,
//!                           and optionally tests, editable, tampering, limits
//! repo/...                  the repository the provider works on
//! task/<task>.task.json     the Case task (id, status, created, repo, ...)
//! task/<task>.md            its description (optional)
//! fake-solution/...         files the fake provider writes to solve it (optional)
//! model-scripts/NAME.json   answers of the scripted model `scripted/NAME` (optional)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const BUILTIN: &str = "r1-string-slugify";

macro_rules! builtin_files {
    ($($p:literal),* $(,)?) => {
        &[$(($p, include_bytes!(concat!("../../fixtures/r1-string-slugify/", $p)) as &[u8])),*]
    };
}

const BUILTIN_FILES: &[(&str, &[u8])] = builtin_files![
    "fixture.json",
    "repo/strings.py",
    "repo/test_strings.py",
    "task/r1-string-slugify.task.json",
    "task/r1-string-slugify.md",
    "fake-solution/strings.py",
    "model-scripts/r1-string-slugify.json",
    "model-scripts/r1-string-slugify-wrong.json",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub task: String,
    pub repo: String,
    pub language: String,
    pub package_manager: String,
    pub test_command: Vec<String>,
    /// The paths (globs, `/`-separated, relative to `repo/`) of the tests and their
    /// harness: the judge always runs the fixture's own copies. Without it, every file
    /// the fixture ships is protected except those `editable` names.
    #[serde(default)]
    pub tests: Option<Vec<String>>,
    /// With no `tests`: the shipped files the provider may change (globs).
    #[serde(default)]
    pub editable: Vec<String>,
    /// What tampering with protected paths does to the verdict: `fail` (the default) or
    /// `ignore` (reported; the judge still uses the fixture's files).
    #[serde(default)]
    pub tampering: Tampering,
    /// Limits on the provider, over the harness's defaults (flags override both).
    #[serde(default)]
    pub limits: LimitsSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tampering {
    #[default]
    Fail,
    Ignore,
}

impl Tampering {
    pub fn as_str(self) -> &'static str {
        match self {
            Tampering::Fail => "fail",
            Tampering::Ignore => "ignore",
        }
    }
}

/// Limits a fixture (or the command line) may set; unset ones keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    /// What the provider may leave in its workspace, home and temp folders together.
    pub folder_bytes: Option<u64>,
    pub folder_entries: Option<u64>,
    pub processes: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// One model answer (the recording proxy stops relaying past it).
    pub model_response_bytes: Option<u64>,
}

/// `/`-separated glob matching: `*` and `?` within one path component, `**` as a whole
/// component for any number of them.
pub(crate) fn glob_matches(pattern: &str, path: &str) -> bool {
    fn component(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => component(&p[1..], s) || (!s.is_empty() && component(p, &s[1..])),
            (Some(b'?'), Some(_)) => component(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => component(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn parts(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => parts(&p[1..], s) || (!s.is_empty() && parts(p, &s[1..])),
            (Some(a), Some(b)) => component(a.as_bytes(), b.as_bytes()) && parts(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    parts(&p, &s)
}

#[derive(Debug, Clone)]
pub struct Fixture {
    pub manifest: Manifest,
    /// Where it came from: `builtin:NAME` or the directory.
    pub origin: String,
    pub repo_files: Vec<(String, Vec<u8>)>,
    pub task_json: Vec<u8>,
    pub task_md: Option<Vec<u8>>,
    pub solution: Vec<(String, Vec<u8>)>,
    /// `model-scripts/NAME.json` as (NAME, bytes), each checked.
    pub model_scripts: Vec<(String, Vec<u8>)>,
}

fn bad(origin: &str, file: &str, why: impl std::fmt::Display) -> Error {
    Error::bad_input(
        format!("fixture {origin}: {file}: {why}"),
        "see docs/stage2.md for the fixture layout (fixture.json, repo/, task/<task>.task.json)",
    )
}

/// A pattern that can only name paths inside the repository.
fn safe_glob(g: &str) -> bool {
    safe_rel(g) && !g.contains('\\')
}

fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Checks a fixture given as (path, bytes) pairs, laid out as the module docs say.
pub fn from_files(origin: String, files: Vec<(String, Vec<u8>)>) -> Result<Fixture> {
    let get = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p == name)
            .map(|(_, b)| b.clone())
    };
    let manifest = manifest(&origin, get("fixture.json"))?;
    let task_file = format!("task/{}.task.json", manifest.task);
    let task_json = get(&task_file).ok_or_else(|| bad(&origin, &task_file, "missing"))?;
    check_task(&origin, &manifest, &task_file, &task_json)?;
    let task_md = get(&format!("task/{}.md", manifest.task));
    let under = |prefix: &str| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .filter_map(|(p, b)| p.strip_prefix(prefix).map(|r| (r.to_string(), b.clone())))
            .collect()
    };
    let repo_files = under("repo/");
    if repo_files.is_empty() {
        return Err(bad(&origin, "repo/", "has no files"));
    }
    let solution = under("fake-solution/");
    if let Some((p, _)) = solution.iter().find(|(p, _)| p.contains('/')) {
        return Err(bad(
            &origin,
            &format!("fake-solution/{p}"),
            "the solution must be flat files",
        ));
    }
    let model_scripts = model_scripts(&origin, under("model-scripts/"))?;
    Ok(Fixture {
        manifest,
        origin,
        repo_files,
        task_json,
        task_md,
        solution,
        model_scripts,
    })
}

fn manifest(origin: &str, bytes: Option<Vec<u8>>) -> Result<Manifest> {
    let bytes = bytes.ok_or_else(|| bad(origin, "fixture.json", "missing"))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(origin, "fixture.json", e))?;
    for (field, v) in [
        ("name", &manifest.name),
        ("task", &manifest.task),
        ("repo", &manifest.repo),
    ] {
        if !plain_name(v) {
            return Err(bad(
                origin,
                "fixture.json",
                format!(
                    "{field} {v:?} must be a plain name: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
                ),
            ));
        }
    }
    if manifest.test_command.is_empty() {
        return Err(bad(origin, "fixture.json", "test_command is empty"));
    }
    let globs = manifest.tests.iter().flatten().chain(&manifest.editable);
    if let Some(g) = globs.into_iter().find(|g| !safe_glob(g)) {
        return Err(bad(
            origin,
            "fixture.json",
            format!("`{g}` is not a relative path pattern inside repo/ (no leading `/`, no `.` or `..`)"),
        ));
    }
    if manifest.tests.as_ref().is_some_and(|t| t.is_empty()) {
        return Err(bad(
            origin,
            "fixture.json",
            "tests is empty: name the test files, or leave it out to protect every shipped file",
        ));
    }
    Ok(manifest)
}

/// The Case task must be the fixture's: its id, `active`, an ISO 8601 `created`, its repo.
fn check_task(origin: &str, manifest: &Manifest, task_file: &str, bytes: &[u8]) -> Result<()> {
    let task: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(origin, task_file, e))?;
    let field = |k: &str| {
        task.get(k).and_then(|v| v.as_str()).ok_or_else(|| {
            bad(
                origin,
                task_file,
                format!("`{k}` is missing or not a string"),
            )
        })
    };
    if field("id")? != manifest.task {
        return Err(bad(
            origin,
            task_file,
            format!("id must be `{}`", manifest.task),
        ));
    }
    if field("status")? != "active" {
        return Err(bad(origin, task_file, "status must be `active`"));
    }
    chrono::DateTime::parse_from_rfc3339(field("created")?)
        .map_err(|e| bad(origin, task_file, format!("created is not ISO 8601: {e}")))?;
    if field("repo")? != manifest.repo {
        return Err(bad(
            origin,
            task_file,
            format!("repo must be `{}` (fixture.json's repo)", manifest.repo),
        ));
    }
    Ok(())
}

/// `model-scripts/NAME.json` as (NAME, bytes), each parsed and checked.
fn model_scripts(origin: &str, files: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (file, bytes) in files {
        let name = file.strip_suffix(".json").filter(|n| plain_name(n));
        let Some(name) = name else {
            return Err(bad(
                origin,
                &format!("model-scripts/{file}"),
                "must be NAME.json with NAME a plain name",
            ));
        };
        crate::model::parse_script(&format!("{origin}: model-scripts/{file}"), &bytes)?;
        out.push((name.to_string(), bytes));
    }
    Ok(out)
}

/// A name that is safe as one path component, in a run folder's name and in a table.
fn plain_name(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Fixture {
    /// Whether `path` (relative to the repository) is one of the fixture's tests or its
    /// harness: the judge runs the fixture's own copy, and a provider that changes,
    /// adds or removes one tampered. Without a `tests` list, every shipped file is,
    /// except those `editable` names. A shipped file the test command names (`sh
    /// ./run-tests.sh`) always is.
    pub(crate) fn is_protected(&self, path: &str) -> bool {
        let m = &self.manifest;
        let named = m
            .test_command
            .iter()
            .any(|a| a.trim_start_matches("./") == path);
        if named && self.repo_files.iter().any(|(p, _)| p == path) {
            return true;
        }
        match &m.tests {
            Some(globs) => globs.iter().any(|g| glob_matches(g, path)),
            None => {
                self.repo_files.iter().any(|(p, _)| p == path)
                    && !m.editable.iter().any(|g| glob_matches(g, path))
            }
        }
    }

    /// The script a `scripted/NAME` model names: `model-scripts/NAME.json`.
    pub(crate) fn script(&self, name: &str) -> Option<&[u8]> {
        self.model_scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

/// Loads the built-in fixture by name, or a fixture directory.
pub fn load(spec: &str) -> Result<Fixture> {
    if spec == BUILTIN {
        let files = BUILTIN_FILES
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        return from_files(format!("builtin:{BUILTIN}"), files);
    }
    let dir = PathBuf::from(spec);
    if !dir.is_dir() {
        return Err(Error::bad_input(
            format!("fixture `{spec}` is neither a built-in fixture nor a directory"),
            format!("use --fixture {BUILTIN} or a directory laid out as docs/stage2.md describes"),
        ));
    }
    let mut files = Vec::new();
    for ent in walkdir::WalkDir::new(&dir).follow_links(false) {
        let ent = ent.map_err(|e| bad(spec, "(walk)", e))?;
        if ent.file_type().is_symlink() {
            return Err(bad(
                spec,
                &ent.path().display().to_string(),
                "symlinks are not allowed in fixtures",
            ));
        }
        if !ent.file_type().is_file() {
            continue;
        }
        let rel = ent
            .path()
            .strip_prefix(&dir)
            .expect("walk stays under its root");
        let rel_s = rel
            .to_str()
            .ok_or_else(|| bad(spec, &rel.display().to_string(), "name is not UTF-8"))?
            .to_string();
        if rel_s.split('/').any(|c| c == ".git") {
            continue;
        }
        let bytes = fs::read(ent.path()).map_err(Error::io("read", ent.path()))?;
        files.push((rel_s, bytes));
    }
    files.sort();
    // Named by its canonical path: always absolute, without `..`, so never mistaken for
    // `builtin:NAME` or for a folder it only passes through.
    let canonical = fs::canonicalize(&dir).map_err(Error::io("resolve", &dir))?;
    from_files(crate::paths::lossy(&canonical), files)
}

/// Writes `files` under `dir`, refusing names that would escape it.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    for (rel, bytes) in files {
        if !safe_rel(rel) {
            return Err(Error::bad_input(
                format!("fixture file name `{rel}` escapes its directory"),
                "fix the fixture",
            ));
        }
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        fs::write(&p, bytes).map_err(Error::io("write", &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_components_and_across_them_with_double_stars() {
        for (p, s, want) in [
            ("test_strings.py", "test_strings.py", true),
            ("test_*.py", "test_strings.py", true),
            ("test_*.py", "tests/test_strings.py", false),
            ("**/test_*.py", "tests/test_strings.py", true),
            ("**/test_*.py", "test_strings.py", true),
            ("tests/**", "tests/a/b.py", true),
            ("tests/**", "src/a.py", false),
            ("?.py", "a.py", true),
            ("?.py", "ab.py", false),
            ("*", "a/b", false),
        ] {
            assert_eq!(glob_matches(p, s), want, "{p} ~ {s}");
        }
    }

    #[test]
    fn the_builtin_fixture_protects_its_tests_and_nothing_else() {
        let f = load(BUILTIN).unwrap();
        assert!(f.is_protected("test_strings.py"));
        assert!(!f.is_protected("strings.py"));
        assert!(!f.is_protected("unittest.py"));
    }
}
