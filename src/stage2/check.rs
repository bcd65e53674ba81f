//! `run stage2 --check`: every gate a run would pass, evaluated as the run would, with
//! nothing started or recorded: no provider, no model server, no journal event, no run
//! folder, no object stored. A blocked run is evidence; a check is how to avoid one.

use std::path::PathBuf;

use serde::Serialize;

use super::gates::Stop;
use super::{mkdir_private, Run, RunOptions};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::RunId;
use crate::report::GateResult;
use crate::state::Lane;

#[derive(Debug, Serialize)]
pub(crate) struct CheckOut {
    pub fixture: String,
    pub lane: Lane,
    /// Whether `run stage2` with these options would start the provider.
    pub ready: bool,
    pub gates: Vec<GateResult>,
}

/// What blocks, as the check reports it: never a file (nothing is written).
fn blocked(name: &str, detail: String) -> GateResult {
    GateResult {
        name: name.into(),
        passed: false,
        detail,
        file: None,
    }
}

pub(crate) fn check_stage2(home: &mut Home, opts: &RunOptions) -> Result<CheckOut> {
    let fixture = match opts.check() {
        Ok(f) => f,
        Err(e) => {
            return Ok(CheckOut {
                fixture: opts.fixture.clone(),
                lane: opts.lane,
                ready: false,
                gates: vec![blocked("fixture_valid", e.to_string())],
            })
        }
    };
    let fixture_gate = GateResult {
        name: "fixture_valid".into(),
        passed: true,
        detail: format!("{} from {}", fixture.manifest.name, fixture.origin),
        file: None,
    };
    // The sandbox is probed against folders laid out as a run's, in a throwaway place.
    let scratch = tempfile::Builder::new()
        .prefix("cto-ledger-check-")
        .tempdir()
        .map_err(Error::io("create a folder in", &std::env::temp_dir()))?;
    let dir = scratch.path().to_path_buf();
    for d in ["workspace", "backend/case-data", "home", "tmp"] {
        mkdir_private(&dir.join(d))?;
    }
    let name = fixture.manifest.name.clone();
    let check_id = RunId::from_folder("check".into());
    let mut run = Run::new(home, opts, fixture, dir, check_id, Default::default(), true);
    run.report.gates.push(fixture_gate);
    run.engine = crate::policy::warm(run.home, crate::state::PolicyPoint::Run)?;
    // From where the run's folder would be (the nearest folder of it that exists).
    let runs = opts.runs_dir.clone().unwrap_or_else(|| run.home.runs_dir());
    let from = crate::paths::abs(&runs)
        .ancestors()
        .find(|a| a.is_dir())
        .map_or_else(|| PathBuf::from("/"), std::path::Path::to_path_buf);
    run.start_resolving_from(from);
    let provider = match run.provider_gates() {
        Ok(m) => Some(m),
        Err(s) => {
            noted(&mut run, s)?;
            None
        }
    };
    let model = match run.model_gate() {
        Ok(_) => true,
        Err(s) => {
            noted(&mut run, s)?;
            false
        }
    };
    if let Some(m) = &provider {
        if let Err(s) = run.executable_check(m) {
            noted(&mut run, s)?;
        }
    }
    sandbox_check(&mut run, model)?;
    interpreter_check(&mut run);
    let gates = std::mem::take(&mut run.report.gates);
    Ok(CheckOut {
        fixture: name,
        lane: opts.lane,
        ready: gates.iter().all(|g| g.passed),
        gates,
    })
}

/// A gate that would block, as the check reports it; a harness failure is an error.
fn noted(run: &mut Run, stop: Stop) -> Result<()> {
    match stop {
        Stop::Blocked(b) => {
            run.report.gates.push(blocked(b.gate.name(), b.message));
            Ok(())
        }
        Stop::Failed(e) => Err(e),
    }
}

/// The sandbox gate as a run would pass it, then (when every gate held) the policies.
fn sandbox_check(run: &mut Run, model: bool) -> Result<()> {
    // What the sandbox would be asked for: the offered file in place of the executable
    // the run would make, and a loopback port when a model server would listen.
    let exe = run
        .report
        .provider
        .path_given
        .as_ref()
        .map(|p| crate::paths::abs(std::path::Path::new(p)))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let port = (model && run.serve.is_some()).then_some(1);
    match run.sandbox_gate(&exe, port) {
        Err(s) => noted(run, s)?,
        Ok(_) if port.is_some() => {
            if let Some(g) = run.report.gates.last_mut() {
                g.detail = g.detail.replacen(
                    "tcp 1",
                    "tcp to the model server's loopback port (chosen when the run starts)",
                    1,
                );
            }
        }
        Ok(_) => {}
    }
    // Policies see the run as its gates left it, so they are asked only when all held.
    if run.report.gates.iter().all(|g| g.passed) {
        if let Err(s) = run.policy_gate() {
            noted(run, s)?;
        }
    }
    Ok(())
}

/// The tests' interpreter, as the judge would resolve it: a run that could not is
/// unjudgeable, so the check says so first.
fn interpreter_check(run: &mut Run) {
    let argv0 = run.fixture.manifest.test_command[0].clone();
    let resolvable = super::judge::bare_python(&argv0);
    match run.interpreter() {
        Some(p) => run.report.gates.push(GateResult {
            name: "tests_interpreter".into(),
            passed: true,
            detail: format!("`{argv0}` resolves to {}", p.display()),
            file: None,
        }),
        None if resolvable => run.report.gates.push(blocked(
            "tests_interpreter",
            format!("the test command's interpreter `{argv0}` could not be resolved (it named no file, or did not answer within 10 s): a run would be unjudgeable"),
        )),
        None => {}
    }
}
