//! The judge: the fixture's tests decide the verdict, never the provider's exit code
//! (the real `ca` exits 0 when its pipeline failed).

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Run;
use crate::error::{Error, Result};
use crate::report::Tests;
use crate::sandbox::{Net, SandboxReport, Unavailable};
use crate::state::{RunStatus, TestResult, Verdict};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Run<'_> {
    /// Runs the fixture's tests in the workspace, in the sandbox, with no network; the
    /// verdict is theirs, never the provider's exit code.
    pub(super) fn run_tests(&mut self) -> Result<()> {
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
}
