//! Executing the provider: the admitted bytes as the ledger's own executable file, the
//! Case data and model server it is pointed at, its environment and sandbox rules, and
//! the bounded run itself (timeout, interrupt, every process of its group killed).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::gates::{blocked, Gate, Gated};
use super::{fixture, mkdir_private, model, Lane, Run};
use crate::error::{Error, Result};
use crate::id::ObjectMeta;
use crate::report::{self, Model, ProviderExit};
use crate::sandbox::{Net, Policy, Prepared};
use crate::state::RunStatus;
use crate::store::hash_file;

/// Read and execute for every sandboxed process: what programs need from the system.
const SYSTEM_READ_ONLY: [&str; 10] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt", "/proc", "/sys",
];
const DEVICES_READ_ONLY: [&str; 2] = ["/dev/random", "/dev/urandom"];
const DEVICES_READ_WRITE: [&str; 3] = ["/dev/null", "/dev/zero", "/dev/full"];

impl Run<'_> {
    /// The admitted bytes as an executable file: `<ledger>/exec/<blake3>`, made once per
    /// object from the store (re-hashed as they are copied, then again as a file) and
    /// re-hashed before every run that executes it. That file, not the path the user
    /// gave, runs, and no run folder holds a copy. A file there that no longer hashes
    /// to its name is replaced from the store; a damaged store copy blocks the run.
    pub(super) fn materialise(&mut self, m: &ObjectMeta) -> Gated<PathBuf> {
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
                self.make_executable(m, &dir, &p)?;
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
        self.gate_pass(Gate::ProviderBytesVerified, detail);
        Ok(p)
    }

    /// Copies object `m` out of the store into a new file and renames it to `p` once it
    /// re-hashes (mode 0500): concurrent runs each write their own file, the first to
    /// land stays, and only a file that no longer hashes to its name is replaced.
    fn make_executable(&self, m: &ObjectMeta, dir: &Path, p: &Path) -> Gated<()> {
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
                return blocked(Gate::ProviderBytesVerified, format!("the copy of admitted provider {} hashes to {}: refusing to run it", m.id, h.id))
            }
            Err(Error::Integrity { message }) => {
                return blocked(Gate::ProviderBytesVerified, format!("the stored bytes of admitted provider {} are damaged ({message}); refusing to run them", m.sha256))
            }
            Err(e) => return Err(e.into()),
        }
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o500))
            .map_err(Error::io("chmod", tmp.path()))?;
        // Close before the rename: no writable descriptor may be open when it is executed.
        let tmp = tmp.into_temp_path();
        // A good file another run made meanwhile stays: a run's sandbox grants its provider
        // that inode, so replacing it would leave the provider unable to execute itself.
        let tmp = match tmp.persist_noclobber(p) {
            Ok(()) => return Ok(()),
            Err(e) if crate::store::object_id_of_file(p).is_ok_and(|id| id == m.id) => {
                drop(e);
                return Ok(());
            }
            Err(e) => e.path,
        };
        tmp.persist(p)
            .map_err(|e| Error::io("rename into", p)(e.error))?;
        Ok(())
    }

    /// For a scripted model or an admitted endpoint: the loopback server the provider is
    /// pointed at (pi's `models.json` in its home), recording every exchange.
    pub(super) fn start_model_server(&mut self, m: &Model) -> Result<Option<model::ModelServer>> {
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
    pub(super) fn write_case_data(&mut self, model: &Model, served: bool) -> Result<()> {
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

    pub(super) fn base_env(&self) -> Vec<(String, String)> {
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
    pub(super) fn sandbox_policy(&self, extra: &[PathBuf], net: Net) -> Policy {
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

    pub(super) fn run_provider(&mut self, exe: &Path, sandbox: Option<Prepared>) -> Result<()> {
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
}
