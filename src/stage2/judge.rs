//! The judge: the fixture's tests decide the verdict, never the provider's exit code
//! (the real `ca` exits 0 when its pipeline failed), and never tests the provider could
//! reach. Once the provider is gone its workspace is stored as a tree; the tree the
//! tests run in is composed in the store from the fixture's own files for every
//! protected path and the provider's files for the rest (bytecode, special files and
//! files that would shadow the test runner left out); it is written to a folder the
//! provider never had and the tests run there, sandboxed, read-only but for a temp
//! folder, with the interpreter isolated from anything the provider wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{shadow, Run};
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta};
use crate::report::{Change, Dropped, Judge, Tamper, Tests};
use crate::sandbox::{Net, SandboxReport, Unavailable};
use crate::state::{ChangeStatus, RunStatus, TestResult, Verdict};
use crate::store::tree::flat::{self, Flat};
use crate::store::tree::{self, Entry, Kind, ObjKind};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Where the judged tree is written and the tests' scratch folder, in the run folder.
pub(super) const JUDGED: &str = "judge/tree";
pub(super) const JUDGE_TMP: &str = "judge/tmp";
/// What the judge composed: the tree the tests run in and the protected tests in it.
struct Composed {
    judged: ObjectMeta,
    tests: ObjectMeta,
    protected: Vec<String>,
    tampered: Vec<Tamper>,
    dropped: Vec<Dropped>,
    trees: Vec<(ObjectMeta, ObjKind)>,
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn is_harness_folder(path: &[u8]) -> bool {
    let top = path.split(|b| *b == b'/').next().unwrap_or_default();
    top == b".git" || top == b".case"
}

/// Same content, kind and mode: what a protected path must still be.
fn same_leaf(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind && a.object == b.object && a.executable == b.executable && a.target == b.target
}

/// What changed between the workspace as prepared and as the provider left it, from
/// the two trees in the store (never from the workspace's git, whose settings the
/// provider can write). `.git` counts as one entry.
pub(super) fn changes(
    store: &crate::store::Store,
    before: &ObjectId,
    after: &ObjectId,
) -> Result<Vec<Change>> {
    let (b, a) = (flat::flatten(store, before)?, flat::flatten(store, after)?);
    let git = |f: &Flat| -> Vec<(Kind, Option<ObjectId>)> {
        f.iter()
            .filter(|(p, _)| p.starts_with(b".git/") || p.as_slice() == b".git")
            .map(|(_, e)| (e.kind, e.object))
            .collect()
    };
    let mut out = Vec::new();
    if git(&b) != git(&a) {
        out.push(Change {
            path: ".git".into(),
            status: ChangeStatus::Modified.to_string(),
        });
    }
    let outside = |p: &&Vec<u8>| !(p.starts_with(b".git/") || p.as_slice() == b".git");
    for p in b
        .keys()
        .chain(a.keys())
        .filter(outside)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let status = match (b.get(p), a.get(p)) {
            (Some(x), Some(y)) if same_leaf(x, y) => continue,
            (Some(x), Some(y)) if x.kind != y.kind => ChangeStatus::Typechange,
            (Some(_), Some(_)) => ChangeStatus::Modified,
            (Some(_), None) => ChangeStatus::Deleted,
            (None, _) => ChangeStatus::Added,
        };
        out.push(Change {
            path: text(p),
            status: status.to_string(),
        });
    }
    Ok(out)
}

/// The Python interpreter the test command starts, if it starts one directly.
/// How a test command's interpreter is resolved: its name, run with this environment
/// from this folder.
pub(super) struct Resolve {
    argv0: String,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

/// A Python named without a path (`python3`): what PATH, and any shim on it, resolves.
pub(super) fn bare_python(argv0: &str) -> bool {
    is_python(argv0) && !argv0.contains('/')
}

fn is_python(argv0: &str) -> bool {
    let name = argv0.rsplit('/').next().unwrap_or(argv0);
    let rest = name.strip_prefix("python").unwrap_or("-");
    rest.is_empty() || rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Run<'_> {
    /// The tests' tree, composed from the fixture's tree `fixture` and the provider's
    /// workspace tree `workspace`.
    fn compose(&self, fixture: &ObjectId, workspace: &ObjectId) -> Result<Composed> {
        let store = &self.home.store;
        let (f, w) = (
            flat::flatten(store, fixture)?,
            flat::flatten(store, workspace)?,
        );
        let python = self.fixture.manifest.language == "python"
            || is_python(&self.fixture.manifest.test_command[0]);
        let mut judged = Flat::new();
        let (mut tampered, mut dropped) = (Vec::new(), Vec::new());
        let protected = shadow::Protected::new(
            f.keys()
                .filter(|p| self.fixture.is_protected(&text(p)))
                .map(Vec::as_slice),
        );
        let fixture_has_dir = |d: &[u8]| {
            let mut prefix = d.to_vec();
            prefix.push(b'/');
            f.range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
        };
        let drop = |dropped: &mut Vec<Dropped>, p: &[u8], why: &str| {
            dropped.push(Dropped {
                path: text(p),
                why: why.into(),
            })
        };
        for (p, e) in &w {
            let path = text(p);
            if is_harness_folder(p) {
                continue;
            }
            if shadow::is_bytecode(p) {
                drop(
                    &mut dropped,
                    p,
                    "bytecode cache: never carried into the judged tree",
                );
            } else if e.kind.is_special() {
                drop(&mut dropped, p, "special file (FIFO, socket or device)");
            } else if self.fixture.is_protected(&path) {
                let what = match f.get(p) {
                    Some(orig) if same_leaf(orig, e) => continue,
                    Some(_) => "changed",
                    None => "added",
                };
                tampered.push(Tamper {
                    path,
                    what: format!("protected test path {what} by the provider"),
                });
            } else if let Some(what) = protected.why_tampering(
                p,
                || shadow::small_file_bytes(store, e),
                f.get(p).map(|orig| same_leaf(orig, e)),
                python,
                fixture_has_dir,
            ) {
                tampered.push(Tamper {
                    path,
                    what: what.into(),
                });
            } else {
                judged.insert(p.clone(), e.clone());
            }
        }
        let mut tests = Flat::new();
        for (p, e) in &f {
            if !self.fixture.is_protected(&text(p)) {
                continue;
            }
            if !w.contains_key(p) {
                tampered.push(Tamper {
                    path: text(p),
                    what: "protected test path removed by the provider".into(),
                });
            }
            judged.insert(p.clone(), e.clone());
            tests.insert(p.clone(), e.clone());
        }
        tampered.sort_by(|a, b| a.path.cmp(&b.path));
        let (judged_root, mut trees) = flat::build(store, &judged)?;
        let (tests_root, more) = flat::build(store, &tests)?;
        trees.extend(more);
        Ok(Composed {
            judged: judged_root,
            tests: tests_root,
            protected: tests.keys().map(|p| text(p)).collect(),
            tampered,
            dropped,
            trees,
        })
    }

    /// After the provider: its workspace stored, what it changed, the judged tree, the
    /// tests run there, and the verdict.
    pub(super) fn judge(&mut self) -> Result<()> {
        if self.report.status == RunStatus::ProviderOutputLimit {
            return self.unjudgeable(
                "the provider was stopped at its folder limit: its workspace was not kept, so it is not judged".into(),
            );
        }
        let workspace = match self.store_workspace() {
            Ok(w) => w,
            Err(e) => {
                return self.unjudgeable(format!(
                    "the provider's workspace cannot be judged: it cannot be stored: {e}"
                ))
            }
        };
        let (Some(fixture), Some(prepared)) = (self.fixture_tree, self.prepared) else {
            return Err(Error::Integrity {
                message: "the fixture and the prepared workspace were not stored".into(),
            });
        };
        self.report.workspace_changes = changes(&self.home.store, &prepared, &workspace)?;
        let c = self.compose(&fixture.id, &workspace)?;
        self.evidence.extend(c.trees.iter().copied());
        let mut judge = Judge {
            fixture_tree: fixture.id,
            workspace_tree: Some(workspace),
            judged_tree: Some(c.judged.id),
            tests_tree: Some(c.tests.id),
            protected: c.protected,
            tampering: self.fixture.manifest.tampering,
            tampered: c.tampered,
            dropped: c.dropped,
            isolation: Vec::new(),
        };
        let folder = self.dir.join(JUDGED);
        let written = tree::restore(&self.home.store, &c.judged.id, &folder);
        if let Err(e) = written {
            self.report.judge = Some(judge);
            return self.unjudgeable(format!(
                "the provider's workspace cannot be judged: its judged tree {} could not be written: {e}",
                c.judged.id
            ));
        }
        judge.isolation = self.isolation();
        self.report.judge = Some(judge);
        let result = self.run_tests(&folder);
        let _ = fs::remove_dir_all(&folder);
        result?;
        self.verdict();
        Ok(())
    }

    /// The workspace as the provider left it, stored once (the run's record reuses it).
    fn store_workspace(&mut self) -> Result<ObjectId> {
        super::record::make_readable(&self.workspace());
        let folder = tree::ingest_open(&self.home.store, &self.workspace(), &[])?;
        let files: Vec<(PathBuf, ObjectMeta)> =
            folder.files().map(|(p, m)| (p.to_path_buf(), m)).collect();
        let ing = folder.seal(&self.home.store, Vec::new())?;
        let root = ing.root.id;
        self.stored_workspace = Some(super::record::StoredFolder {
            root: ing.root,
            objects: ing.objects,
            files,
        });
        Ok(root)
    }

    fn unjudgeable(&mut self, reason: String) -> Result<()> {
        let log = self.backend().join("tests.log");
        fs::write(&log, format!("{reason}\n")).map_err(Error::io("write", &log))?;
        self.report.tests = Some(Tests {
            command: self.fixture.manifest.test_command.clone(),
            argv: Vec::new(),
            cwd: None,
            exit_code: None,
            result: TestResult::Error,
            log: "backend/tests.log".into(),
            sandbox: None,
            output: None,
        });
        if self.report.status == RunStatus::Started {
            self.report.status = RunStatus::Failed;
            self.report.reason = Some(reason);
        }
        Ok(())
    }

    /// The test command as run: a Python interpreter is started isolated (`-I`: no
    /// working folder or script folder on `sys.path`, no user site, no `PYTHON*`
    /// variables; `-B`: no bytecode written).
    fn test_argv(&self, interpreter: Option<&Path>) -> Vec<String> {
        let cmd = &self.fixture.manifest.test_command;
        let first = interpreter.map_or(cmd[0].clone(), |p| p.display().to_string());
        let mut argv = vec![first];
        if is_python(&cmd[0]) {
            for flag in ["-I", "-B"] {
                if !cmd.iter().any(|a| a == flag) {
                    argv.push(flag.into());
                }
            }
        }
        argv.extend(cmd[1..].iter().cloned());
        argv
    }

    /// Starts resolving the real interpreter a Python test command names, on a thread,
    /// before the provider starts: a version manager's shim on PATH (pyenv's `python3`)
    /// picks the interpreter by files in the folder it runs in and its ancestors
    /// (`.python-version`) or in HOME (asdf's `.tool-versions`). It runs in the run folder
    /// with the tests' HOME, which does not exist yet: nothing the provider will write
    /// can steer it, and the run does not wait for the shim (pyenv's takes ~80 ms).
    pub(super) fn start_resolving(&mut self) {
        self.start_resolving_from(self.dir.clone());
    }

    /// The same, from `cwd` (`--check`: the folder the run's folder would be made in,
    /// whose ancestors a version manager would read).
    pub(super) fn start_resolving_from(&mut self, cwd: PathBuf) {
        let argv0 = self.fixture.manifest.test_command[0].clone();
        if !bare_python(&argv0) {
            return;
        }
        // A CPython executable on PATH is what exec would run, and what it reports as
        // sys.executable: nothing to ask. A native shim (mise's, rye's) is asked, as a
        // script shim is: it too picks an interpreter by the folder it runs in.
        let path = crate::paths::absolute_path_var();
        if let Some(p) = crate::paths::which_on(&argv0, &self.dir, &path).filter(|p| is_cpython(p))
        {
            self.resolving = Some(std::thread::spawn(move || Some(p)));
            return;
        }
        let tmp = self.dir.join(JUDGE_TMP).display().to_string();
        let mut env = self.base_env();
        env.retain(|(k, _)| k != "HOME" && k != "TMPDIR");
        env.extend([("HOME".into(), tmp.clone()), ("TMPDIR".into(), tmp)]);
        let interrupt = self.interrupt.clone();
        self.resolve_again = Some(Resolve {
            argv0: argv0.clone(),
            env: env.clone(),
            cwd: cwd.clone(),
        });
        self.resolving = Some(std::thread::spawn(move || {
            resolve_interpreter(&argv0, &cwd, env, &interrupt)
        }));
    }

    /// The interpreter `start_resolving` found: `None` when the command is not a bare
    /// Python name or the name did not say. An answer missed while the provider ran (a
    /// provider that keeps every core busy can hold a shim past its deadline) is asked
    /// for once more, now that nothing else runs: same folder, same environment.
    pub(super) fn interpreter(&mut self) -> Option<PathBuf> {
        let first = self.resolving.take()?.join().ok().flatten();
        if first.is_some() {
            return first;
        }
        let r = self.resolve_again.take()?;
        resolve_interpreter(&r.argv0, &r.cwd, r.env, &self.interrupt)
    }

    fn isolation(&self) -> Vec<String> {
        let mut out = vec![
            format!("tests run in {JUDGED}, a folder composed after the provider ended; read-only to them but {JUDGE_TMP}"),
            "the fixture's own copy of every protected path".into(),
            "PYTHONSAFEPATH=1 PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 in their environment".into(),
        ];
        if is_python(&self.fixture.manifest.test_command[0]) {
            out.push(format!(
                "{} -I -B: no working folder on sys.path, no user site, no PYTHON* variables, no bytecode written",
                self.fixture.manifest.test_command[0]
            ));
        }
        out
    }

    /// Runs the fixture's tests in `folder`, in the sandbox, with no network.
    fn run_tests(&mut self, folder: &Path) -> Result<()> {
        let interpreter = self.interpreter();
        let argv0 = &self.fixture.manifest.test_command[0];
        if interpreter.is_none() && bare_python(argv0) {
            // Never the bare name in the judged tree, where the provider's files (a
            // pyenv `.python-version`) would choose what runs the tests.
            return self.unjudgeable(format!(
                "the test command's interpreter `{argv0}` could not be resolved outside the judged tree (it named no file, or did not answer within 10 s), so the tests were not run"
            ));
        }
        let argv = self.test_argv(interpreter.as_deref());
        let tmp = self.dir.join(JUDGE_TMP);
        super::mkdir_private(&tmp)?;
        let log_p = self.backend().join("tests.log");
        let (cmd, output) = self.tests_command(&argv, folder, &tmp, &log_p)?;
        let mut tests = Tests {
            command: self.fixture.manifest.test_command.clone(),
            argv: argv.clone(),
            cwd: Some(JUDGED.into()),
            exit_code: None,
            result: TestResult::Error,
            log: "backend/tests.log".into(),
            sandbox: None,
            output: None,
        };
        // The tests import code the provider wrote: sandboxed, and no network at all.
        let sandbox = if self.opts.no_sandbox {
            None
        } else {
            let mut readable = vec![folder.to_path_buf()];
            if let Some(p) = &interpreter {
                readable.extend(self.prefixes_of(p));
            }
            let policy = self.policy(&readable, std::slice::from_ref(&tmp), Net::None);
            match crate::sandbox::prepare(&policy) {
                Ok(p) => Some(p),
                Err(Unavailable(m)) => {
                    let text = format!(
                        "the tests were not run: they import the provider's code and {m}\n"
                    );
                    fs::write(&log_p, text).map_err(Error::io("write", &log_p))?;
                    self.report.tests = Some(tests);
                    self.report.status = RunStatus::Failed;
                    self.report.reason =
                        Some(format!("the fixture's tests could not be sandboxed: {m}"));
                    return Ok(());
                }
            }
        };
        tests.sandbox = Some(match &sandbox {
            Some(p) => p.report.clone(),
            None => SandboxReport::waived("--no-sandbox"),
        });
        let (limits, scratch) = (self.limits, vec![tmp.clone()]);
        let mut watch = || super::limits::over(&scratch, &limits);
        // What the tests print is kept as the provider's is: within stdout_bytes.
        let capture = super::capture::start(output, &log_p, limits.stdout_bytes)?;
        let ran = crate::runner::run_confined(
            cmd,
            sandbox,
            TEST_TIMEOUT,
            &self.interrupt,
            &mut watch,
            |_| {},
        );
        tests.output = Some(capture.finish()?);
        let (code, result) = self.test_outcome(ran, &argv, &log_p)?;
        tests.exit_code = code;
        tests.result = result;
        self.report.tests = Some(tests);
        Ok(())
    }

    /// The tests' command: in `folder`, its temp folder its home, the caller's
    /// environment cleared, Python told to add no path and write no bytecode.
    /// Both its output streams go to one pipe, returned for the capture to read.
    fn tests_command(
        &self,
        argv: &[String],
        folder: &Path,
        tmp: &Path,
        log_p: &Path,
    ) -> Result<(Command, std::os::fd::OwnedFd)> {
        let (read, write) = std::io::pipe().map_err(Error::io("make a pipe for", log_p))?;
        let write2 = write
            .try_clone()
            .map_err(Error::io("make a pipe for", log_p))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(folder)
            .env_clear()
            .envs(self.base_env())
            .env("HOME", tmp)
            .env("TMPDIR", tmp)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONSAFEPATH", "1")
            .env("PYTHONNOUSERSITE", "1")
            .stdin(Stdio::null())
            .stdout(write)
            .stderr(write2);
        Ok((cmd, read.into()))
    }

    /// The tests' exit code and result from how their run ended.
    fn test_outcome(
        &mut self,
        ran: std::io::Result<crate::runner::Outcome>,
        argv: &[String],
        log_p: &Path,
    ) -> Result<(Option<i32>, TestResult)> {
        Ok(match ran {
            Ok(o) if o.limited.is_some() => {
                let why = o.limited.unwrap_or_default();
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(log_p)
                    .map_err(Error::io("open", log_p))?;
                let _ = std::io::Write::write_all(
                    &mut f,
                    format!("\n[cto-ledger: the tests were killed: {why}]\n").as_bytes(),
                );
                (None, TestResult::Error)
            }
            Ok(o) if o.timed_out => (None, TestResult::Timeout),
            Ok(o) if o.interrupted => {
                self.report.status = RunStatus::Interrupted;
                self.report.reason =
                    Some("cto-ledger was interrupted while the fixture's tests ran".into());
                (None, TestResult::Error)
            }
            Ok(o) => {
                // As bytes: one byte that is not UTF-8 must not hide the line.
                let log = fs::read(log_p).unwrap_or_default();
                let has = |s: &[u8]| log.windows(s.len()).any(|w| w == s);
                let ran_none = has(b"Ran 0 tests") || has(b"NO TESTS RAN");
                let passed = o.code == Some(0) && !ran_none;
                let result = if passed {
                    TestResult::Passed
                } else {
                    TestResult::Failed
                };
                (o.code, result)
            }
            Err(e) => {
                fs::write(log_p, format!("could not run {}: {e}\n", argv.join(" ")))
                    .map_err(Error::io("write", log_p))?;
                (None, TestResult::Error)
            }
        })
    }

    /// The verdict: the tests passed and the provider did not tamper with what judges it
    /// (unless the fixture says tampering is only reported).
    fn verdict(&mut self) {
        if self.report.status != RunStatus::Started {
            return;
        }
        let result = self.report.tests.as_ref().map(|t| t.result);
        let judge = self.report.judge.as_ref();
        let tampered: Vec<String> = judge
            .filter(|j| j.tampering == crate::stage2::fixture::Tampering::Fail)
            .map(|j| j.tampered.iter().map(|t| t.path.clone()).collect())
            .unwrap_or_default();
        if !tampered.is_empty() {
            self.report.status = RunStatus::Failed;
            self.report.reason = Some(format!(
                "tests_tampered: the provider tampered with what judges it ({}); the fixture's own tests ran and said {}",
                tampered.join(", "),
                result.map_or("nothing".into(), |r| r.to_string())
            ));
        } else if result == Some(TestResult::Passed) {
            self.report.status = RunStatus::Passed;
            self.report.verdict = Verdict::Pass;
        } else {
            self.report.status = RunStatus::Failed;
            self.report.reason = Some(format!(
                "the fixture's tests {} ({})",
                result.map_or("did not run".into(), |r| r.to_string()),
                self.fixture.manifest.test_command.join(" ")
            ));
        }
    }
}

/// An absolute path to an executable ELF file that is a CPython install's interpreter:
/// through its links, a file named `python3…` in `<prefix>/bin` beside the standard
/// library (`<prefix>/lib/python3.N/os.py`). A shim is a native file too (mise's and
/// rye's are), but no shim sits in an install's `bin` beside its `lib`.
fn is_cpython(p: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut magic = [0u8; 4];
    let native = p.is_absolute()
        && fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        && fs::File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == b"\x7fELF";
    let Some(real) = native.then(|| fs::canonicalize(p).ok()).flatten() else {
        return false;
    };
    let named = real
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("python3"));
    let lib = real
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("lib"));
    named
        && real.parent().is_some_and(|b| b.ends_with("bin"))
        && lib.and_then(|l| fs::read_dir(l).ok()).is_some_and(|rd| {
            rd.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("python3")
                    && e.path().join("os.py").is_file()
            })
        })
}

/// What `argv0 -I -S -c 'print(sys.executable)'` names (`-S`: no `site`, a fifth of the
/// start-up, and no bearing on `sys.executable`), run in `cwd` with only `env`, given
/// 10 s; an absolute path to a file, or `None`. The answer is read to the end of its
/// output, never from its exit status: once the provider runs, the harness is a
/// subreaper whose reaping loop may collect this child first.
fn resolve_interpreter(
    argv0: &str,
    cwd: &Path,
    env: Vec<(String, String)>,
    interrupt: &std::sync::atomic::AtomicBool,
) -> Option<PathBuf> {
    let mut child = Command::new(argv0)
        .args([
            "-I",
            "-S",
            "-c",
            "import sys; sys.stdout.write(sys.executable)",
        ])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        // A path, not a stream: a shim that writes more is not answering.
        let r = std::io::Read::read_to_end(&mut std::io::Read::take(&mut stdout, 4096), &mut out);
        let _ = tx.send(r.ok().map(|_| out));
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let out = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(out) => break out,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let interrupted = interrupt.load(std::sync::atomic::Ordering::SeqCst);
        if interrupted || std::time::Instant::now() > deadline {
            break None;
        }
    };
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
    let p = PathBuf::from(String::from_utf8(out?).ok()?.trim());
    (p.is_absolute() && p.is_file()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_is_recognised_by_its_name_only() {
        for (argv0, want) in [
            ("python3", true),
            ("python", true),
            ("/usr/bin/python3.11", true),
            ("pythonista", false),
            ("./run-tests.sh", false),
            ("py.test", false),
        ] {
            assert_eq!(is_python(argv0), want, "{argv0}");
        }
    }

    #[test]
    fn bytecode_and_harness_folders_are_told_apart() {
        use super::shadow::is_bytecode;
        assert!(is_bytecode(b"__pycache__/strings.cpython-311.pyc"));
        assert!(is_bytecode(b"pkg/__pycache__/x"));
        assert!(is_bytecode(b"old.pyc"));
        assert!(!is_bytecode(b"strings.py"));
        assert!(is_harness_folder(b".git/config") && is_harness_folder(b".case/tasks/x"));
        assert!(!is_harness_folder(b"src/.git-thing"));
    }
}
