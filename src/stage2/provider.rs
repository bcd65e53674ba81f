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
use super::{fixture, mkdir_private, model, Run};
use crate::error::{Error, Result};
use crate::id::ObjectMeta;
use crate::report::{self, Model, ProviderExit};
use crate::sandbox::Prepared;
use crate::state::RunStatus;
use crate::store::hash_file;

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

    /// What `materialise` would do, for `--check`: nothing is written.
    pub(super) fn executable_check(&mut self, m: &ObjectMeta) -> Gated<()> {
        let p = self.home.dir.join("exec").join(m.id.hex());
        let detail = if crate::store::object_id_of_file(&p).is_ok_and(|id| id == m.id) {
            format!("would execute {}, re-hashed to {}", p.display(), m.id)
        } else if self.home.store.has(&m.id)? {
            format!("would execute {}, made from the store", p.display())
        } else if self.opts.runs_shipped_fake() {
            format!(
                "would execute {}, made from the shipped fake once it is admitted",
                p.display()
            )
        } else {
            return blocked(
                Gate::ProviderBytesVerified,
                format!("the admitted object {} is not in the store: `cto-ledger audit` says what is missing", m.id),
            );
        };
        self.gate_pass(Gate::ProviderBytesVerified, detail);
        Ok(())
    }

    /// Copies object `m` out of the store into a new file and renames it to `p` once it
    /// re-hashes (mode 0500): concurrent runs each write their own file, the first to
    /// land stays, and only a file that no longer hashes to its name is replaced.
    fn make_executable(&self, m: &ObjectMeta, dir: &Path, p: &Path) -> Gated<()> {
        if self.share_store_copy(m, p)? {
            return Ok(());
        }
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

    /// One copy of each provider: when the admitted object is a loose file of the local
    /// store, `exec/<id>` is a hard link to it, made executable (mode 0555: still
    /// read-only, as every object is). Its bytes are re-hashed (BLAKE3 and SHA-256) first;
    /// a damaged store copy blocks the run as a damaged copy would. Returns false, to copy
    /// instead, when there is no loose file or no link can be made (another filesystem).
    fn share_store_copy(&self, m: &ObjectMeta, p: &Path) -> Gated<bool> {
        let Some(local) = self.home.store.backend().local() else {
            return Ok(false);
        };
        let obj = local.path_of(&m.id);
        if !fs::symlink_metadata(&obj).is_ok_and(|x| x.is_file()) {
            return Ok(false);
        }
        let h = hash_file(&obj)?;
        if h.id != m.id || h.sha256 != m.sha256 {
            return blocked(Gate::ProviderBytesVerified, format!("the stored bytes of admitted provider {} are damaged (they hash to {}); refusing to run them", m.sha256, h.id));
        }
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o555))
            .map_err(Error::io("chmod", &obj))?;
        // A file that is there but not these bytes (checked by `materialise`) goes first.
        if fs::symlink_metadata(p).is_ok()
            && !crate::store::object_id_of_file(p).is_ok_and(|id| id == m.id)
        {
            fs::remove_file(p).map_err(Error::io("remove", p))?;
        }
        match fs::hard_link(&obj, p) {
            Ok(()) => Ok(true),
            // Another run linked it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(crate::store::object_id_of_file(p).is_ok_and(|id| id == m.id))
            }
            Err(_) => Ok(false),
        }
    }

    /// For a scripted model or an admitted endpoint: the loopback server the provider is
    /// pointed at (pi's `models.json` in its home), recording every exchange.
    pub(super) fn start_model_server(&mut self, m: &Model) -> Result<Option<model::ModelServer>> {
        let Some(backend) = self.serve.take() else {
            return Ok(None);
        };
        let base = backend.base_path().to_string();
        let bounds = model::Bounds {
            deadline: std::time::Instant::now()
                + Duration::from_secs_f64(self.opts.timeout_seconds + 5.0),
            response_bytes: self.limits.model_response_bytes,
            transcript_bytes: self.limits.folder_bytes,
        };
        let server = model::ModelServer::start(
            backend,
            &m.model,
            &self.dir.join(model::TRANSCRIPT),
            bounds,
        )?;
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
        let cfg = serde_json::to_vec_pretty(&config).expect("json");
        fs::write(&cfg_path, &cfg).map_err(Error::io("write", &cfg_path))?;
        // Stored as written, before the provider can change the copy it is given.
        let m = self.home.store.put_bytes(&cfg)?;
        self.evidence.push((m, crate::store::tree::ObjKind::Blob));
        self.report.config = Some(crate::report::Evidence {
            path: "backend/case-data/config.json".into(),
            sha256: m.sha256,
            blake3: m.id,
            size: m.size,
        });
        let pj = data.join("projects.json");
        fs::write(&pj, serde_json::to_vec_pretty(&projects).expect("json"))
            .map_err(Error::io("write", &pj))?;
        if self.opts.runs_shipped_fake() && !self.fixture.solution.is_empty() {
            fixture::write_files(
                &self.backend().join("fake-solution"),
                &self.fixture.solution,
            )?;
        }
        Ok(())
    }

    /// Runs the provider: `ca run --task <task> --mode unattended` in its workspace, in
    /// its sandbox, bounded by the timeout and the run's limits; what it prints is kept
    /// within the limits.
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
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(self.workspace())
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::runner::become_subreaper();
        let timeout = Duration::from_secs_f64(self.opts.timeout_seconds);
        let (limits, folders) = (self.limits, self.provider_folders());
        let mut watch = || super::limits::over(&folders, &limits);
        let logs = [
            (
                self.backend().join("provider-stdout.log"),
                limits.stdout_bytes,
            ),
            (
                self.backend().join("provider-stderr.log"),
                limits.stderr_bytes,
            ),
        ];
        let mut captures = Vec::new();
        let ran =
            crate::runner::run_confined(cmd, sandbox, timeout, &self.interrupt, &mut watch, |c| {
                let pipes: [Option<std::os::fd::OwnedFd>; 2] = [
                    c.stdout.take().map(Into::into),
                    c.stderr.take().map(Into::into),
                ];
                for (pipe, (path, limit)) in pipes.into_iter().zip(&logs) {
                    if let Some(p) = pipe {
                        captures.push(super::capture::start(p, path, *limit));
                    }
                }
            });
        let mut kept = Vec::new();
        for c in captures {
            kept.push(c?.finish()?);
        }
        let o = match ran {
            Ok(o) => o,
            Err(e) => {
                self.report.status = RunStatus::Failed;
                self.report.reason = Some(format!("the provider could not be started: {e}"));
                let p = self.backend().join("provider-start-failed.txt");
                fs::write(&p, format!("{e}\n")).map_err(Error::io("write", &p))?;
                return Ok(());
            }
        };
        let output = match kept.as_slice() {
            [out, err] => crate::report::Output {
                stdout: *out,
                stderr: *err,
            },
            _ => crate::report::Output::default(),
        };
        self.report.provider_exit = Some(ProviderExit {
            pid: o.pid,
            code: o.code,
            signal: o.signal,
            timed_out: o.timed_out,
            interrupted: o.interrupted,
            killed_pids: o.killed.clone(),
        });
        self.report.limits =
            super::limits::report(&self.limits, &o, &output, self.report.sandbox.as_ref());
        self.report.output = Some(output);
        self.provider_ended(&o)
    }

    /// The report and the backend file of how the provider ended, when it did not end
    /// by itself: timed out, interrupted, or stopped at a limit.
    fn provider_ended(&mut self, o: &crate::runner::Outcome) -> Result<()> {
        let killed = o
            .killed
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let (file, status, text, reason) = if o.timed_out {
            (
                "provider-timeout.txt",
                RunStatus::ProviderTimeout,
                format!(
                    "provider timed out after {:.3} s (limit {} s); its process group {} was killed\nkilled pids: {killed}\n",
                    o.elapsed.as_secs_f64(),
                    self.opts.timeout_seconds,
                    o.pid
                ),
                format!(
                    "provider exceeded its {} s timeout and was killed with its process group",
                    self.opts.timeout_seconds
                ),
            )
        } else if o.interrupted {
            (
                "interrupted.txt",
                RunStatus::Interrupted,
                format!("cto-ledger was interrupted; provider group {} killed: {killed}\n", o.pid),
                "cto-ledger was interrupted (SIGINT/SIGTERM/SIGHUP); the provider's process group was killed".to_string(),
            )
        } else if let Some(why) = &o.limited {
            (
                "provider-output-limit.txt",
                RunStatus::ProviderOutputLimit,
                format!("provider stopped after {:.3} s: {why}; its process group {} was killed\nkilled pids: {killed}\n{}", o.elapsed.as_secs_f64(), o.pid, self.held()),
                format!("provider_output_limit: {why}; it was killed with everything it started; its folders were listed, not kept"),
            )
        } else {
            return Ok(());
        };
        let p = self.backend().join(file);
        fs::write(&p, text).map_err(Error::io("write", &p))?;
        if o.limited.is_some() {
            self.discard_folders();
        }
        self.report.status = status;
        self.report.reason = Some(reason);
        Ok(())
    }

    /// What the provider's folders held when it was stopped: each folder's totals and
    /// the largest files, for the record of a run whose folders are not kept.
    fn held(&self) -> String {
        let mut out = String::from("\nwhat its folders held when it was stopped:\n");
        let mut largest = Vec::new();
        for f in self.provider_folders() {
            let u = super::limits::usage(std::slice::from_ref(&f), self.limits.folder_entries, 20);
            let more = if u.entries > self.limits.folder_entries {
                " or more"
            } else {
                ""
            };
            let unmeasured = u
                .unmeasured
                .map(|w| format!(" (then {w})"))
                .unwrap_or_default();
            out += &format!(
                "  {}: {} bytes in {} entries{more}{unmeasured}\n",
                self.rel(&f),
                u.bytes,
                u.entries
            );
            largest.extend(u.largest);
        }
        largest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        out += "its largest files:\n";
        for (len, p) in largest.iter().take(20) {
            out += &format!("  {len:>12}  {}\n", self.rel(p));
        }
        out
    }

    /// A provider stopped at its folder limit holds more than the run may keep, by as
    /// much as it could write between two looks: its folders are not stored, judged or
    /// left on disk (`held` listed them), and the report says so of each.
    fn discard_folders(&mut self) {
        for f in self.provider_folders() {
            if fs::symlink_metadata(&f).is_err() {
                continue;
            }
            super::record::make_removable(&f);
            let kept = "not stored: the provider was stopped at its folder limit";
            let error = match fs::remove_dir_all(&f) {
                Ok(()) => format!(
                    "{kept}, and removed; backend/provider-output-limit.txt lists what it held"
                ),
                Err(e) => format!("{kept}; it could not be removed either: {e}"),
            };
            let path = self.rel(&f);
            self.report
                .unrecorded
                .push(report::Unrecorded { path, error });
        }
    }

    /// `p` as a path in the run folder, escaped.
    fn rel(&self, p: &Path) -> String {
        crate::paths::escaped(p.strip_prefix(&self.dir).unwrap_or(p))
    }
}
