//! `cto-ledger health`: the Stage 2 promises checked end to end in a throwaway
//! ledger, each reported by name. It sits above Stage 2 and admission and drives them
//! as a user would: admit a provider from a real clone, then run it every hostile way.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::Mode;
mod escape;
mod judge;

use crate::stage2::{run_stage2, shipped_fake, Lane, RunOptions, Stage2Out};
use crate::state::{RunStatus, Verdict};

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct HealthOut {
    pub ok: bool,
    pub checks: Vec<Check>,
}

struct Ctx {
    home: Home,
    tmp: PathBuf,
    runs: Vec<PathBuf>,
    fake: PathBuf,
    /// The provider admitted with a real pin, or why that setup failed.
    admitted: std::result::Result<PathBuf, String>,
    /// The hostile provider's run, made by the first sandbox check.
    escape: Option<std::result::Result<Escape, String>>,
}

/// What the hostile fake (`--fake-behavior escape`) and the code it planted in the
/// fixture's tests managed: attempt name → (succeeded, detail).
type Attempts = Vec<(String, bool, String)>;

#[derive(Clone)]
struct Escape {
    status: RunStatus,
    provider: Attempts,
    tests: Attempts,
    planted: Vec<String>,
}

impl Ctx {
    fn run(&mut self, mut o: RunOptions) -> Result<Stage2Out> {
        o.runs_dir = Some(self.tmp.join("runs"));
        let out = run_stage2(&mut self.home, &o)?;
        self.runs.push(out.run_dir.clone());
        Ok(out)
    }
}

fn started(run_dir: &Path) -> bool {
    run_dir.join("home/fake-ca-started").exists()
}

fn blocked_with(out: &Stage2Out, file: &str) -> (bool, String) {
    let has_file = out.run_dir.join("backend").join(file).exists();
    let ran = started(&out.run_dir);
    let pass = out.report.status == RunStatus::Blocked && has_file && !ran;
    (
        pass,
        format!(
            "status {}, backend/{file} {}, provider {}",
            out.report.status,
            if has_file { "written" } else { "MISSING" },
            if ran { "STARTED" } else { "never started" }
        ),
    )
}

fn append_byte(p: &Path) -> Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(p)
        .and_then(|mut f| f.write_all(b"\0"))
        .map_err(Error::io("modify", p))
}

type CheckFn = fn(&mut Ctx) -> Result<(bool, String)>;

pub(crate) fn run() -> Result<HealthOut> {
    let fake = shipped_fake().filter(|p| p.is_file()).ok_or_else(|| {
        Error::bad_input(
            format!(
                "the fake provider {} is not installed beside cto-ledger",
                crate::stage2::FAKE_BIN
            ),
            "build or install both binaries (cargo build / cargo install --path .)",
        )
    })?;
    let tmp = tempfile::Builder::new()
        .prefix("cto-ledger-health-")
        .tempdir()
        .map_err(Error::io("create", std::env::temp_dir()))?;
    let home = Home::open(&tmp.path().join("ledger"), Mode::ReadWrite)?;
    let mut cx = Ctx {
        home,
        tmp: tmp.path().to_path_buf(),
        runs: Vec::new(),
        fake,
        admitted: Err(String::new()),
        escape: None,
    };
    let all: [(&'static str, CheckFn); 26] = [
        ("fake_lane_passes", fake_lane_passes),
        ("provider_timeout_fail_closed", provider_timeout_fail_closed),
        ("grandchild_killed_on_timeout", grandchild_killed_on_timeout),
        ("model_provider_gate_blocks", model_provider_gate_blocks),
        ("provider_unavailable_blocks", provider_unavailable_blocks),
        ("unadmitted_provider_blocks", unadmitted_provider_blocks),
        ("tampered_provider_blocks", tampered_provider_blocks),
        (
            "sandbox_blocks_ledger_read",
            escape::sandbox_blocks_ledger_read,
        ),
        (
            "sandbox_blocks_ledger_write",
            escape::sandbox_blocks_ledger_write,
        ),
        (
            "sandbox_blocks_outside_read",
            escape::sandbox_blocks_outside_read,
        ),
        ("sandbox_blocks_network", escape::sandbox_blocks_network),
        ("sandbox_blocks_signals", escape::sandbox_blocks_signals),
        (
            "sandbox_drops_capabilities",
            escape::sandbox_drops_capabilities,
        ),
        (
            "sandbox_blocks_mode_changes",
            escape::sandbox_blocks_mode_changes,
        ),
        ("sandbox_hides_the_host", escape::sandbox_hides_the_host),
        (
            "judge_ignores_a_shadowed_runner",
            judge::judge_ignores_a_shadowed_runner,
        ),
        (
            "judge_ignores_a_shadowed_test_module",
            judge::judge_ignores_a_shadowed_test_module,
        ),
        (
            "judge_runs_the_fixtures_tests",
            judge::judge_runs_the_fixtures_tests,
        ),
        (
            "changes_come_from_the_store",
            judge::changes_come_from_the_store,
        ),
        ("gitdir_is_never_followed", judge::gitdir_is_never_followed),
        ("nothing_outlives_the_run", judge::nothing_outlives_the_run),
        (
            "special_files_never_stop_the_record",
            judge::special_files_never_stop_the_record,
        ),
        ("output_is_bounded", judge::output_is_bounded),
        ("folders_are_bounded", judge::folders_are_bounded),
        ("model_stream_is_bounded", judge::model_stream_is_bounded),
        ("report_always_written", report_always_written),
    ];
    cx.admitted = admit_provider(&mut cx).map_err(|e| e.to_string());
    let mut checks = Vec::new();
    for (name, f) in all {
        let (pass, detail) = f(&mut cx).unwrap_or_else(|e| (false, format!("error: {e}")));
        checks.push(Check { name, pass, detail });
    }
    let ok = checks.iter().all(|c| c.pass);
    Ok(HealthOut { ok, checks })
}

/// A provider admitted the real way: a clone, a commit, a pin. Its bytes differ
/// from the shipped fake's, so only this admission covers them.
fn admit_provider(cx: &mut Ctx) -> Result<PathBuf> {
    let clone = cx.tmp.join("provider-src");
    fs::create_dir_all(&clone).map_err(Error::io("create", &clone))?;
    fs::write(clone.join(".gitignore"), "dist/\n").map_err(Error::io("write", &clone))?;
    let commit = crate::git::init_and_commit(&clone, "provider source")?;
    let pin = &commit[..7];
    fs::create_dir_all(clone.join("dist")).map_err(Error::io("create", &clone))?;
    let bin = clone.join("dist/ca");
    fs::copy(&cx.fake, &bin).map_err(Error::io("copy", &bin))?;
    append_byte(&bin)?;
    let args = crate::admission::AdmitArgs {
        path: &bin,
        pin,
        name: Some("ca"),
        source: None,
        allow_modified: &[],
        require_reproducible: false,
    };
    crate::admission::admit(&mut cx.home, &args, &ProgressBar::hidden())?;
    Ok(bin)
}

fn admitted(cx: &Ctx) -> Result<PathBuf> {
    cx.admitted.clone().map_err(|e| {
        Error::bad_input(
            format!("admitting a test provider failed: {e}"),
            "see the error above",
        )
    })
}

fn fake_lane_passes(cx: &mut Ctx) -> Result<(bool, String)> {
    let o = cx.run(RunOptions::fake("solve"))?;
    let r = &o.report;
    let tests = r.tests.as_ref().map(|t| t.result.as_str()).unwrap_or("-");
    Ok((
        r.status == RunStatus::Passed && r.verdict == Verdict::Pass && r.lane == Lane::Fake,
        format!("status {}, verdict {}, tests {tests}", r.status, r.verdict),
    ))
}

fn provider_timeout_fail_closed(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut opts = RunOptions::fake("hang");
    opts.timeout_seconds = 2.0;
    let o = cx.run(opts)?;
    let file = o.run_dir.join("backend/provider-timeout.txt").exists();
    let pass =
        o.report.status == RunStatus::ProviderTimeout && o.report.verdict == Verdict::Fail && file;
    Ok((
        pass,
        format!(
            "status {}, provider-timeout.txt {}",
            o.report.status,
            if file { "written" } else { "MISSING" }
        ),
    ))
}

/// How many processes the fake noted it started in the run in `dir`, and the host's
/// pids of the run's processes still alive.
pub(super) fn noted_and_left(dir: &Path) -> (usize, Vec<u32>) {
    let noted = fs::read_to_string(dir.join("home/fake-ca-pids"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim().parse::<u32>().is_ok())
        .count();
    (noted, crate::runner::left_running(&dir.join("home")))
}

fn grandchild_killed_on_timeout(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut opts = RunOptions::fake("hang-grandchild");
    opts.timeout_seconds = 2.0;
    let o = cx.run(opts)?;
    let (noted, alive) = noted_and_left(&o.run_dir);
    let pass = o.report.status == RunStatus::ProviderTimeout && noted >= 2 && alive.is_empty();
    Ok((
        pass,
        format!("{noted} provider pids recorded, alive afterwards: {alive:?}"),
    ))
}

fn model_provider_gate_blocks(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut opts = RunOptions::fake("solve");
    opts.lane = Lane::Case;
    opts.provider_bin = Some(admitted(cx)?);
    let o = cx.run(opts.clone())?;
    let (p1, d1) = blocked_with(&o, "provider-model-not-admitted.txt");
    opts.model_provider = Some("anthropic".into());
    opts.model = Some("claude-sonnet-4-6".into());
    let o = cx.run(opts)?;
    let (p2, d2) = blocked_with(&o, "provider-model-not-admitted.txt");
    Ok((
        p1 && p2,
        format!("model unset: {d1}; model set but not admitted: {d2}"),
    ))
}

fn provider_unavailable_blocks(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut opts = RunOptions::fake("solve");
    opts.lane = Lane::Case;
    opts.provider_bin = Some(cx.tmp.join("no-such-ca"));
    let o = cx.run(opts)?;
    Ok(blocked_with(&o, "provider-unavailable.txt"))
}

fn unadmitted_provider_blocks(cx: &mut Ctx) -> Result<(bool, String)> {
    let other = cx.tmp.join("unadmitted-ca");
    fs::copy(&cx.fake, &other).map_err(Error::io("copy", &other))?;
    append_byte(&other)?;
    append_byte(&other)?;
    let mut opts = RunOptions::fake("solve");
    opts.provider_bin = Some(other);
    let o = cx.run(opts)?;
    Ok(blocked_with(&o, "provider-not-admitted.txt"))
}

fn tampered_provider_blocks(cx: &mut Ctx) -> Result<(bool, String)> {
    let bin = admitted(cx)?;
    // 1. The file at the admitted path is replaced after admission.
    let pristine = cx.tmp.join("pristine-ca");
    fs::copy(&bin, &pristine).map_err(Error::io("copy", &pristine))?;
    append_byte(&bin)?;
    let mut opts = RunOptions::fake("solve");
    opts.provider_bin = Some(bin.clone());
    let o = cx.run(opts.clone())?;
    let (p1, d1) = blocked_with(&o, "provider-not-admitted.txt");
    // 2. The admitted bytes in the store are damaged: the copy that would run fails its re-hash.
    opts.provider_bin = Some(pristine.clone());
    let m = crate::store::hash_file(&pristine)?;
    let obj = cx
        .home
        .dir
        .join("objects")
        .join(&m.id.hex()[..2])
        .join(&m.id.hex()[2..]);
    fs::set_permissions(&obj, fs::Permissions::from_mode(0o644))
        .map_err(Error::io("chmod", &obj))?;
    append_byte(&obj)?;
    let o = cx.run(opts)?;
    let (p2, d2) = blocked_with(&o, "provider-not-admitted.txt");
    Ok((
        p1 && p2,
        format!("file replaced: {d1}; store copy damaged: {d2}"),
    ))
}

fn report_always_written(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut bad = Vec::new();
    for r in &cx.runs {
        let ok = fs::read(r.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["status"].as_str().is_some_and(|s| s != "started"));
        if !ok {
            bad.push(r.display().to_string());
        }
    }
    Ok((
        bad.is_empty() && !cx.runs.is_empty(),
        format!(
            "{} run folders, {} without a final report.json {bad:?}",
            cx.runs.len(),
            bad.len()
        ),
    ))
}
