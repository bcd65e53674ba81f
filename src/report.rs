//! `report.json`: the one document every Stage 2 run folder holds. It is written
//! with status `started` before the provider starts and atomically replaced at
//! the end, so no run folder ever lacks one. Shape: `schema/stage2-report.schema.json`.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{AdmissionId, BuildId, CommitId, ModelAdmissionId, ObjectId, RunId, Sha256Digest};
use crate::sandbox::SandboxReport;
use crate::state::{Lane, RunStatus, TestResult, Verdict};

pub(crate) const SCHEMA: &str = "cto-ledger/stage2-report/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub schema: String,
    pub run_id: RunId,
    pub kind: String,
    pub fixture: String,
    /// A fake pass is never a real pass.
    pub lane: Lane,
    /// The cto-ledger process that ran the harness (to tell a live run from an abandoned one).
    pub harness_pid: u32,
    pub status: RunStatus,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    pub duration_seconds: Option<f64>,
    pub timeout_seconds: f64,
    pub gates: Vec<GateResult>,
    /// Every policy evaluated at the `policy_allowed` gate (absent when none applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<crate::ledger::events::PolicyDecisionRec>,
    pub provider: Provider,
    pub model: Option<Model>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    /// Names (never values) of the environment variables the provider received.
    pub env_names: Vec<String>,
    pub provider_exit: Option<ProviderExit>,
    /// How much the provider printed, and how much of it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    /// Every limit the run was held to, what enforced it, and whether it was hit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    /// The kernel sandbox the provider ran in (absent in reports made before there was one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxReport>,
    pub tests: Option<Tests>,
    /// How the judge composed what the tests ran on, and what the provider did to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<Judge>,
    pub workspace_changes: Vec<Change>,
    pub evidence: Vec<Evidence>,
    /// `config.json` as the harness wrote it for the provider, before it started: what
    /// the run records as its configuration (the copy in `backend/case-data` is the
    /// provider's to change, and is evidence like any other file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Evidence>,
    /// Parts of the run folder that could not be stored, and why (the rest was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecorded: Vec<Unrecorded>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Unrecorded {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GateResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// The file under `backend/` written when this gate blocked.
    pub file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Provider {
    pub path_given: Option<String>,
    pub executed: Option<String>,
    pub sha256: Option<Sha256Digest>,
    pub blake3: Option<ObjectId>,
    pub admission: Option<AdmissionId>,
    pub admission_name: Option<String>,
    pub source_pin: Option<String>,
    pub source_commit: Option<CommitId>,
    pub source_url: Option<String>,
    pub build: Option<BuildId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Model {
    pub provider: String,
    pub model: String,
    pub admission: Option<ModelAdmissionId>,
    /// The admitted endpoint the run's exchanges were forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The scripted model's script, as admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_sha256: Option<Sha256Digest>,
    /// The loopback URL the provider was given as its model's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_at: Option<String>,
    /// Model requests answered during the run, each a line of `transcript`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanges: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

impl Model {
    pub(crate) fn named(provider: &str, model: &str, admission: Option<ModelAdmissionId>) -> Model {
        Model {
            provider: provider.into(),
            model: model.into(),
            admission,
            endpoint: None,
            script_sha256: None,
            served_at: None,
            exchanges: None,
            transcript: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProviderExit {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// Processes still alive in the provider's group (or orphaned to the harness) that were killed.
    pub killed_pids: Vec<u32>,
}

/// The provider's stdout and stderr as kept (`backend/provider-*.log`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Output {
    pub stdout: crate::stage2::Captured,
    pub stderr: crate::stage2::Captured,
}

/// One limit of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Limit {
    pub name: String,
    pub value: u64,
    /// What enforced it (`not enforced: ...` when nothing could).
    pub by: String,
    pub enforced: bool,
    pub hit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tests {
    /// The fixture's test command.
    pub command: Vec<String>,
    /// What was run (the interpreter isolated), and where (relative to the run folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    pub exit_code: Option<i32>,
    pub result: TestResult,
    pub log: String,
    /// The sandbox the tests ran in: they import code the provider wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxReport>,
    /// How much the tests printed (both streams, into the log), and how much was kept:
    /// within `stdout_bytes`, as the provider's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<crate::stage2::Captured>,
}

/// What the judge ran the tests on: the fixture's tests, in a tree composed from the
/// fixture's files for every protected path and the provider's for the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Judge {
    /// The fixture's repository as stored when the run started.
    pub fixture_tree: ObjectId,
    /// The workspace as the provider left it.
    pub workspace_tree: Option<ObjectId>,
    /// The tree the tests ran in.
    pub judged_tree: Option<ObjectId>,
    /// The protected paths alone (the tests that judged): always the fixture's.
    pub tests_tree: Option<ObjectId>,
    pub protected: Vec<String>,
    pub tampering: crate::stage2::fixture::Tampering,
    /// Protected paths the provider changed, added or removed, and files it added that
    /// would shadow the test runner.
    pub tampered: Vec<Tamper>,
    /// What was left out of the judged tree and why (bytecode caches, special files).
    pub dropped: Vec<Dropped>,
    /// How the tests were kept from what the provider wrote.
    pub isolation: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tamper {
    pub path: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Dropped {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Change {
    pub path: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Evidence {
    pub path: String,
    pub sha256: Sha256Digest,
    pub blake3: ObjectId,
    pub size: u64,
}

impl Report {
    /// The report a run starts with: status `started`, nothing known yet.
    pub(crate) fn started(
        run_id: RunId,
        fixture: &str,
        lane: Lane,
        timeout_seconds: f64,
        harness_pid: u32,
        started: String,
    ) -> Report {
        Report {
            schema: SCHEMA.into(),
            run_id,
            kind: "stage2".into(),
            fixture: fixture.into(),
            lane,
            harness_pid,
            status: RunStatus::Started,
            verdict: Verdict::Fail,
            reason: None,
            started,
            finished: None,
            duration_seconds: None,
            timeout_seconds,
            gates: Vec::new(),
            policies: Vec::new(),
            provider: Provider::default(),
            model: None,
            argv: Vec::new(),
            cwd: None,
            env_names: Vec::new(),
            provider_exit: None,
            output: None,
            limits: Vec::new(),
            sandbox: None,
            tests: None,
            judge: None,
            workspace_changes: Vec::new(),
            evidence: Vec::new(),
            unrecorded: Vec::new(),
            config: None,
        }
    }
}

/// Writes `report.json` in `dir` atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write(dir: &Path, report: &Report) -> Result<()> {
    let target = dir.join("report.json");
    let mut tmp = tempfile::Builder::new()
        .prefix(".report-")
        .tempfile_in(dir)
        .map_err(Error::io("create temporary report in", dir))?;
    let mut bytes = serde_json::to_vec_pretty(report).expect("report serialises");
    bytes.push(b'\n');
    tmp.write_all(&bytes).map_err(Error::io("write", &target))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("fsync", &target))?;
    tmp.persist(&target).map_err(|e| Error::Io {
        action: "replace",
        path: target.clone(),
        source: e.error,
    })?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::started(
            RunId::from_folder("20261201T000000Z-fx-1".into()),
            "fx",
            Lane::Fake,
            900.0,
            1,
            "2026-12-01T00:00:00.000Z".into(),
        )
    }

    #[test]
    fn write_replaces_the_report_whole_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = report();
        write(tmp.path(), &r).unwrap();
        r.status = RunStatus::Passed;
        r.verdict = Verdict::Pass;
        write(tmp.path(), &r).unwrap();
        let bytes = fs::read(tmp.path().join("report.json")).unwrap();
        assert!(bytes.ends_with(b"}\n"));
        let back: Report = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
        assert_eq!(back.schema, SCHEMA);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"], "a temp file was left behind");
    }

    #[test]
    fn a_report_that_cannot_be_written_is_an_error_naming_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("no-such-run");
        let e = write(&gone, &report()).unwrap_err().to_string();
        assert!(e.contains("no-such-run"), "{e}");
    }
}
