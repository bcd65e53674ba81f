//! What a sandboxed process of a run gets: its environment (nothing of the caller's
//! but `PATH` and the variables `CTO_HARNESS_PASS_ENV` names) and its sandbox policy
//! (the system read-only, its own folders read-write, the network its model needs).

use std::fs;
use std::path::{Path, PathBuf};

use super::{Lane, Run};
use crate::sandbox::{Net, Policy};

/// Read and execute for every sandboxed process: what programs need from the system.
const SYSTEM_READ_ONLY: [&str; 10] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt", "/proc", "/sys",
];
const DEVICES_READ_ONLY: [&str; 2] = ["/dev/random", "/dev/urandom"];
const DEVICES_READ_WRITE: [&str; 3] = ["/dev/null", "/dev/zero", "/dev/full"];

impl Run<'_> {
    pub(super) fn base_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                crate::paths::absolute_path_var()
                    .into_string()
                    .unwrap_or_else(|_| crate::paths::DEFAULT_PATH.into()),
            ),
            ("HOME".into(), self.dir.join("home").display().to_string()),
            ("TMPDIR".into(), self.dir.join("tmp").display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
        ]
    }

    pub(super) fn provider_env(&self) -> Vec<(String, String)> {
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
            }
            // The hostile behaviours' targets (a file outside the run, a port, a repository).
            env.extend(self.opts.fake_env.iter().cloned());
            env.push((
                "CTO_FAKE_CA_BEHAVIOR".into(),
                self.opts.fake_behavior.clone(),
            ));
            if self.opts.runs_shipped_fake() {
                env.push((
                    "CTO_FAKE_CA_SOLUTION".into(),
                    self.backend().join("fake-solution").display().to_string(),
                ));
            }
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
    /// Read and write: `read_write` (the provider's workspace, home, temp and Case data
    /// folders; the tests' scratch folder) and the harmless devices.
    pub(super) fn policy(&self, extra: &[PathBuf], read_write: &[PathBuf], net: Net) -> Policy {
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
        let mut rw = read_write.to_vec();
        rw.extend(DEVICES_READ_WRITE.iter().map(PathBuf::from));
        Policy {
            read_only,
            read_write: rw,
            net,
            allow_net: self.opts.allow_net.clone(),
            limits: self.limits.sandbox(),
        }
    }

    /// What the provider may write: its workspace, home, temp and Case data folders.
    pub(super) fn provider_folders(&self) -> Vec<PathBuf> {
        ["workspace", "home", "tmp", "backend/case-data"]
            .iter()
            .map(|d| self.dir.join(d))
            .collect()
    }

    /// Where the fixture's test command is installed, when that is not a system folder
    /// (a pyenv `python3` is a shim under `~/.pyenv`): `<prefix>` of `<prefix>/<dir>/<tool>`,
    /// found on `PATH` only. A command given as a path (`./run-tests.sh`) lives in the
    /// judged tree, already readable; nothing is ever resolved in a folder the provider
    /// wrote. Never a folder that holds the ledger, the run, or a home folder itself.
    fn tool_prefixes(&self) -> Vec<PathBuf> {
        let Some(tool) = self.fixture.manifest.test_command.first() else {
            return Vec::new();
        };
        if tool.contains('/') {
            return Vec::new();
        }
        let path = crate::paths::absolute_path_var();
        let Some(found) = crate::paths::which_on(tool, Path::new("/"), &path) else {
            return Vec::new();
        };
        self.prefixes_of(&found)
    }

    /// The install prefix of the program at `p` (and of where its links lead):
    /// `<prefix>` of `<prefix>/<dir>/<program>`, unless that is a system folder (already
    /// readable) or a folder too wide to open (the root, one holding the ledger or the
    /// run, a home folder itself).
    pub(super) fn prefixes_of(&self, p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let home = crate::env::get_os("HOME").map(PathBuf::from);
        for p in [
            p.to_path_buf(),
            fs::canonicalize(p).unwrap_or(p.to_path_buf()),
        ] {
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
}
