//! `cto-ledger build`: run a build in a clone and record it completely: source
//! before and after, the exact argv, tools and environment, logs, outputs, and the
//! tracked files the build itself modified (old and new contents). `build --check`
//! re-runs a recorded build from a clean work tree of the same commit.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use indicatif::ProgressBar;
use serde::Serialize;

mod check;
mod diff;
mod samepath;

pub(crate) use check::check;

use crate::error::{Error, Result};
use crate::git;
use crate::home::Home;
use crate::id::{BuildId, ObjectMeta};
use crate::ledger::events::*;
use crate::ledger::now;
use crate::paths::{abs, lossy};
use crate::runner;
use crate::source::{new_objects, snapshot, source_body};
use crate::state::{BuildStatus, ChangeStatus};
use crate::store::tree::{self, ObjKind};

/// Environment variables recorded (when set) because they change what a build produces.
const ENV_THAT_MATTERS: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "SOURCE_DATE_EPOCH",
    "CC",
    "CXX",
    "CFLAGS",
    "CXXFLAGS",
    "LDFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "NODE_ENV",
    "NODE_OPTIONS",
    "BUN_INSTALL",
    "GOFLAGS",
    "GOOS",
    "GOARCH",
    "CGO_ENABLED",
    "PYTHONPATH",
    "JAVA_HOME",
];
/// Toolchains whose versions are recorded whenever they are on PATH.
const FOREVER: Duration = Duration::from_secs(60 * 60 * 24 * 365);

pub(crate) struct BuildArgs {
    pub name: Option<String>,
    pub source: Option<PathBuf>,
    pub outputs: Vec<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub tools: Vec<String>,
    pub env: Vec<String>,
    pub argv: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct BuildOut {
    pub build: BuildRec,
    /// `build --check`: where each differing output differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<serde_json::Value>,
    /// Tracked files that differed from the commit before the build ran (recorded with
    /// the source; `admit` refuses bytes built from them unless the build explains them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dirty_before: Vec<String>,
}

/// `<tool> --version`, first line, bounded to 10 s.
fn tool_version(path: &Path) -> Option<String> {
    let mut out = tempfile::tempfile().ok()?;
    let mut cmd = Command::new(path);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(out.try_clone().ok()?)
        .stderr(Stdio::null());
    let o = runner::run_bounded(cmd, Duration::from_secs(10), &AtomicBool::new(false)).ok()?;
    if o.code != Some(0) {
        return None;
    }
    let mut text = String::new();
    std::io::Seek::rewind(&mut out).ok()?;
    out.read_to_string(&mut text).ok()?;
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// A tool's name: the file name of how it was given.
fn base_name(n: &str) -> String {
    Path::new(n)
        .file_name()
        .map_or(n.to_string(), |f| f.to_string_lossy().into_owned())
}

/// The tools a build used: its command's own executable and those named with `--tool`
/// (given as name and where to find it), each resolved where the command runs (or on
/// PATH), with the SHA-256 of the executable and, for named tools, their `--version` (the
/// command itself is never run twice: `./build.sh --version` would build). Nothing is
/// recorded by guesswork (a Bun build is not said to use cargo).
fn tools<'a>(
    ledger: &mut crate::ledger::Ledger,
    argv0: &str,
    named: impl Iterator<Item = (String, &'a str)>,
    cwd: &Path,
) -> Result<Vec<ToolRec>> {
    let mut out: Vec<ToolRec> = Vec::new();
    let all =
        std::iter::once((base_name(argv0), argv0, false)).chain(named.map(|(n, f)| (n, f, true)));
    for (name, find, is_named) in all {
        if out.iter().any(|t| t.name == name) {
            continue;
        }
        let path = crate::paths::which(find, cwd).map(|p| fs::canonicalize(&p).unwrap_or(p));
        let version = path.as_deref().filter(|_| is_named).and_then(tool_version);
        // A toolchain is often 100 MB: hashed once, then vouched for by its stat. A tool
        // that cannot be read is recorded without a digest; a ledger that cannot be read
        // fails the build rather than drop the digest without a word.
        let sha256 = match path.as_deref().map(|p| ledger.file_digest(p, true)) {
            Some(Ok(m)) => Some(m.sha256),
            Some(Err(e @ Error::Sql { .. })) => return Err(e),
            Some(Err(_)) | None => None,
        };
        out.push(ToolRec {
            name,
            path: path.map(|p| lossy(&p)),
            version,
            sha256,
        });
    }
    Ok(out)
}

fn env_that_matters(extra: &[String]) -> Vec<EnvRec> {
    let mut names: Vec<&str> = ENV_THAT_MATTERS.to_vec();
    names.extend(extra.iter().map(String::as_str));
    let mut out: Vec<EnvRec> = Vec::new();
    for n in names {
        if let (Some(v), false) = (crate::env::passed(n), out.iter().any(|e| e.name == n)) {
            out.push(EnvRec {
                name: n.to_string(),
                value: v,
            });
        }
    }
    out
}

/// Copies a child's pipe to our stderr (so `--json` stdout stays one document) and to a log file.
fn tee(mut from: impl Read + Send + 'static, mut log: fs::File) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        let mut term = std::io::stderr();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = term.write_all(&buf[..n]);
            let _ = log.write_all(&buf[..n]);
        }
        let _ = log.flush();
    })
}

/// What the command did: exit status and logs.
pub(super) struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    interrupted: bool,
    spawn_error: Option<String>,
    stdout: ObjectMeta,
    stderr: ObjectMeta,
    started: String,
    finished: String,
}

/// Runs `argv` in `cwd`; with `confine`, `cwd` is a path as the command sees it with
/// the work tree mounted at the original source path.
fn run_command(
    home: &Home,
    argv: &[String],
    cwd: &Path,
    confine: Option<&samepath::SamePath>,
) -> Result<Ran> {
    let logs = tempfile::Builder::new()
        .prefix("build-logs-")
        .tempdir_in(&home.dir)
        .map_err(Error::io("create log folder in", &home.dir))?;
    let (out_p, err_p) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let out_f = fs::File::create(&out_p).map_err(Error::io("create", &out_p))?;
    let err_f = fs::File::create(&err_p).map_err(Error::io("create", &err_p))?;
    let interrupts = runner::Interrupts::catch();
    let mut cmd = Command::new(&argv[0]);
    match confine {
        Some(c) => c
            .apply(&mut cmd, cwd)
            .map_err(Error::io("prepare the rebuild in", cwd))?,
        None => {
            cmd.current_dir(cwd);
        }
    }
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = now();
    let mut threads = Vec::new();
    let result = runner::run_bounded_with(cmd, FOREVER, &interrupts.flag, |child| {
        if let Some(o) = child.stdout.take() {
            threads.push(tee(o, out_f));
        }
        if let Some(e) = child.stderr.take() {
            threads.push(tee(e, err_f));
        }
    });
    for t in threads {
        let _ = t.join();
    }
    drop(interrupts);
    let finished = now();
    let (code, signal, interrupted, spawn_error) = match result {
        Ok(o) => (o.code, o.signal, o.interrupted, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            None,
            None,
            false,
            Some(format!("command not found: {}", argv[0])),
        ),
        Err(e) => (
            None,
            None,
            false,
            Some(format!("cannot run {}: {e}", argv[0])),
        ),
    };
    if let Some(msg) = &spawn_error {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&err_p)
            .map_err(Error::io("open", &err_p))?;
        let _ = writeln!(f, "cto-ledger: {msg}");
    }
    let stdout = home.store.put_file(&out_p)?;
    let stderr = home.store.put_file(&err_p)?;
    Ok(Ran {
        code,
        signal,
        interrupted,
        spawn_error,
        stdout,
        stderr,
        started,
        finished,
    })
}

type Changes = BTreeMap<String, ChangeRec>;

fn changes_of(src: &SourceRec) -> Changes {
    src.changes
        .iter()
        .map(|c| (c.path.clone(), c.clone()))
        .collect()
}

/// Tracked files whose state the build changed, with contents before and after.
fn modified_by_build(
    home: &Home,
    before: &SourceRec,
    after: &SourceRec,
) -> Result<Vec<ModifiedRec>> {
    let (b, a) = (changes_of(before), changes_of(after));
    let mut out = Vec::new();
    for (path, ch) in a.iter().filter(|(_, c)| c.is_tracked_change()) {
        if b.get(path)
            .is_some_and(|prev| prev.status == ch.status && prev.object == ch.object)
        {
            continue; // already so before the build
        }
        let old =
            tree::lookup(&home.store, &before.snapshot, path.as_bytes())?.and_then(|e| e.object);
        out.push(ModifiedRec {
            path: path.clone(),
            status: ch.status,
            old_object: old,
            new_object: ch.object,
        });
    }
    for (path, ch) in b
        .iter()
        .filter(|(p, c)| c.is_tracked_change() && !a.contains_key(*p))
    {
        let new =
            tree::lookup(&home.store, &after.snapshot, path.as_bytes())?.and_then(|e| e.object);
        out.push(ModifiedRec {
            path: path.clone(),
            status: ChangeStatus::Restored,
            old_object: ch.object,
            new_object: new,
        });
    }
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(p).and_then(|m| m.modified()).ok()
}

/// The clone a build runs in: `--source`, else the clone containing the current directory.
fn source_dir(a: &BuildArgs) -> Result<PathBuf> {
    if a.argv.is_empty() {
        return Err(Error::bad_input("no build command was given", "put the command after `--`, e.g. cto-ledger build --output dist/ca -- bun run build:binary"));
    }
    if a.outputs.is_empty() {
        return Err(Error::bad_input(
            "no --output was declared",
            "name every file or directory the build produces with --output PATH",
        ));
    }
    match &a.source {
        Some(s) => Ok(s.clone()),
        None => git::discover(Path::new(".")).ok_or_else(|| {
            Error::bad_input(
                "the current directory is not inside a git clone",
                "run the build from its clone, or pass --source DIR",
            )
        }),
    }
}

/// Why a build that ran did not succeed, if it did not.
fn failure(ran: &Ran) -> Option<String> {
    if let Some(e) = &ran.spawn_error {
        return Some(e.clone());
    }
    if ran.interrupted {
        return Some(
            "interrupted (SIGINT/SIGTERM/SIGHUP); the build's process group was killed".into(),
        );
    }
    match (ran.code, ran.signal) {
        (Some(0), _) => None,
        (Some(c), _) => Some(format!("the command exited with status {c}")),
        (None, Some(s)) => Some(format!("the command was killed by signal {s}")),
        _ => Some("the command failed".into()),
    }
}

/// Ingests the declared outputs, each of which the build must have written.
fn ingest_outputs(
    home: &Home,
    outputs: &[(PathBuf, Option<SystemTime>)],
    workdir: &Path,
    objects: &mut Vec<(ObjectMeta, ObjKind)>,
    progress: &ProgressBar,
) -> Result<std::result::Result<Vec<OutputRec>, String>> {
    let mut outs = Vec::new();
    for (p, was) in outputs {
        if fs::symlink_metadata(p).is_err() {
            return Ok(Err(format!(
                "declared output {} was not produced",
                p.display()
            )));
        }
        if was.is_some() && mtime(p) == *was {
            return Ok(Err(format!(
                "declared output {} was not written by this build (it is older than the build)",
                p.display()
            )));
        }
        // Recorded where it is: `dist/../../x` is outside the clone, and says so.
        let at = crate::paths::resolve(p);
        // A rebuild often writes the bytes it wrote last time: then nothing is copied.
        let like = home.ledger.last_output_at(&lossy(&at))?;
        let ing = tree::ingest_path_like(&home.store, p, progress, like.as_ref())?;
        let p = &at;
        let root = fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
        let rel = p.strip_prefix(&root).ok().map(Path::to_path_buf);
        outs.push(OutputRec {
            path: lossy(p),
            object: ing.root.id,
            sha256: ing.root.sha256,
            size: ing.root.size,
            kind: ing.root_kind,
            inside_source: rel.is_some(),
            ignored: rel.as_deref().is_some_and(|r| git::is_ignored(&root, r)),
        });
        objects.extend(ing.objects);
    }
    Ok(Ok(outs))
}

pub(crate) fn build(home: &mut Home, a: &BuildArgs, progress: &ProgressBar) -> Result<BuildOut> {
    let source_dir = source_dir(a)?;
    let before = snapshot(&home.store, &source_dir, progress)?;
    let dirty_before: Vec<String> = before
        .rec
        .changes
        .iter()
        .filter(|c| c.status.is_tracked())
        .map(|c| c.path.clone())
        .collect();
    if !dirty_before.is_empty() {
        // Before the command runs, on a terminal; the result says it again.
        progress.println(format!(
            "warning: the source tree is dirty before the build: {}",
            crate::commands::text::shown(&dirty_before.join(", "))
        ));
    }
    let workdir = before.state.workdir.clone();
    let cwd = a.cwd.as_deref().map(abs).unwrap_or_else(|| workdir.clone());
    if !cwd.is_dir() {
        return Err(Error::bad_input(
            format!("--cwd {} is not a directory", cwd.display()),
            "give the directory to run the build in",
        ));
    }
    let outputs: Vec<(PathBuf, Option<SystemTime>)> =
        a.outputs.iter().map(|p| (abs(p), mtime(&abs(p)))).collect();
    let named = a.tools.iter().map(|n| (base_name(n), n.as_str()));
    let tools = tools(&mut home.ledger, &a.argv[0], named, &cwd)?;
    let env = env_that_matters(&a.env);

    let ran = run_command(home, &a.argv, &cwd, None)?;
    let after = snapshot(&home.store, &workdir, progress)?;
    let modified = modified_by_build(home, &before.rec, &after.rec)?;
    let before_changes = changes_of(&before.rec);
    let created: Vec<String> = after
        .rec
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Untracked && !before_changes.contains_key(&c.path))
        .map(|c| c.path.clone())
        .collect();
    let mut objects: Vec<(ObjectMeta, ObjKind)> = before.objects;
    objects.extend(after.objects);
    objects.push((ran.stdout, ObjKind::Blob));
    objects.push((ran.stderr, ObjKind::Blob));
    let mut reason = failure(&ran);
    let mut outs = Vec::new();
    if reason.is_none() {
        match ingest_outputs(home, &outputs, &workdir, &mut objects, progress)? {
            Ok(o) => outs = o,
            Err(why) => reason = Some(why),
        }
    }
    let status = match (&reason, ran.interrupted) {
        (None, _) => BuildStatus::Succeeded,
        (Some(_), true) => BuildStatus::Interrupted,
        (Some(_), false) => BuildStatus::Failed,
    };
    if status != BuildStatus::Succeeded {
        outs.clear(); // a failed build has nothing that could be admitted
    }
    let rec = BuildRec {
        id: BuildId::new(),
        name: a.name.clone(),
        status,
        reason,
        source: before.rec.id.clone(),
        source_after: Some(after.rec.id.clone()),
        commit: before.rec.commit.clone(),
        url: before.rec.url.clone(),
        argv: a.argv.clone(),
        cwd: lossy(&cwd),
        started: ran.started,
        finished: ran.finished,
        exit_code: ran.code,
        signal: ran.signal,
        tools,
        env,
        stdout: Some(ran.stdout.id),
        stderr: Some(ran.stderr.id),
        outputs: outs,
        modified,
        created,
        check: None,
        objects: Vec::new(),
    };
    let rec = commit_build(home, rec, &[before.rec, after.rec], objects)?;
    Ok(BuildOut {
        build: rec,
        differences: Vec::new(),
        dirty_before,
    })
}

/// Commits the sources (if new) and the build in one transaction. New objects ride
/// on the first event, so they are projected before the rows that reference them.
pub(crate) fn commit_build(
    home: &mut Home,
    mut rec: BuildRec,
    sources: &[SourceRec],
    objects: Vec<(ObjectMeta, ObjKind)>,
) -> Result<BuildRec> {
    let mut bodies = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in sources.iter().filter(|s| seen.insert(s.id.clone())) {
        if let Some(b) = source_body(home, s.clone(), &[])? {
            bodies.push(b);
        }
    }
    let objs = new_objects(home, &objects)?;
    match bodies.first_mut() {
        Some(Body::Source(first)) => first.objects = objs,
        _ => rec.objects = objs,
    }
    bodies.push(Body::Build(rec.clone()));
    home.commit(bodies)?;
    Ok(rec)
}
