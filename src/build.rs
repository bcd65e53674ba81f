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

use crate::error::{Error, Result};
use crate::git;
use crate::home::Home;
use crate::id::{ObjectId, ObjectMeta};
use crate::ledger::events::*;
use crate::ledger::now;
use crate::ledger::query::Node;
use crate::ops::{self, abs, lossy};
use crate::runner;
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
const DETECTED_TOOLS: &[&str] = &["node", "bun", "cargo", "rustc", "go", "python3"];
const FOREVER: Duration = Duration::from_secs(60 * 60 * 24 * 365);

pub struct BuildArgs {
    pub name: Option<String>,
    pub source: Option<PathBuf>,
    pub outputs: Vec<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub tools: Vec<String>,
    pub env: Vec<String>,
    pub argv: Vec<String>,
}

#[derive(Serialize)]
pub struct BuildOut {
    pub build: BuildRec,
}

fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
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

fn tools(extra: &[String]) -> Vec<ToolRec> {
    let mut names: Vec<&str> = DETECTED_TOOLS.to_vec();
    names.extend(extra.iter().map(String::as_str));
    names.dedup();
    let mut out: Vec<ToolRec> = Vec::new();
    for n in names {
        if out.iter().any(|t| t.name == n) {
            continue;
        }
        let path = which(n);
        let explicit = extra.iter().any(|e| e == n);
        if path.is_none() && !explicit {
            continue;
        }
        let version = path.as_deref().and_then(tool_version);
        out.push(ToolRec {
            name: n.to_string(),
            path: path.map(|p| lossy(&p)),
            version,
        });
    }
    out
}

fn env_that_matters(extra: &[String]) -> Vec<EnvRec> {
    let mut names: Vec<&str> = ENV_THAT_MATTERS.to_vec();
    names.extend(extra.iter().map(String::as_str));
    let mut out: Vec<EnvRec> = Vec::new();
    for n in names {
        if let (Ok(v), false) = (std::env::var(n), out.iter().any(|e| e.name == n)) {
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
struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    interrupted: bool,
    spawn_error: Option<String>,
    stdout: ObjectMeta,
    stderr: ObjectMeta,
    started: String,
    finished: String,
}

fn run_command(home: &Home, argv: &[String], cwd: &Path) -> Result<Ran> {
    let logs = tempfile::Builder::new()
        .prefix("build-logs-")
        .tempdir_in(&home.dir)
        .map_err(Error::io("create log folder in", &home.dir))?;
    let (out_p, err_p) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let out_f = fs::File::create(&out_p).map_err(Error::io("create", &out_p))?;
    let err_f = fs::File::create(&err_p).map_err(Error::io("create", &err_p))?;
    let interrupts = runner::Interrupts::catch();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
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
            status: ch.status.clone(),
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
            status: "restored".into(),
            old_object: ch.object,
            new_object: new,
        });
    }
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(p).and_then(|m| m.modified()).ok()
}

pub fn build(home: &mut Home, a: &BuildArgs, progress: &ProgressBar) -> Result<BuildOut> {
    if a.argv.is_empty() {
        return Err(Error::bad_input("no build command was given", "put the command after `--`, e.g. cto-ledger build --output dist/ca -- bun run build:binary"));
    }
    if a.outputs.is_empty() {
        return Err(Error::bad_input(
            "no --output was declared",
            "name every file or directory the build produces with --output PATH",
        ));
    }
    let source_dir = match &a.source {
        Some(s) => s.clone(),
        None => git::discover(Path::new(".")).ok_or_else(|| {
            Error::bad_input(
                "the current directory is not inside a git clone",
                "run the build from its clone, or pass --source DIR",
            )
        })?,
    };
    let (before, before_objs, st) = ops::snapshot_source(&home.store, &source_dir, progress)?;
    let cwd = match &a.cwd {
        Some(c) => abs(c),
        None => st.workdir.clone(),
    };
    if !cwd.is_dir() {
        return Err(Error::bad_input(
            format!("--cwd {} is not a directory", cwd.display()),
            "give the directory to run the build in",
        ));
    }
    let outputs: Vec<PathBuf> = a.outputs.iter().map(|p| abs(p)).collect();
    let before_mtimes: Vec<Option<SystemTime>> = outputs.iter().map(|p| mtime(p)).collect();
    let tools = tools(&a.tools);
    let env = env_that_matters(&a.env);

    let ran = run_command(home, &a.argv, &cwd)?;
    let (after, after_objs, _) = ops::snapshot_source(&home.store, &st.workdir, progress)?;
    let modified = modified_by_build(home, &before, &after)?;
    let before_changes = changes_of(&before);
    let created: Vec<String> = after
        .changes
        .iter()
        .filter(|c| c.status == "untracked" && !before_changes.contains_key(&c.path))
        .map(|c| c.path.clone())
        .collect();

    let mut reason = ran.spawn_error.clone();
    if reason.is_none() && ran.interrupted {
        reason = Some(
            "interrupted (SIGINT/SIGTERM/SIGHUP); the build's process group was killed".into(),
        );
    }
    if reason.is_none() && ran.code != Some(0) {
        reason = Some(match (ran.code, ran.signal) {
            (Some(c), _) => format!("the command exited with status {c}"),
            (None, Some(s)) => format!("the command was killed by signal {s}"),
            _ => "the command failed".into(),
        });
    }
    let mut objects: Vec<(ObjectMeta, ObjKind)> = before_objs;
    objects.extend(after_objs);
    objects.push((ran.stdout, ObjKind::Blob));
    objects.push((ran.stderr, ObjKind::Blob));
    let mut outs = Vec::new();
    if reason.is_none() {
        for (p, was) in outputs.iter().zip(&before_mtimes) {
            if fs::symlink_metadata(p).is_err() {
                reason = Some(format!("declared output {} was not produced", p.display()));
                break;
            }
            if was.is_some() && mtime(p) == *was {
                reason = Some(format!(
                    "declared output {} was not written by this build (it is older than the build)",
                    p.display()
                ));
                break;
            }
            let ing = tree::ingest_path(&home.store, p, progress)?;
            let rel = p.strip_prefix(&st.workdir).ok().map(Path::to_path_buf);
            outs.push(OutputRec {
                path: lossy(p),
                object: ing.root.id,
                sha256: ing.root.sha256,
                size: ing.root.size,
                kind: ing.root_kind,
                inside_source: rel.is_some(),
                ignored: rel
                    .as_deref()
                    .is_some_and(|r| git::is_ignored(&st.workdir, r)),
            });
            objects.extend(ing.objects);
        }
    }
    let status = match (&reason, ran.interrupted) {
        (None, _) => "succeeded",
        (Some(_), true) => "interrupted",
        (Some(_), false) => "failed",
    };
    if status != "succeeded" {
        outs.clear(); // a failed build has nothing that could be admitted
    }
    let rec = BuildRec {
        id: new_id("bld"),
        name: a.name.clone(),
        status: status.into(),
        reason,
        source: before.id.clone(),
        source_after: Some(after.id.clone()),
        commit: before.commit.clone(),
        url: before.url.clone(),
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
    let rec = commit_build(home, rec, &[before, after], objects)?;
    Ok(BuildOut { build: rec })
}

/// Commits the sources (if new) and the build in one transaction. New objects ride
/// on the first event, so they are projected before the rows that reference them.
fn commit_build(
    home: &mut Home,
    mut rec: BuildRec,
    sources: &[SourceRec],
    objects: Vec<(ObjectMeta, ObjKind)>,
) -> Result<BuildRec> {
    let mut bodies = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in sources.iter().filter(|s| seen.insert(s.id.clone())) {
        if let Some(b) = ops::source_body(home, s.clone(), &[])? {
            bodies.push(b);
        }
    }
    let objs = ops::new_objects(home, &objects)?;
    match bodies.first_mut() {
        Some(Body::Source(first)) => first.objects = objs,
        _ => rec.objects = objs,
    }
    bodies.push(Body::Build(rec.clone()));
    home.commit(bodies)?;
    Ok(rec)
}

/// The build a REF names: a build id, or the newest succeeded build with that output.
fn find_build(home: &Home, r: &str) -> Result<serde_json::Value> {
    let id = match home.resolve(r)? {
        Node::Build(id) => id,
        Node::Object(obj) => home
            .ledger
            .row(
                "SELECT b.id FROM builds b JOIN build_outputs o ON o.build_id = b.id
                 WHERE o.object = ?1 AND b.status = 'succeeded' ORDER BY b.check_of IS NOT NULL, b.seq DESC LIMIT 1",
                &[&obj.to_string()],
            )?
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .ok_or_else(|| Error::NotFound { what: "build output", input: r.to_string(), hint: Some("give a build id (bld_...) or the digest of a recorded build output".into()) })?,
        other => return Err(Error::bad_input(format!("{r} names {}, not a build", other.label()), "give a build id (bld_...) or an output digest")),
    };
    home.ledger.row("SELECT b.*, s.path AS source_path FROM builds b JOIN sources s ON s.id = b.source_id WHERE b.id = ?1", &[&id])?.ok_or_else(|| Error::NotFound { what: "build", input: r.to_string(), hint: None })
}

pub fn check(home: &mut Home, r: &str, progress: &ProgressBar) -> Result<BuildOut> {
    let orig = find_build(home, r)?;
    let orig_id = orig["id"].as_str().unwrap_or_default().to_string();
    if orig["status"] != "succeeded" {
        return Err(Error::bad_input(
            format!("build {orig_id} did not succeed, so there is nothing to reproduce"),
            "check a succeeded build",
        ));
    }
    let argv: Vec<String> =
        serde_json::from_str(orig["argv"].as_str().unwrap_or("[]")).unwrap_or_default();
    let commit = orig["commit_id"].as_str().unwrap_or_default().to_string();
    let src_path = PathBuf::from(orig["source_path"].as_str().unwrap_or_default());
    let cwd_rel = Path::new(orig["cwd"].as_str().unwrap_or_default())
        .strip_prefix(&src_path)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let outputs = home.ledger.rows(
        "SELECT path, object, inside_source FROM build_outputs WHERE build_id = ?1 ORDER BY path",
        &[&orig_id],
    )?;

    let scratch = tempfile::Builder::new()
        .prefix("build-check-")
        .tempdir_in(&home.dir)
        .map_err(Error::io("create scratch folder in", &home.dir))?;
    let work = scratch.path().join("src");
    git::checkout_clean(&src_path, &commit, &work)?;
    let work = work.canonicalize().map_err(Error::io("resolve", &work))?;
    let (before, before_objs, _) = ops::snapshot_source(&home.store, &work, progress)?;
    let cwd = work.join(&cwd_rel);
    let ran = run_command(home, &argv, &cwd)?;
    let mut objects = before_objs;
    objects.push((ran.stdout, ObjKind::Blob));
    objects.push((ran.stderr, ObjKind::Blob));
    let ok = ran.code == Some(0) && ran.spawn_error.is_none() && !ran.interrupted;
    let mut cmp = Vec::new();
    let mut outs = Vec::new();
    for o in &outputs {
        let path = PathBuf::from(o["path"].as_str().unwrap_or_default());
        let original = o["object"].as_str().and_then(|s| ObjectId::parse(s).ok());
        let Ok(rel) = path.strip_prefix(&src_path) else {
            cmp.push(CheckOutputRec {
                path: lossy(&path),
                original,
                rebuilt: None,
                result: "not_checked".into(),
            });
            continue;
        };
        let rebuilt_path = work.join(rel);
        if !ok || fs::symlink_metadata(&rebuilt_path).is_err() {
            cmp.push(CheckOutputRec {
                path: lossy(rel),
                original,
                rebuilt: None,
                result: "missing".into(),
            });
            continue;
        }
        let ing = tree::ingest_path(&home.store, &rebuilt_path, progress)?;
        let same = Some(ing.root.id) == original;
        cmp.push(CheckOutputRec {
            path: lossy(rel),
            original,
            rebuilt: Some(ing.root.id),
            result: if same { "same" } else { "differs" }.into(),
        });
        outs.push(OutputRec {
            path: lossy(&rebuilt_path),
            object: ing.root.id,
            sha256: ing.root.sha256,
            size: ing.root.size,
            kind: ing.root_kind,
            inside_source: true,
            ignored: git::is_ignored(&work, rel),
        });
        objects.extend(ing.objects);
    }
    let checked = cmp.iter().filter(|c| c.result != "not_checked").count();
    let result = if !ok {
        "failed"
    } else if checked > 0
        && cmp
            .iter()
            .all(|c| c.result == "same" || c.result == "not_checked")
    {
        "reproduces"
    } else {
        "diverges"
    };
    let differing: Vec<String> = cmp
        .iter()
        .filter(|c| c.result == "differs" || c.result == "missing")
        .map(|c| c.path.clone())
        .collect();
    let reason = match result {
        "failed" => Some(
            ran.spawn_error
                .clone()
                .unwrap_or_else(|| format!("the rebuild exited with {:?}", ran.code)),
        ),
        "diverges" if checked == 0 => {
            Some("no output lies inside the source tree, so none could be compared".into())
        }
        "diverges" => Some(format!("outputs differ: {}", differing.join(", "))),
        _ => None,
    };
    let rec = BuildRec {
        id: new_id("bld"),
        name: orig["name"].as_str().map(str::to_string),
        status: if ok {
            "succeeded"
        } else if ran.interrupted {
            "interrupted"
        } else {
            "failed"
        }
        .into(),
        reason,
        source: before.id.clone(),
        source_after: None,
        commit: commit.clone(),
        url: before
            .url
            .clone()
            .or_else(|| orig["url"].as_str().map(str::to_string)),
        argv,
        cwd: lossy(&cwd),
        started: ran.started,
        finished: ran.finished,
        exit_code: ran.code,
        signal: ran.signal,
        tools: tools(&[]),
        env: env_that_matters(&[]),
        stdout: Some(ran.stdout.id),
        stderr: Some(ran.stderr.id),
        outputs: if ok { outs } else { Vec::new() },
        modified: Vec::new(),
        created: Vec::new(),
        check: Some(CheckRec {
            of: orig_id,
            result: result.into(),
            outputs: cmp,
        }),
        objects: Vec::new(),
    };
    let rec = commit_build(home, rec, &[before], objects)?;
    drop(scratch);
    Ok(BuildOut { build: rec })
}
