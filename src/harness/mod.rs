//! Stage 2: run an admitted provider against a fixture and always leave evidence.
//! Gates block before the provider starts; the bytes executed are the admitted
//! bytes, copied out of the store and re-hashed; the run is bounded in time; the
//! verdict comes from the fixture's tests; the whole run folder goes into the ledger.

pub mod fixture;
pub(crate) mod health;
pub(crate) mod model;
pub(crate) mod suite;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{AdmissionId, RunId};
use crate::id::{ObjectId, ObjectMeta};
use crate::ledger::events::{AdmissionRec, ArtifactRec, Body, ModelAdmissionRec, ObjRec, RunRec};
use crate::ledger::now;
use crate::ledger::AdmissionView;
use crate::report::{self, Change, Evidence, Gate, Model, ProviderExit, Report, Tests};
use crate::sandbox::{Net, Policy, Prepared, SandboxReport, Unavailable};
use crate::state::{AdmissionScope, RunStatus, TestResult, Verdict};
use crate::store::hash_file;
use crate::store::tree::{self, ObjKind};
use fixture::Fixture;

pub(crate) const DEFAULT_TIMEOUT_SECONDS: f64 = 900.0;
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The fake provider shipped beside the `cto-ledger` executable.
pub(crate) const FAKE_BIN: &str = "cto-fake-ca";
pub(crate) const FAKE_MODEL: (&str, &str) = ("fake", "fake-model");
/// What a hosted model's API needs: HTTPS.
const HOSTED_MODEL_PORT: u16 = 443;
/// Read and execute for every sandboxed process: what programs need from the system.
const SYSTEM_READ_ONLY: [&str; 10] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt", "/proc", "/sys",
];
const DEVICES_READ_ONLY: [&str; 2] = ["/dev/random", "/dev/urandom"];
const DEVICES_READ_WRITE: [&str; 3] = ["/dev/null", "/dev/zero", "/dev/full"];

pub(crate) use crate::state::Lane;

#[derive(Debug, Clone)]
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
        }
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

/// A gate that stopped the run before the provider started.
struct Blocked {
    gate: &'static str,
    file: &'static str,
    message: String,
}

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
}

fn mkdir_private(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(Error::io("create", p))
}

/// `<runs>/<UTC yyyymmddThhmmssZ>-<fixture>-<pid>`, with `-N` if that exists.
fn make_run_dir(runs: &Path, fixture: &str) -> Result<(RunId, PathBuf)> {
    mkdir_private(runs)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = format!("{stamp}-{fixture}-{}", std::process::id());
    for n in 1..1000 {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
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
        format!("too many runs named {base} in {}", runs.display()),
        "use another --runs-dir",
    ))
}

/// The fake lane's behaviour must be one the shipped fake knows.
pub(crate) fn check_fake_behavior(opts: &RunOptions) -> Result<()> {
    const KNOWN: [&str; 8] = [
        "solve",
        "agent",
        "fail",
        "hang",
        "hang-grandchild",
        "crash",
        "noop",
        "escape",
    ];
    if opts.lane == Lane::Fake && !KNOWN.contains(&opts.fake_behavior.as_str()) {
        return Err(Error::bad_input(
            format!("fake behaviour `{}` is unknown", opts.fake_behavior),
            format!("use one of {}", KNOWN.join(", ")),
        ));
    }
    Ok(())
}

pub(crate) fn run_stage2(home: &mut Home, opts: &RunOptions) -> Result<Stage2Out> {
    let fixture = fixture::load(&opts.fixture)?;
    check_fake_behavior(opts)?;
    let runs = opts.runs_dir.clone().unwrap_or_else(|| home.runs_dir());
    let (run_id, dir) = make_run_dir(&runs, &fixture.manifest.name)?;
    let dir = crate::paths::abs(&dir);
    // Noted before anything can go wrong, so a killed harness's folder is found anywhere.
    home.ledger
        .note_run_folder(&run_id, &crate::paths::lossy(&dir))?;
    let interrupts = crate::runner::Interrupts::catch();
    let report = Report::started(
        run_id,
        &fixture.manifest.name,
        opts.lane,
        opts.timeout_seconds,
        std::process::id(),
        now(),
    );
    let mut run = Run {
        home,
        opts,
        fixture,
        dir,
        report,
        started_at: Instant::now(),
        evidence: Vec::new(),
        interrupt: interrupts.flag.clone(),
        serve: None,
    };
    // The report exists before anything else can go wrong.
    let first = report::write(&run.dir, &run.report);
    let result = first.and_then(|_| run.execute());
    if let Err(e) = &result {
        run.report.status = RunStatus::Error;
        run.report.reason = Some(format!("harness error: {e}"));
    }
    let out = run.finish();
    drop(interrupts);
    match (result, out) {
        (Err(e), _) => Err(e),
        (Ok(()), out) => out,
    }
}

impl Run<'_> {
    fn backend(&self) -> PathBuf {
        self.dir.join("backend")
    }
    fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    fn gate_pass(&mut self, name: &str, detail: String) {
        self.report.gates.push(Gate {
            name: name.into(),
            passed: true,
            detail,
            file: None,
        });
    }

    fn block(&mut self, b: Blocked) -> Result<()> {
        let p = self.backend().join(b.file);
        let text = format!(
            "{}\n\ngate: {}\nrun: {}\ntime: {}\n",
            b.message,
            b.gate,
            self.report.run_id,
            now()
        );
        fs::write(&p, text).map_err(Error::io("write", &p))?;
        self.report.gates.push(Gate {
            name: b.gate.into(),
            passed: false,
            detail: b.message.clone(),
            file: Some(format!("backend/{}", b.file)),
        });
        self.report.status = RunStatus::Blocked;
        self.report.verdict = Verdict::Fail;
        self.report.reason = Some(b.message);
        Ok(())
    }

    fn execute(&mut self) -> Result<()> {
        for d in ["workspace", "backend/case-data", "home", "tmp"] {
            mkdir_private(&self.dir.join(d))?;
        }
        self.prepare_workspace()?;
        let provider = match self.provider_gates()? {
            Ok(p) => p,
            Err(b) => return self.block(b),
        };
        let model = match self.model_gate()? {
            Ok(m) => m,
            Err(b) => return self.block(b),
        };
        let executed = match self.materialise(&provider)? {
            Ok(p) => p,
            Err(b) => return self.block(b),
        };
        let server = self.start_model_server(&model)?;
        self.write_case_data(&model, server.is_some())?;
        let port = server.as_ref().map(|s| s.port);
        let sandbox = match self.sandbox_gate(&executed, port)? {
            Ok(s) => s,
            Err(b) => return self.block(b),
        };
        if self.interrupt.load(std::sync::atomic::Ordering::SeqCst) {
            self.report.status = RunStatus::Interrupted;
            self.report.reason =
                Some("cto-ledger was interrupted before the provider started".into());
            return Ok(());
        }
        self.run_provider(&executed, sandbox)?;
        if let Some(s) = server {
            let n = s.stop();
            if let Some(m) = self.report.model.as_mut() {
                m.exchanges = Some(n as u64);
            }
        }
        if self.report.status != RunStatus::Interrupted {
            self.run_tests()?;
        }
        Ok(())
    }

    fn task_path(&self) -> PathBuf {
        self.workspace()
            .join(".case/tasks/active")
            .join(format!("{}.task.json", self.fixture.manifest.task))
    }

    fn prepare_workspace(&mut self) -> Result<()> {
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
        Ok(())
    }

    /// Provider available, admitted, not revoked: returns the admitted object.
    fn provider_gates(&mut self) -> Result<std::result::Result<ObjectMeta, Blocked>> {
        let lane = self.opts.lane;
        let given = match (&self.opts.provider_bin, lane) {
            (Some(p), _) => Some(p.clone()),
            (None, Lane::Fake) => shipped_fake(),
            (None, Lane::Case) => None,
        };
        self.report.provider.path_given = given.as_ref().map(|p| p.display().to_string());
        let Some(path) = given else {
            return Ok(Err(Blocked {
                gate: "provider_available",
                file: "provider-unavailable.txt",
                message: "the real Case lane needs a provider: CTO_HARNESS_CASE_BIN is not set and no --provider-bin was given".into(),
            }));
        };
        let meta = fs::metadata(&path);
        let unavailable = match &meta {
            Err(e) => Some(format!("provider {} is unavailable: {e}", path.display())),
            Ok(m) if !m.is_file() => {
                Some(format!("provider {} is not a regular file", path.display()))
            }
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Some(format!("provider {} is not executable", path.display()))
            }
            Ok(_) => None,
        };
        if let Some(message) = unavailable {
            return Ok(Err(Blocked {
                gate: "provider_available",
                file: "provider-unavailable.txt",
                message,
            }));
        }
        self.gate_pass(
            "provider_available",
            format!("{} exists and is executable", path.display()),
        );

        // The bytes offered are evidence whether or not they are admitted. Hashed first:
        // a known provider (every run but the first) is not written out again.
        let m = self.offered_digest(&path)?;
        if !self.home.store.has(&m.id)? && self.home.store.put_file(&path)?.id != m.id {
            return Err(Error::Integrity {
                message: format!(
                    "provider {} changed while it was being read; run again",
                    path.display()
                ),
            });
        }
        self.evidence.push((m, ObjKind::Blob));
        self.report.provider.sha256 = Some(m.sha256.to_string());
        self.report.provider.blake3 = Some(m.id.to_string());
        let mut adm = self.home.ledger.live_admission(&m.id, lane == Lane::Case)?;
        let is_shipped_fake = lane == Lane::Fake && self.opts.provider_bin.is_none();
        if adm.is_none() && is_shipped_fake && !self.any_admission(&m.id)? {
            adm = self.admit_shipped_fake(&path, m)?;
        }
        let Some(adm) = adm else {
            let message = self.not_admitted_message(&path, &m)?;
            return Ok(Err(Blocked {
                gate: "provider_admitted",
                file: "provider-not-admitted.txt",
                message,
            }));
        };
        let a = &adm.admission;
        let p = &mut self.report.provider;
        p.admission = Some(a.id.clone());
        p.admission_name = Some(a.name.clone());
        p.source_pin = a.pin.clone();
        p.source_commit = a.commit_id.clone();
        p.source_url = adm.url.clone();
        p.build = a.build_id.clone();
        let detail = format!("{} is admitted as {} ({})", m.sha256, a.id, a.scope);
        self.gate_pass("provider_admitted", detail);
        Ok(Ok(m))
    }

    /// The offered file's digests: from the stat cache when its (device, inode, size,
    /// mtime, ctime, mode) are those recorded (as `ingest` and git's index trust them),
    /// else hashed and then cached. This only names what was offered: what runs is the
    /// admitted object's own executable, re-hashed before every run.
    fn offered_digest(&mut self, path: &Path) -> Result<ObjectMeta> {
        use std::os::unix::ffi::OsStrExt;
        let abs = fs::canonicalize(path).map_err(Error::io("resolve", path))?;
        let meta = fs::metadata(&abs).map_err(Error::io("stat", &abs))?;
        let key = tree::StatKey::of(&meta);
        let cache = self
            .home
            .ledger
            .load_stat_cache(abs.as_os_str().as_bytes())?;
        if let Some(m) = tree::StatCache::get(&cache, &abs, &key) {
            return Ok(m);
        }
        let m = hash_file(&abs)?;
        let row = tree::StatRow {
            path: abs.as_os_str().as_bytes().to_vec(),
            key,
            meta: m,
        };
        self.home.ledger.save_stat_cache(&[row], &[])?;
        Ok(m)
    }

    fn any_admission(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.home.ledger.latest_admission_of_object(id)?.is_some())
    }

    /// The fake shipped with cto-ledger is admitted for the fake lane on first use,
    /// as a recorded event, so a fresh ledger can run the default job.
    fn admit_shipped_fake(&mut self, path: &Path, m: ObjectMeta) -> Result<Option<AdmissionView>> {
        let stored = self.home.store.put_file(path)?;
        if stored.id != m.id {
            return Err(Error::Integrity {
                message: format!("{} changed while it was being admitted", path.display()),
            });
        }
        let rec = AdmissionRec {
            id: AdmissionId::new(),
            name: "fake-ca".into(),
            object: m.id,
            sha256: m.sha256,
            size: m.size,
            path: path.display().to_string(),
            pin: None,
            commit: None,
            source: None,
            scope: AdmissionScope::FakeLane,
            build: None,
            allowed_modified: Vec::new(),
            decisions: vec![format!(
                "fake provider shipped with cto-ledger {} beside the running executable; admitted for the fake Stage 2 lane only",
                env!("CARGO_PKG_VERSION")
            )],
            objects: vec![ObjRec::new(m, ObjKind::Blob)],
        };
        // Several first runs at once must not each admit it: ask inside the write.
        let object = m.id;
        self.home.commit_unless(
            |l| Ok(l.latest_admission_of_object(&object)?.is_some()),
            vec![Body::Admission(rec)],
        )?;
        // Ours, or the one another first run recorded a moment before.
        self.home.ledger.live_admission(&object, false)
    }

    fn not_admitted_message(&self, path: &Path, m: &ObjectMeta) -> Result<String> {
        let l = &self.home.ledger;
        if let Some((adm, rev)) = l.revoked_admission_of_object(&m.id)? {
            return Ok(format!(
                "provider {} ({}) was admitted as {adm} but that admission was revoked by {}: {}",
                path.display(),
                m.sha256,
                rev.id,
                rev.reason
            ));
        }
        if self.opts.lane == Lane::Case && self.any_admission(&m.id)? {
            return Ok(format!("provider {} ({}) is admitted for the fake lane only; the real lane needs an admission with a source pin", path.display(), m.sha256));
        }
        let abs = crate::paths::lossy(&crate::paths::abs(path));
        if let Some(e) = l.latest_admission_at_path(&abs)? {
            return Ok(format!(
                "provider {} now hashes to {}, but it was admitted as {} ({}): the file changed since admission, so it is not admitted",
                path.display(),
                m.sha256,
                e.sha256,
                e.id
            ));
        }
        Ok(format!(
            "provider {} ({}) is not admitted; admit it first: cto-ledger admit {} --source-pin <commit it was built from>",
            path.display(),
            m.sha256,
            path.display()
        ))
    }

    fn model_gate(&mut self) -> Result<std::result::Result<Model, Blocked>> {
        let (p, m) = (self.opts.model_provider.clone(), self.opts.model.clone());
        let pair = match (p, m, self.opts.lane) {
            (None, None, Lane::Fake) => {
                let (p, m) = FAKE_MODEL;
                self.gate_pass(
                    "model_admitted",
                    "fake lane: the fake provider calls no model".into(),
                );
                let model = Model::named(p, m, None);
                self.report.model = Some(model.clone());
                return Ok(Ok(model));
            }
            (Some(p), Some(m), _) => (p, m),
            (p, m, _) => {
                let missing: Vec<&str> = [
                    ("CTO_HARNESS_CASE_MODEL_PROVIDER", &p),
                    ("CTO_HARNESS_CASE_MODEL", &m),
                ]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
                return Ok(Err(Blocked {
                    gate: "model_admitted",
                    file: "provider-model-not-admitted.txt",
                    message: format!(
                        "{} not set: without an explicit model Case falls back to its built-in default model, which nobody admitted. Set both and admit the pair with `cto-ledger admit --model PROVIDER/MODEL`",
                        missing.join(" and ")
                    ),
                }));
            }
        };
        let (p, m) = pair;
        self.report.model = Some(Model::named(&p, &m, None));
        if ModelAdmissionRec::parse_pair(&format!("{p}/{m}")).is_err() {
            return Ok(Err(Blocked {
                gate: "model_admitted",
                file: "provider-model-not-admitted.txt",
                message: format!("model `{p}/{m}` is not a valid PROVIDER/MODEL pair"),
            }));
        }
        if p == model::SCRIPTED {
            return self.scripted_gate(&m);
        }
        match self.home.ledger.model_admission_of(&p, &m, true)? {
            Some(a) => {
                let id = a.id;
                let mut model = Model::named(&p, &m, Some(id.clone()));
                let at = match &a.endpoint {
                    Some(e) => {
                        let (origin, base) = model::split_endpoint(e).ok_or_else(|| Error::Integrity {
                            message: format!("model admission {id} records endpoint `{e}`, which is not a URL"),
                        })?;
                        self.serve = Some(model::Backend::Forward(model::Upstream { origin, base }));
                        model.endpoint = Some(e.clone());
                        format!(", served at {e} (recorded through a loopback proxy)")
                    }
                    None => String::new(),
                };
                self.gate_pass("model_admitted", format!("{p}/{m} is admitted as {id}{at}"));
                self.report.model = Some(model.clone());
                Ok(Ok(model))
            }
            None => Ok(Err(Blocked {
                gate: "model_admitted",
                file: "provider-model-not-admitted.txt",
                message: format!("model {p}/{m} is not admitted (or its admission was revoked); admit it with `cto-ledger admit --model {p}/{m}`"),
            })),
        }
    }

    /// `scripted/NAME`: the fixture's `model-scripts/NAME.json`, whose exact digest must be
    /// admitted. Its bytes go into the store as the run's evidence of what was served.
    fn scripted_gate(&mut self, name: &str) -> Result<std::result::Result<Model, Blocked>> {
        let spec = format!("{}/{name}", model::SCRIPTED);
        let blocked = |message: String| {
            Ok(Err(Blocked {
                gate: "model_admitted",
                file: "provider-model-not-admitted.txt",
                message,
            }))
        };
        let Some(bytes) = model::script_of(&self.fixture, name).map(<[u8]>::to_vec) else {
            return blocked(format!(
                "model {spec} names model-scripts/{name}.json, which fixture {} does not have",
                self.fixture.origin
            ));
        };
        let script = model::parse_script(
            &format!("{} model-scripts/{name}.json", self.fixture.origin),
            &bytes,
        )?;
        let meta = self.home.store.put_bytes(&bytes)?;
        self.evidence.push((meta, ObjKind::Blob));
        let mut m = Model::named(model::SCRIPTED, name, None);
        m.script_sha256 = Some(meta.sha256.to_string());
        self.report.model = Some(m.clone());
        let Some(a) = self.home.ledger.scripted_admission(name, &meta.id)? else {
            let admitted = self
                .home
                .ledger
                .model_admission_of(model::SCRIPTED, name, true)?;
            return blocked(match admitted {
                Some(a) => format!(
                    "model script model-scripts/{name}.json of fixture {} hashes to {}, but {spec} was admitted ({}) with {}: the script was edited since, so it is not admitted; admit it again with `cto-ledger admit --model {spec}` if the change is intended",
                    self.fixture.origin,
                    meta.sha256,
                    a.id,
                    a.script_object.map_or("no script".into(), |o| o.to_string())
                ),
                None => format!("model {spec} is not admitted (or its admission was revoked); admit its script with `cto-ledger admit --model {spec}`"),
            });
        };
        self.gate_pass(
            "model_admitted",
            format!("{spec} is admitted as {} with script {}", a.id, meta.sha256),
        );
        m.admission = Some(a.id);
        self.report.model = Some(m.clone());
        self.serve = Some(model::Backend::Scripted(script));
        Ok(Ok(m))
    }

    /// The admitted bytes as an executable file: `<ledger>/exec/<blake3>`, made once per
    /// object from the store (re-hashed as they are copied, then again as a file) and
    /// re-hashed before every run that executes it. That file, not the path the user
    /// gave, runs, and no run folder holds a copy. A file there that no longer hashes
    /// to its name is replaced from the store; a damaged store copy blocks the run.
    fn materialise(&mut self, m: &ObjectMeta) -> Result<std::result::Result<PathBuf, Blocked>> {
        let dir = self.home.dir.join("exec");
        mkdir_private(&dir)?;
        let p = dir.join(m.id.hex());
        // Our own file, mode 0500 in a 0700 folder: its BLAKE3 (the object id) on every
        // core is the check; the SHA-256 was checked when it was made.
        let existing = match fs::symlink_metadata(&p) {
            Ok(_) => Some(crate::store::object_id_of_file(&p).is_ok_and(|id| id == m.id)),
            Err(_) => None,
        };
        let detail = match existing {
            Some(true) => format!("executing {}, re-hashed to {}", p.display(), m.id),
            made => {
                if let Err(blocked) = self.make_executable(m, &dir, &p)? {
                    return Ok(Err(blocked));
                }
                let how = if made.is_some() {
                    "the file there no longer hashed to its name and was made again from the store"
                } else {
                    "made from the store"
                };
                format!(
                    "executing {} ({how}), re-hashed to {}",
                    p.display(),
                    m.sha256
                )
            }
        };
        self.report.provider.executed = Some(p.display().to_string());
        self.gate_pass("provider_bytes_verified", detail);
        Ok(Ok(p))
    }

    /// Copies object `m` out of the store into a new file and renames it to `p` once it
    /// re-hashes (mode 0500): concurrent runs each write their own file, the first to
    /// land stays, and only a file that no longer hashes to its name is replaced.
    fn make_executable(
        &self,
        m: &ObjectMeta,
        dir: &Path,
        p: &Path,
    ) -> Result<std::result::Result<(), Blocked>> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".exec-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempfile_in(dir)
            .map_err(Error::io("create a file in", dir))?;
        let copied = self.home.store.copy_verified(&m.id, tmp.as_file_mut());
        tmp.as_file()
            .sync_all()
            .map_err(Error::io("fsync", tmp.path()))?;
        let recheck = copied.and_then(|_| hash_file(tmp.path()));
        match recheck {
            Ok(h) if h.id == m.id && h.sha256 == m.sha256 => {}
            Ok(h) => {
                return Ok(Err(Blocked {
                    gate: "provider_bytes_verified",
                    file: "provider-not-admitted.txt",
                    message: format!("the copy of admitted provider {} hashes to {}: refusing to run it", m.id, h.id),
                }))
            }
            Err(Error::Integrity { message }) => {
                return Ok(Err(Blocked {
                    gate: "provider_bytes_verified",
                    file: "provider-not-admitted.txt",
                    message: format!("the stored bytes of admitted provider {} are damaged ({message}); refusing to run them", m.sha256),
                }))
            }
            Err(e) => return Err(e),
        }
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o500))
            .map_err(Error::io("chmod", tmp.path()))?;
        // Close before the rename: no writable descriptor may be open when it is executed.
        let tmp = tmp.into_temp_path();
        // A good file another run made meanwhile stays: a run's sandbox grants its provider
        // that inode, so replacing it would leave the provider unable to execute itself.
        let tmp = match tmp.persist_noclobber(p) {
            Ok(()) => return Ok(Ok(())),
            Err(e) if crate::store::object_id_of_file(p).is_ok_and(|id| id == m.id) => {
                drop(e);
                return Ok(Ok(()));
            }
            Err(e) => e.path,
        };
        tmp.persist(p)
            .map_err(|e| Error::io("rename into", p)(e.error))?;
        Ok(Ok(()))
    }

    /// For a scripted model or an admitted endpoint: the loopback server the provider is
    /// pointed at (pi's `models.json` in its home), recording every exchange.
    fn start_model_server(&mut self, m: &Model) -> Result<Option<model::ModelServer>> {
        let Some(backend) = self.serve.take() else {
            return Ok(None);
        };
        let base = backend.base_path().to_string();
        let server =
            model::ModelServer::start(backend, &m.model, &self.dir.join(model::TRANSCRIPT))?;
        let url = format!("http://127.0.0.1:{}{base}", server.port);
        model::write_pi_models(&self.dir.join("home"), &url, &m.model)?;
        if let Some(rm) = self.report.model.as_mut() {
            rm.served_at = Some(url);
            rm.transcript = Some(model::TRANSCRIPT.into());
            rm.exchanges = Some(0);
        }
        Ok(Some(server))
    }

    /// `served`: the model is behind the loopback server, which pi knows as provider
    /// `openai` (the only name Case's pi adapter gives a key), so Case's config says so.
    fn write_case_data(&mut self, model: &Model, served: bool) -> Result<()> {
        let data = self.backend().join("case-data");
        let manifest = &self.fixture.manifest;
        let test_cmd = manifest.test_command.join(" ");
        let provider = if served {
            "openai"
        } else {
            model.provider.as_str()
        };
        let config = json!({"models": {"default": {"provider": provider, "model": model.model}}});
        let projects = json!({"repos": [{
            "name": manifest.repo,
            "path": self.workspace().display().to_string(),
            "remote": "",
            "language": manifest.language,
            "packageManager": manifest.package_manager,
            "commands": {"test": test_cmd},
        }]});
        let cfg_path = data.join("config.json");
        fs::write(&cfg_path, serde_json::to_vec_pretty(&config).expect("json"))
            .map_err(Error::io("write", &cfg_path))?;
        let pj = data.join("projects.json");
        fs::write(&pj, serde_json::to_vec_pretty(&projects).expect("json"))
            .map_err(Error::io("write", &pj))?;
        if self.opts.lane == Lane::Fake && !self.fixture.solution.is_empty() {
            fixture::write_files(
                &self.backend().join("fake-solution"),
                &self.fixture.solution,
            )?;
        }
        Ok(())
    }

    fn base_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                crate::env::get("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".into(), self.dir.join("home").display().to_string()),
            ("TMPDIR".into(), self.dir.join("tmp").display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
        ]
    }

    fn provider_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env();
        env.push((
            "CASE_DATA_DIR".into(),
            self.backend().join("case-data").display().to_string(),
        ));
        if self.opts.lane == Lane::Fake {
            if self.opts.fake_behavior == "escape" {
                // The self-check's hostile provider is told where the ledger is.
                env.push((
                    "CTO_FAKE_CA_ESCAPE_LEDGER".into(),
                    self.home.dir.display().to_string(),
                ));
                env.extend(self.opts.fake_env.iter().cloned());
            }
            env.push((
                "CTO_FAKE_CA_BEHAVIOR".into(),
                self.opts.fake_behavior.clone(),
            ));
            env.push((
                "CTO_FAKE_CA_SOLUTION".into(),
                self.backend().join("fake-solution").display().to_string(),
            ));
        }
        // pi gives the `openai` provider (the loopback server) a key only when one is set;
        // the scripted model and a local endpoint need none, so a placeholder says so.
        if self
            .report
            .model
            .as_ref()
            .is_some_and(|m| m.served_at.is_some())
            && !crate::env::pass_env_names()
                .iter()
                .any(|n| n == "OPENAI_API_KEY")
        {
            env.push(("OPENAI_API_KEY".into(), "cto-ledger-no-key".into()));
        }
        // Credentials the real provider needs are passed only by explicit name.
        for n in crate::env::pass_env_names() {
            if let Some(v) = crate::env::passed(&n) {
                if !env.iter().any(|(k, _)| *k == n) {
                    env.push((n, v));
                }
            }
        }
        env
    }

    /// Read and execute: the system, the tools the fixture's tests run, and `extra`.
    /// Read and write: the run's own workspace, home, temp and Case data folders.
    fn sandbox_policy(&self, extra: &[PathBuf], net: Net) -> Policy {
        let mut read_only: Vec<PathBuf> = SYSTEM_READ_ONLY
            .iter()
            .chain(DEVICES_READ_ONLY.iter())
            .map(PathBuf::from)
            .collect();
        // /etc/resolv.conf may point outside /etc (systemd-resolved's /run/systemd/resolve).
        if let Some(d) = fs::canonicalize("/etc/resolv.conf")
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            read_only.push(d);
        }
        read_only.extend(self.tool_prefixes());
        read_only.extend(extra.iter().cloned());
        let mut read_write: Vec<PathBuf> = ["workspace", "home", "tmp", "backend/case-data"]
            .iter()
            .map(|d| self.dir.join(d))
            .collect();
        read_write.extend(DEVICES_READ_WRITE.iter().map(PathBuf::from));
        Policy {
            read_only,
            read_write,
            net,
            allow_net: self.opts.allow_net.clone(),
        }
    }

    /// Where the fixture's test command is installed, when that is not a system folder
    /// (a pyenv `python3` is a shim under `~/.pyenv`): `<prefix>` of `<prefix>/<dir>/<tool>`.
    /// Never a folder that holds the ledger, the run, or a home folder itself.
    fn tool_prefixes(&self) -> Vec<PathBuf> {
        let Some(tool) = self.fixture.manifest.test_command.first() else {
            return Vec::new();
        };
        let Some(found) = crate::paths::which(tool, &self.workspace()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let home = crate::env::get_os("HOME").map(PathBuf::from);
        for p in [found.clone(), fs::canonicalize(&found).unwrap_or(found)] {
            let Some(prefix) = p.parent().and_then(Path::parent) else {
                continue;
            };
            let system = SYSTEM_READ_ONLY.iter().any(|s| p.starts_with(s));
            let too_wide = prefix == Path::new("/")
                || self.home.dir.starts_with(prefix)
                || self.dir.starts_with(prefix)
                || home.as_deref() == Some(prefix);
            if !system && !too_wide && !out.contains(&prefix.to_path_buf()) {
                out.push(prefix.to_path_buf());
            }
        }
        out
    }

    /// The provider runs in the kernel sandbox, or the run is blocked before it starts;
    /// `--no-sandbox` runs it unconfined and says so in the report and the journal.
    fn sandbox_gate(
        &mut self,
        exe: &Path,
        model_port: Option<u16>,
    ) -> Result<std::result::Result<Option<Prepared>, Blocked>> {
        if self.opts.no_sandbox {
            self.report.sandbox = Some(SandboxReport::waived("--no-sandbox"));
            self.gate_pass(
                "provider_sandboxed",
                "not sandboxed: --no-sandbox was given, so the provider runs unconfined with the invoking user's access".into(),
            );
            return Ok(Ok(None));
        }
        let mut extra = vec![exe.to_path_buf()];
        if self.opts.lane == Lane::Fake {
            extra.push(self.backend().join("fake-solution"));
        }
        // The model's port: the loopback server's, or HTTPS for a hosted model.
        let model_port = match (model_port, self.opts.lane) {
            (Some(p), _) => Some(p),
            (None, Lane::Case) => Some(HOSTED_MODEL_PORT),
            (None, Lane::Fake) => None,
        };
        let mut ports: Vec<u16> = model_port.into_iter().collect();
        ports.extend(self.opts.allow_net.iter().copied());
        ports.sort_unstable();
        ports.dedup();
        let net = if ports.is_empty() {
            Net::None
        } else {
            Net::Tcp(ports)
        };
        let policy = self.sandbox_policy(&extra, net);
        match crate::sandbox::prepare(&policy) {
            Ok(p) => {
                self.report.sandbox = Some(p.report.clone());
                self.gate_pass("provider_sandboxed", p.report.summary());
                Ok(Ok(Some(p)))
            }
            Err(Unavailable(message)) => {
                self.report.sandbox = None;
                Ok(Err(Blocked {
                    gate: "provider_sandboxed",
                    file: "provider-sandbox-unavailable.txt",
                    message,
                }))
            }
        }
    }

    fn run_provider(&mut self, exe: &Path, sandbox: Option<Prepared>) -> Result<()> {
        let task = self.task_path();
        let argv: Vec<String> = vec![
            exe.display().to_string(),
            "run".into(),
            "--task".into(),
            task.display().to_string(),
            "--mode".into(),
            "unattended".into(),
        ];
        let env = self.provider_env();
        self.report.argv = argv.clone();
        self.report.cwd = Some(self.workspace().display().to_string());
        self.report.env_names = env.iter().map(|(k, _)| k.clone()).collect();
        report::write(&self.dir, &self.report)?; // still `started`, now naming what will run
        let out_p = self.backend().join("provider-stdout.log");
        let err_p = self.backend().join("provider-stderr.log");
        let out = fs::File::create(&out_p).map_err(Error::io("create", &out_p))?;
        let err = fs::File::create(&err_p).map_err(Error::io("create", &err_p))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(self.workspace())
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(s) = sandbox {
            s.install(&mut cmd);
        }
        crate::runner::become_subreaper();
        let timeout = Duration::from_secs_f64(self.opts.timeout_seconds);
        let o = match crate::runner::run_bounded(cmd, timeout, &self.interrupt) {
            Ok(o) => o,
            Err(e) => {
                self.report.status = RunStatus::Failed;
                self.report.reason = Some(format!("the provider could not be started: {e}"));
                let p = self.backend().join("provider-start-failed.txt");
                fs::write(&p, format!("{e}\n")).map_err(Error::io("write", &p))?;
                return Ok(());
            }
        };
        self.report.provider_exit = Some(ProviderExit {
            pid: o.pid,
            code: o.code,
            signal: o.signal,
            timed_out: o.timed_out,
            interrupted: o.interrupted,
            killed_pids: o.killed.clone(),
        });
        if o.timed_out {
            let p = self.backend().join("provider-timeout.txt");
            let text = format!(
                "provider timed out after {:.3} s (limit {} s); its process group {} was killed\nkilled pids: {}\n",
                o.elapsed.as_secs_f64(),
                self.opts.timeout_seconds,
                o.pid,
                o.killed.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            );
            fs::write(&p, text).map_err(Error::io("write", &p))?;
            self.report.status = RunStatus::ProviderTimeout;
            self.report.reason = Some(format!(
                "provider exceeded its {} s timeout and was killed with its process group",
                self.opts.timeout_seconds
            ));
        } else if o.interrupted {
            let p = self.backend().join("interrupted.txt");
            fs::write(
                &p,
                format!(
                    "cto-ledger was interrupted; provider group {} killed: {:?}\n",
                    o.pid, o.killed
                ),
            )
            .map_err(Error::io("write", &p))?;
            self.report.status = RunStatus::Interrupted;
            self.report.reason = Some("cto-ledger was interrupted (SIGINT/SIGTERM/SIGHUP); the provider's process group was killed".into());
        }
        Ok(())
    }

    fn run_tests(&mut self) -> Result<()> {
        let cmd_v = self.fixture.manifest.test_command.clone();
        let log_p = self.backend().join("tests.log");
        let log = fs::File::create(&log_p).map_err(Error::io("create", &log_p))?;
        let log2 = log.try_clone().map_err(Error::io("open", &log_p))?;
        let mut cmd = Command::new(&cmd_v[0]);
        cmd.args(&cmd_v[1..])
            .current_dir(self.workspace())
            .env_clear()
            .envs(self.base_env())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // The tests import code the provider wrote: the same sandbox, and no network at all.
        let sandbox = if self.opts.no_sandbox {
            Some(SandboxReport::waived("--no-sandbox"))
        } else {
            match crate::sandbox::prepare(&self.sandbox_policy(&[], Net::None)) {
                Ok(p) => {
                    let r = p.report.clone();
                    p.install(&mut cmd);
                    Some(r)
                }
                Err(Unavailable(m)) => {
                    let text = format!(
                        "the tests were not run: they import the provider's code and {m}\n"
                    );
                    fs::write(&log_p, text).map_err(Error::io("write", &log_p))?;
                    self.report.tests = Some(Tests {
                        command: cmd_v,
                        exit_code: None,
                        result: TestResult::Error,
                        log: "backend/tests.log".into(),
                        sandbox: None,
                    });
                    self.report.status = RunStatus::Failed;
                    self.report.reason =
                        Some(format!("the fixture's tests could not be sandboxed: {m}"));
                    return Ok(());
                }
            }
        };
        let (code, result) = match crate::runner::run_bounded(cmd, TEST_TIMEOUT, &self.interrupt) {
            Ok(o) if o.timed_out => (None, TestResult::Timeout),
            Ok(o) if o.interrupted => {
                self.report.status = RunStatus::Interrupted;
                self.report.reason =
                    Some("cto-ledger was interrupted while the fixture's tests ran".into());
                (None, TestResult::Error)
            }
            Ok(o) => {
                let text = fs::read_to_string(&log_p).unwrap_or_default();
                let ran_none = text.contains("Ran 0 tests") || text.contains("NO TESTS RAN");
                (
                    o.code,
                    if o.code == Some(0) && !ran_none {
                        TestResult::Passed
                    } else {
                        TestResult::Failed
                    },
                )
            }
            Err(e) => {
                fs::write(&log_p, format!("could not run {}: {e}\n", cmd_v.join(" ")))
                    .map_err(Error::io("write", &log_p))?;
                (None, TestResult::Error)
            }
        };
        self.report.tests = Some(Tests {
            command: cmd_v,
            exit_code: code,
            result,
            log: "backend/tests.log".into(),
            sandbox,
        });
        if self.report.status == RunStatus::Started {
            if result == TestResult::Passed {
                self.report.status = RunStatus::Passed;
                self.report.verdict = Verdict::Pass;
            } else {
                self.report.status = RunStatus::Failed;
                self.report.reason = Some(format!(
                    "the fixture's tests {result} ({})",
                    self.fixture.manifest.test_command.join(" ")
                ));
            }
        }
        Ok(())
    }

    /// Finalises `report.json`, ingests the run folder and records the run.
    fn finish(&mut self) -> Result<Stage2Out> {
        if self.report.status == RunStatus::Started {
            self.report.status = RunStatus::Error;
            self.report
                .reason
                .get_or_insert_with(|| "the run ended without a verdict".into());
        }
        self.report.finished = Some(now());
        self.report.duration_seconds =
            Some((self.started_at.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        finalize_report(&self.dir, &mut self.report)?;
        let (seq, artifacts) = record_run(self.home, &self.dir, &self.report, &self.evidence)?;
        Ok(Stage2Out {
            report: self.report.clone(),
            run_dir: self.dir.clone(),
            seq,
            artifacts,
        })
    }
}

/// Fills in the workspace changes and the digest of every evidence file, then
/// atomically replaces `report.json`.
fn finalize_report(dir: &Path, report: &mut Report) -> Result<()> {
    if let Ok(st) = crate::git::state(&dir.join("workspace")) {
        report.workspace_changes = st
            .changes
            .iter()
            .map(|(p, s)| Change {
                path: String::from_utf8_lossy(p).into_owned(),
                status: s.to_string(),
            })
            .collect();
    }
    // Every evidence file's digest, .git internals aside (they are in the tree object).
    let mut evidence = Vec::new();
    for ent in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .flatten()
    {
        if !ent.file_type().is_file() {
            continue;
        }
        let rel = ent
            .path()
            .strip_prefix(dir)
            .expect("under run dir")
            .to_string_lossy()
            .into_owned();
        if rel == "report.json" || rel.starts_with(".report-") {
            continue;
        }
        let m = hash_file(ent.path())?;
        evidence.push(Evidence {
            path: rel,
            sha256: m.sha256.to_string(),
            blake3: m.id.to_string(),
            size: m.size,
        });
    }
    report.evidence = evidence;
    report::write(dir, report)
}

/// Ingests a finished run folder and records the run, linked to what its report names.
fn record_run(
    home: &mut Home,
    dir: &Path,
    r: &Report,
    extra: &[(ObjectMeta, ObjKind)],
) -> Result<(u64, usize)> {
    let ing = tree::ingest_path(&home.store, dir, &indicatif::ProgressBar::hidden())?;
    let report_meta = hash_file(&dir.join("report.json"))?;
    let mut artifacts: Vec<ArtifactRec> = r
        .evidence
        .iter()
        .filter_map(|e| {
            Some(ArtifactRec {
                path: e.path.clone(),
                object: ObjectId::parse(&e.blake3).ok()?,
            })
        })
        .collect();
    artifacts.push(ArtifactRec {
        path: "report.json".into(),
        object: report_meta.id,
    });
    let mut all = ing.objects.clone();
    all.extend(extra.iter().copied());
    let objects = crate::source::new_objects(home, &all)?;
    let config = dir.join("backend/case-data/config.json");
    let rec = RunRec {
        id: r.run_id.clone(),
        run_kind: r.kind.clone(),
        fixture: r.fixture.clone(),
        lane: r.lane,
        status: r.status,
        verdict: r.verdict,
        provider_started: !r.argv.is_empty(),
        provider_path: r.provider.path_given.clone(),
        provider_object: r
            .provider
            .blake3
            .as_deref()
            .and_then(|b| ObjectId::parse(b).ok()),
        provider_admission: r.provider.admission.clone(),
        model: r
            .model
            .as_ref()
            .map(|m| format!("{}/{}", m.provider, m.model)),
        model_admission: r.model.as_ref().and_then(|m| m.admission.clone()),
        config_object: if config.is_file() {
            Some(hash_file(&config)?.id)
        } else {
            None
        },
        report_object: Some(report_meta.id),
        tree_object: ing.root.id,
        run_dir: dir.display().to_string(),
        started: r.started.clone(),
        finished: r.finished.clone().unwrap_or_default(),
        sandbox: r
            .sandbox
            .as_ref()
            .filter(|_| !r.argv.is_empty())
            .map(|s| s.summary()),
        artifacts,
        objects,
    };
    let n = rec.artifacts.len();
    let ev = home.commit(vec![Body::Run(rec)])?;
    Ok((ev[0].seq, n))
}

#[derive(Debug, Serialize)]
pub(crate) struct RecoverOut {
    /// Run folders whose harness had died, now finalised as `interrupted` and recorded.
    pub recovered: Vec<String>,
    /// Processes found still working in those folders, killed.
    pub killed_pids: Vec<u32>,
    /// Run folders whose cto-ledger is still running: left alone.
    pub in_progress: Vec<String>,
    /// Temp files of objects left by killed commands (untouched for an hour), removed.
    pub removed_temps: usize,
}

/// Run folders that no `run` event records yet: those under `<home>/runs` and those noted
/// when their run started (anywhere, with `--runs-dir`), as (run id, folder), by folder.
pub(crate) fn unrecorded_run_folders(home: &Home) -> Result<Vec<(String, PathBuf)>> {
    let mut found = std::collections::BTreeMap::new();
    if let Ok(rd) = fs::read_dir(home.runs_dir()) {
        for p in rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            found.insert(p.clone(), name.unwrap_or_default());
        }
    }
    for (id, path) in home.ledger.noted_run_folders()? {
        let p = PathBuf::from(path);
        if p.is_dir() {
            found.insert(p, id);
        }
    }
    let mut out = Vec::new();
    for (path, id) in found {
        if !home.ledger.has_run(&id)? {
            out.push((id, path));
        }
    }
    Ok(out)
}

pub(crate) fn harness_alive(pid: Option<u64>) -> bool {
    pid.is_some_and(|p| {
        fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| {
            exe.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cto-ledger"))
        })
    })
}

/// Finalises and records every run folder whose harness was killed before it could:
/// processes still working inside the folder are killed, `report.json` says
/// `interrupted`, and `backend/harness-killed.txt` says what happened.
pub(crate) fn recover(home: &mut Home) -> Result<RecoverOut> {
    let removed_temps = home
        .store
        .backend()
        .clean_temps(std::time::Duration::from_secs(3600))?;
    let mut out = RecoverOut {
        recovered: Vec::new(),
        killed_pids: Vec::new(),
        in_progress: Vec::new(),
        removed_temps,
    };
    for (name, dir) in unrecorded_run_folders(home)? {
        let report: Option<Report> = fs::read(dir.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if harness_alive(report.as_ref().map(|r| r.harness_pid as u64)) {
            out.in_progress.push(name);
            continue;
        }
        // Anything still running with its working directory in the folder dies now.
        let canon = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        for (pid, state, ..) in crate::runner::processes() {
            let inside =
                fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(&canon));
            if inside && state != 'Z' && pid != std::process::id() {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    out.killed_pids.push(pid);
                }
            }
        }
        let mut report = match report {
            Some(r) => r,
            None => continue_without_report(&name, &dir)?,
        };
        let prior = report.status;
        report.status = RunStatus::Interrupted;
        report.verdict = Verdict::Fail;
        report.reason = Some(format!(
            "the harness (cto-ledger pid {}) stopped before finishing the run (its report said `{prior}`); recorded by `cto-ledger recover`",
            report.harness_pid
        ));
        report.finished = Some(now());
        let note = dir.join("backend/harness-killed.txt");
        fs::create_dir_all(dir.join("backend"))
            .map_err(Error::io("create", dir.join("backend")))?;
        fs::write(
            &note,
            format!(
                "{}
recovered: {}
",
                report.reason.as_deref().unwrap_or_default(),
                now()
            ),
        )
        .map_err(Error::io("write", &note))?;
        finalize_report(&dir, &mut report)?;
        record_run(home, &dir, &report, &[])?;
        out.recovered.push(name);
    }
    Ok(out)
}

/// A run folder killed before its first report was written: make one from its name.
fn continue_without_report(name: &str, dir: &Path) -> Result<Report> {
    let fixture = name
        .split_once('-')
        .and_then(|(_, r)| r.rsplit_once('-'))
        .map(|(f, _)| f.to_string())
        .unwrap_or_default();
    let r = Report::started(
        RunId::from_folder(name.to_string()),
        &fixture,
        Lane::Fake,
        DEFAULT_TIMEOUT_SECONDS,
        1,
        now(),
    );
    report::write(dir, &r)?;
    Ok(r)
}
