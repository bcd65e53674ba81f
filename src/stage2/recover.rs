//! Finishing what a killed harness left: every run folder no `run` event records is
//! finalised as `interrupted` and recorded, whatever is still running inside it killed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Lane, DEFAULT_TIMEOUT_SECONDS};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::RunId;
use crate::ledger::now;
use crate::report::Report;
use crate::state::{RunStatus, Verdict};

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
    /// Run folders that could not be recorded, and why (each left as it was).
    pub failed: Vec<Unrecovered>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Unrecovered {
    pub folder: String,
    pub error: String,
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
/// `interrupted`, and `backend/harness-killed.txt` says what happened. Each folder is
/// its own: one that cannot be recorded is named in `failed` (its report left as it
/// was) and the others are recorded all the same.
pub(crate) fn recover(home: &mut Home) -> Result<RecoverOut> {
    let removed_temps = home
        .store
        .backend()
        .clean_temps(std::time::Duration::from_secs(3600))?;
    let mut out = RecoverOut {
        recovered: Vec::new(),
        killed_pids: Vec::new(),
        in_progress: Vec::new(),
        failed: Vec::new(),
        removed_temps,
    };
    for (name, dir) in unrecorded_run_folders(home)? {
        match recover_one(home, &name, &dir, &mut out.killed_pids) {
            Ok(true) => out.recovered.push(name),
            Ok(false) => out.in_progress.push(name),
            Err(e) => out.failed.push(Unrecovered {
                folder: dir.display().to_string(),
                error: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// Records one folder; `false` when its harness is still running.
fn recover_one(home: &mut Home, name: &str, dir: &Path, killed: &mut Vec<u32>) -> Result<bool> {
    let report: Option<Report> = fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if harness_alive(report.as_ref().map(|r| r.harness_pid as u64)) {
        return Ok(false);
    }
    // Anything still running with its working directory in the folder dies now.
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for p in crate::runner::processes() {
        let pid = p.0;
        let inside = fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(&canon));
        if inside && crate::runner::is_live(&p) && pid != std::process::id() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                killed.push(pid);
            }
        }
    }
    let mut report = report.unwrap_or_else(|| started_from_name(name));
    let prior = report.status;
    report.verdict = Verdict::Fail;
    report.reason = Some(match prior {
        // A gate had blocked it (the provider never started): only its record was lost.
        RunStatus::Blocked => format!(
            "{}; the harness (cto-ledger pid {}) stopped before recording it; recorded by `cto-ledger recover`",
            report.reason.as_deref().unwrap_or("blocked by a gate"),
            report.harness_pid
        ),
        _ => {
            report.status = RunStatus::Interrupted;
            format!(
                "the harness (cto-ledger pid {}) stopped before finishing the run (its report said `{prior}`); recorded by `cto-ledger recover`",
                report.harness_pid
            )
        }
    });
    report.finished = Some(now());
    let backend = dir.join("backend");
    fs::create_dir_all(&backend).map_err(Error::io("create", &backend))?;
    let note = backend.join("harness-killed.txt");
    let text = format!(
        "{}\nrecovered: {}\n",
        report.reason.as_deref().unwrap_or_default(),
        now()
    );
    fs::write(&note, text).map_err(Error::io("write", &note))?;
    // The report is written only as part of its record (after the folder was read).
    super::record::record(home, dir, &mut report, &[], None)?;
    Ok(true)
}

/// A run folder killed before its first report was written: its report, from its name.
fn started_from_name(name: &str) -> Report {
    let fixture = name
        .split_once('-')
        .and_then(|(_, r)| r.rsplit_once('-'))
        .map(|(f, _)| f.to_string())
        .unwrap_or_default();
    Report::started(
        RunId::from_folder(name.to_string()),
        &fixture,
        Lane::Fake,
        DEFAULT_TIMEOUT_SECONDS,
        1,
        now(),
    )
}
