//! Stage 2: run an admitted provider against a fixture and always leave evidence.
//!
//! One run, in the order a reader meets it: the run folder and its first `report.json`
//! (here), the gates that block before the provider starts ([`gates`]), executing the
//! admitted bytes in the sandbox ([`provider`]), the fixture's tests ([`judge`]), and
//! recording the whole folder ([`record`]). A killed harness's folders are finished by
//! [`recover`]; suites of runs are [`suite`]; the model the provider talks to is
//! [`model`]; fixtures are [`fixture`].

mod capture;
mod check;
mod confine;
pub mod fixture;
mod gates;
mod judge;
mod limits;
pub(crate) mod model;
mod policies;
mod provider;
mod record;
mod recover;
mod register;
mod shadow;
pub(crate) mod suite;
pub(crate) use check::{check_stage2, CheckOut};

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{ObjectMeta, RunId};
use crate::ledger::now;
use crate::report::{self, GateResult, Report};
use crate::state::{RunStatus, Verdict};
use crate::store::tree::ObjKind;
use fixture::Fixture;
use gates::{Blocked, Gated, Stop};

pub(crate) use crate::state::Lane;
pub(crate) use capture::Captured;
pub(crate) use limits::RunLimits;
pub(crate) use recover::{harness_alive, recover, unrecorded_run_folders, RecoverOut};

pub(crate) const DEFAULT_TIMEOUT_SECONDS: f64 = 900.0;
/// The fake provider shipped beside the `cto-ledger` executable.
pub(crate) const FAKE_BIN: &str = "cto-fake-ca";
/// What the shipped fake can be asked to do (`--fake-behavior`).
pub(crate) const FAKE_BEHAVIORS: [&str; 27] = [
    "solve",
    "agent",
    "fail",
    "hang",
    "hang-grandchild",
    "crash",
    "noop",
    "escape",
    "shadow",
    "shadow-package",
    "edit-test",
    "no-tests",
    "delete-test",
    "git-worktree",
    "gitdir",
    "fork-chain",
    "fifo",
    "swap-runner",
    "path-shadow",
    "pytest-config",
    "odd-names",
    "python-version",
    "model-flood",
    "long-path",
    "deep",
    "flood",
    "fill",
];

/// Everything one run needs, resolved (flags and environment) before it starts. A suite
/// hands each of its runs exactly this, as JSON, so a child run never resolves again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunOptions {
    pub fixture: String,
    pub lane: Lane,
    pub provider_bin: Option<PathBuf>,
    pub timeout_seconds: f64,
    pub fake_behavior: String,
    pub runs_dir: Option<PathBuf>,
    pub model_provider: Option<String>,
    pub model: Option<String>,
    /// Run the provider and the tests unconfined (recorded as such).
    pub no_sandbox: bool,
    /// TCP ports the provider may connect to beyond what its model needs.
    pub allow_net: Vec<u16>,
    /// Extra environment for the fake provider (the escape behaviour's targets).
    pub fake_env: Vec<(String, String)>,
    /// Limits set on the command line (over the fixture's and the defaults).
    #[serde(default)]
    pub limits: fixture::LimitsSpec,
}

impl RunOptions {
    pub(crate) fn fake(behavior: &str) -> RunOptions {
        RunOptions {
            fixture: fixture::BUILTIN.into(),
            lane: Lane::Fake,
            provider_bin: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            fake_behavior: behavior.into(),
            runs_dir: None,
            model_provider: None,
            model: None,
            no_sandbox: false,
            allow_net: Vec::new(),
            fake_env: Vec::new(),
            limits: fixture::LimitsSpec::default(),
        }
    }

    /// Refuses what no run could start with: an unknown fixture or fake behaviour.
    /// Whether the provider is the fake shipped with cto-ledger, the only one given the
    /// fixture's reference solution (any other provider would copy the answer key).
    pub(crate) fn runs_shipped_fake(&self) -> bool {
        self.lane == Lane::Fake && self.provider_bin.is_none()
    }

    pub(crate) fn check(&self) -> Result<Fixture> {
        let fixture = fixture::load(&self.fixture)?;
        if self.lane == Lane::Fake && !FAKE_BEHAVIORS.contains(&self.fake_behavior.as_str()) {
            return Err(Error::bad_input(
                format!("fake behaviour `{}` is unknown", self.fake_behavior),
                format!("use one of {}", FAKE_BEHAVIORS.join(", ")),
            ));
        }
        Ok(fixture)
    }
}

#[derive(Debug)]
pub(crate) struct Stage2Out {
    pub report: Report,
    pub run_dir: PathBuf,
    pub seq: u64,
    pub artifacts: usize,
}

/// As JSON, a run is its report.
impl Serialize for Stage2Out {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

pub(crate) fn shipped_fake() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(FAKE_BIN))
}

/// One run in progress: what it was asked, where it lives and what it found so far.
struct Run<'a> {
    home: &'a mut Home,
    opts: &'a RunOptions,
    fixture: Fixture,
    dir: PathBuf,
    report: Report,
    started_at: Instant,
    /// Objects outside the run folder that the run record names.
    evidence: Vec<(ObjectMeta, ObjKind)>,
    interrupt: Arc<AtomicBool>,
    /// What the loopback model server does for this run (none: no model server).
    serve: Option<model::Backend>,
    /// The fixture's repository as a tree in the store (the judge's source of truth).
    fixture_tree: Option<ObjectMeta>,
    /// The workspace as prepared, before the provider started.
    prepared: Option<crate::id::ObjectId>,
    /// The workspace as the provider left it, stored once by the judge.
    stored_workspace: Option<record::StoredFolder>,
    /// The limits the run is held to (defaults, the fixture's, the flags').
    limits: limits::RunLimits,
    /// The test command's interpreter, being resolved while the run gets ready.
    resolving: Option<std::thread::JoinHandle<Option<PathBuf>>>,
    /// What to resolve it with (the command's name, the environment, the folder), to
    /// ask once more.
    resolve_again: Option<judge::Resolve>,
    /// A `--check`: the gates are evaluated and nothing is stored or recorded.
    dry: bool,
    /// The policy engine, started with the run when a policy applies at `run`.
    engine: Option<crate::policy::engine::Warm>,
}

fn mkdir_private(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(Error::io("create", p))
}

/// `<runs>/<UTC yyyymmddThhmmssZ>-<fixture>-<pid>`, with `-N` if that exists.
/// A new run folder named `<UTC time>-<fixture>-<6 random hex>`: ids sort by start
/// time (to the second), and two runs in the same second still differ.
fn make_run_dir(runs: &Path, fixture: &str) -> Result<(RunId, PathBuf)> {
    mkdir_private(runs)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    for _ in 0..100 {
        let id = format!("{stamp}-{fixture}-{}", &crate::id::fresh("")[..6]);
        let p = runs.join(&id);
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok((RunId::from_folder(id), p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Io {
                    action: "create run folder",
                    path: p,
                    source: e,
                })
            }
        }
    }
    Err(Error::bad_input(
        format!(
            "no free run folder name for {stamp}-{fixture} in {}",
            runs.display()
        ),
        "use another --runs-dir",
    ))
}

pub(crate) fn run_stage2(home: &mut Home, opts: &RunOptions) -> Result<Stage2Out> {
    let fixture = opts.check()?;
    let runs = opts.runs_dir.clone().unwrap_or_else(|| home.runs_dir());
    let (run_id, dir) = make_run_dir(&runs, &fixture.manifest.name)?;
    let dir = crate::paths::abs(&dir);
    // Noted before anything can go wrong, so a killed harness's folder is found anywhere.
    home.ledger
        .note_run_folder(&run_id, &crate::paths::lossy(&dir))?;
    let interrupts = crate::runner::Interrupts::catch();
    let mut run = Run::new(
        home,
        opts,
        fixture,
        dir,
        run_id,
        interrupts.flag.clone(),
        false,
    );
    run.start_resolving();
    // The report exists before anything else can go wrong.
    let first = report::write(&run.dir, &run.report);
    let result = first.and_then(|_| run.execute());
    if let Err(e) = &result {
        run.report.status = RunStatus::Error;
        run.report.reason = Some(format!("harness error: {e}"));
    }
    // A run that ended before its tests still waits for the resolution it started.
    let _ = run.interpreter();
    let out = run.finish();
    drop(interrupts);
    match (result, out) {
        (Ok(()), out) => out,
        (Err(e), Ok(o)) => Err(Error::AfterCommit {
            committed: format!(
                "the run was still recorded, as event {} with status error; its folder is {}",
                o.seq,
                o.run_dir.display()
            ),
            source: Box::new(e),
        }),
        (Err(e), Err(_)) => Err(e),
    }
}

impl<'a> Run<'a> {
    /// A run that has not started: its report `started`, its limits resolved.
    fn new(
        home: &'a mut Home,
        opts: &'a RunOptions,
        fixture: Fixture,
        dir: PathBuf,
        run_id: RunId,
        interrupt: Arc<AtomicBool>,
        dry: bool,
    ) -> Run<'a> {
        let report = Report::started(
            run_id,
            &fixture.manifest.name,
            opts.lane,
            opts.timeout_seconds,
            std::process::id(),
            now(),
        );
        let limits = limits::RunLimits::resolve(&fixture.manifest.limits, &opts.limits);
        Run {
            home,
            opts,
            fixture,
            dir,
            report,
            started_at: Instant::now(),
            evidence: Vec::new(),
            interrupt,
            serve: None,
            fixture_tree: None,
            prepared: None,
            stored_workspace: None,
            limits,
            resolving: None,
            resolve_again: None,
            dry,
            engine: None,
        }
    }

    fn backend(&self) -> PathBuf {
        self.dir.join("backend")
    }

    fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// The run, gate by gate; a gate that blocks ends it with its file and a `blocked` report.
    fn execute(&mut self) -> Result<()> {
        match self.gated() {
            Ok(()) => Ok(()),
            Err(Stop::Blocked(b)) => self.block(b),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    fn gated(&mut self) -> Gated<()> {
        crate::sandbox::warm_probes();
        self.engine = crate::policy::warm(self.home, crate::state::PolicyPoint::Run)?;
        for d in ["workspace", "backend/case-data", "home", "tmp"] {
            mkdir_private(&self.dir.join(d))?;
        }
        self.prepare_workspace()?;
        let provider = self.provider_gates()?;
        let model = self.model_gate()?;
        let executed = self.materialise(&provider)?;
        let server = self.start_model_server(&model)?;
        self.write_case_data(&model, server.is_some())?;
        let sandbox = self.sandbox_gate(&executed, server.as_ref().map(|s| s.port))?;
        self.policy_gate()?;
        if self.interrupted() {
            self.report.status = RunStatus::Interrupted;
            self.report.reason =
                Some("cto-ledger was interrupted before the provider started".into());
            return Ok(());
        }
        self.register(&provider)?;
        self.run_provider(&executed, sandbox)?;
        if let Some(s) = server {
            let (n, cut, full) = s.stop();
            if let Some(m) = self.report.model.as_mut() {
                m.exchanges = Some(n as u64);
            }
            self.report
                .limits
                .extend(limits::model_limits(&self.limits, cut, full));
        }
        if self.report.status != RunStatus::Interrupted {
            self.judge()?;
        }
        Ok(())
    }

    fn task_path(&self) -> PathBuf {
        self.workspace()
            .join(".case/tasks/active")
            .join(format!("{}.task.json", self.fixture.manifest.task))
    }

    /// The fixture's repository stored as a tree (what judges the run comes from there),
    /// then written out as the workspace, a fresh git repository with the Case task.
    fn prepare_workspace(&mut self) -> Result<()> {
        let (fixture, objects) =
            crate::store::tree::flat::of_files(&self.home.store, &self.fixture.repo_files)?;
        self.fixture_tree = Some(fixture);
        self.evidence.extend(objects);
        let ws = self.workspace();
        fixture::write_files(&ws, &self.fixture.repo_files)?;
        crate::git::init_and_commit(&ws, &format!("fixture {}", self.fixture.manifest.name))?;
        let task = self.task_path();
        let mut files = vec![(
            format!("{}.task.json", self.fixture.manifest.task),
            self.fixture.task_json.clone(),
        )];
        if let Some(md) = &self.fixture.task_md {
            files.push((format!("{}.md", self.fixture.manifest.task), md.clone()));
        }
        fixture::write_files(task.parent().expect("task has a folder"), &files)?;
        let prepared = crate::store::tree::ingest_path(
            &self.home.store,
            &ws,
            &indicatif::ProgressBar::hidden(),
        )?;
        self.prepared = Some(prepared.root.id);
        self.evidence.extend(prepared.objects);
        Ok(())
    }

    fn gate_pass(&mut self, gate: gates::Gate, detail: String) {
        self.report.gates.push(GateResult {
            name: gate.name().into(),
            passed: true,
            detail,
            file: None,
        });
    }

    /// Writes the blocked gate's file under `backend/` and makes the report `blocked`.
    fn block(&mut self, b: Blocked) -> Result<()> {
        let file = b.gate.file();
        let p = self.backend().join(file);
        let text = format!(
            "{}\n\ngate: {}\nrun: {}\ntime: {}\n",
            b.message,
            b.gate.name(),
            self.report.run_id,
            now()
        );
        fs::write(&p, text).map_err(Error::io("write", &p))?;
        self.report.gates.push(GateResult {
            name: b.gate.name().into(),
            passed: false,
            detail: b.message.clone(),
            file: Some(format!("backend/{file}")),
        });
        self.report.status = RunStatus::Blocked;
        self.report.verdict = Verdict::Fail;
        self.report.reason = Some(b.message);
        // On disk at once: a harness killed before the run is recorded leaves what
        // blocked it (and every policy decision) for `recover` to record.
        report::write(&self.dir, &self.report)?;
        crate::env::crash_point("run-blocked");
        Ok(())
    }
}
