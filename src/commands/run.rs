//! `cto-ledger run stage2`: run an admitted provider against a fixture, record all evidence.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use super::{text::R, Context, Output};
use crate::error::{Error, Result};
use crate::harness::suite::SuiteOut;
use crate::harness::{self, Lane, RunOptions, Stage2Out};
use crate::ledger::Mode;
use crate::state::Verdict;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Run an admitted provider against a Stage 2 fixture and record all evidence
    Stage2(Stage2Args),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProviderArg {
    Fake,
    Case,
}

#[derive(clap::Args, Clone)]
pub(crate) struct Stage2Args {
    /// Built-in fixture name or a fixture directory; repeat the flag for a suite
    #[arg(long, default_value = "r1-string-slugify")]
    fixture: Vec<String>,
    /// Run every fixture N times, each as its own recorded run
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: u32,
    /// Runs at a time (a suite: more than one fixture, --repeat or --jobs)
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Lane: fake (default) or case (the real WorkOS Case; implied by CTO_HARNESS_CASE_BIN)
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Provider executable (default: CTO_HARNESS_CASE_BIN, or the shipped fake `ca`)
    #[arg(long, value_name = "PATH")]
    provider_bin: Option<PathBuf>,
    /// Seconds before the provider's process group is killed (default: CTO_HARNESS_CASE_TIMEOUT_SECONDS or 900)
    #[arg(long)]
    timeout: Option<f64>,
    /// Fake lane behaviour: solve, fail, hang, hang-grandchild, crash, noop, escape
    #[arg(long, default_value = "solve")]
    fake_behavior: String,
    /// Run the provider and the tests without the kernel sandbox (recorded in the report and the journal)
    #[arg(long)]
    no_sandbox: bool,
    /// Also let the provider connect to this TCP port (repeatable; recorded)
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..=65535))]
    allow_net: Vec<u16>,
    /// Where run folders go (default: <ledger>/runs)
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    let Cmd::Stage2(a) = cmd;
    if a.fixture.len() > 1 || a.repeat > 1 || a.jobs.is_some() {
        return suite(cx, a);
    }
    let mut home = cx.open(Mode::ReadWrite)?;
    let opts = options(a)?;
    let r = harness::run_stage2(&mut home, &opts)?;
    let pass = r.report.verdict == Verdict::Pass;
    Ok(Output::doc(r, text).negative_unless(pass))
}

/// A suite: everything a run would refuse is refused before any run starts; then each
/// run is its own `run stage2` process with the same options.
fn suite(cx: &Context, a: Stage2Args) -> Result<Output> {
    for f in &a.fixture {
        harness::fixture::load(f)?;
    }
    let opts = options(Stage2Args {
        fixture: vec![a.fixture[0].clone()],
        ..a.clone()
    })?;
    harness::check_fake_behavior(&opts)?;
    // The ledger exists (and is migrated) before the runs race to open it.
    let home = cx.open(Mode::ReadWrite)?;
    let mut args: Vec<OsString> = vec!["--ledger".into(), home.dir.clone().into_os_string()];
    drop(home);
    args.extend(["run", "stage2", "--timeout"].map(OsString::from));
    args.push(opts.timeout_seconds.to_string().into());
    args.extend(["--fake-behavior".into(), a.fake_behavior.clone().into()]);
    if a.no_sandbox {
        args.push("--no-sandbox".into());
    }
    for port in &a.allow_net {
        args.extend(["--allow-net".into(), port.to_string().into()]);
    }
    if let Some(p) = a.provider {
        args.extend([
            "--provider".into(),
            OsString::from(if matches!(p, ProviderArg::Fake) {
                "fake"
            } else {
                "case"
            }),
        ]);
    }
    for (flag, v) in [
        ("--provider-bin", &a.provider_bin),
        ("--runs-dir", &a.runs_dir),
    ] {
        if let Some(v) = v {
            args.extend([flag.into(), crate::paths::abs(v).into_os_string()]);
        }
    }
    let progress = cx.progress();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs {elapsed}")
            .expect("valid template"),
    );
    let jobs = a.jobs.unwrap_or(1);
    let out = harness::suite::run_suite(&args, &a.fixture, a.repeat, jobs, &progress)?;
    let code = match (out.interrupted, out.failed == 0 && out.not_started == 0) {
        (true, _) => 130,
        (false, true) => super::EXIT_OK,
        (false, false) => super::EXIT_NEGATIVE,
    };
    Ok(Output::doc(out, suite_text).with_code(code))
}

fn suite_text(w: &mut dyn Write, o: &SuiteOut) -> R {
    let headers = ["FIXTURE", "#", "RUN", "STATUS", "VERDICT", "SECONDS"].map(String::from);
    let rows: Vec<Vec<String>> = o
        .runs
        .iter()
        .map(|r| {
            vec![
                r.fixture.clone(),
                r.repeat.to_string(),
                r.run_id.clone().map_or_else(
                    || r.error.clone().unwrap_or_default(),
                    |id| format!("run:{id}"),
                ),
                r.status.clone(),
                r.verdict.clone().unwrap_or_else(|| "-".into()),
                format!("{:.2}", r.duration_seconds),
            ]
        })
        .collect();
    super::text::table(w, &headers, &rows)?;
    write!(w, "{} passed, {} failed", o.passed, o.failed)?;
    if o.not_started > 0 {
        write!(w, ", {} not started (interrupted)", o.not_started)?;
    }
    writeln!(
        w,
        "; {} runs in {:.1} s with --jobs {}",
        o.runs.len(),
        o.wall_seconds,
        o.jobs
    )
}

/// The longest a provider may run: a week. Longer is a typo (and does not fit a timer).
const MAX_TIMEOUT_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

fn timeout(flag: Option<f64>) -> Result<f64> {
    let t = match flag {
        Some(t) => t,
        None => match crate::env::get("CTO_HARNESS_CASE_TIMEOUT_SECONDS") {
            Some(s) if !s.trim().is_empty() => s.trim().parse::<f64>().map_err(|_| {
                Error::bad_input(
                    format!("CTO_HARNESS_CASE_TIMEOUT_SECONDS=`{s}` is not a number of seconds"),
                    "set it to a positive number, e.g. 900",
                )
            })?,
            _ => harness::DEFAULT_TIMEOUT_SECONDS,
        },
    };
    if !(t.is_finite() && t > 0.0 && t <= MAX_TIMEOUT_SECONDS) {
        return Err(Error::bad_input(
            format!(
                "timeout {t} is not a number of seconds from 0 to {MAX_TIMEOUT_SECONDS} (7 days)"
            ),
            "give e.g. --timeout 900",
        ));
    }
    Ok(t)
}

fn options(a: Stage2Args) -> Result<RunOptions> {
    let env_bin = crate::env::get_os("CTO_HARNESS_CASE_BIN").map(PathBuf::from);
    let fixture = a.fixture.into_iter().next().expect("clap gives a default");
    let lane = match a.provider {
        Some(ProviderArg::Fake) => Lane::Fake,
        Some(ProviderArg::Case) => Lane::Case,
        None if env_bin.is_some() => Lane::Case,
        None => Lane::Fake,
    };
    let provider_bin = match lane {
        Lane::Case => a.provider_bin.or(env_bin),
        Lane::Fake => a.provider_bin,
    };
    let env = |k: &str| crate::env::get(k).filter(|v| !v.trim().is_empty());
    Ok(RunOptions {
        fixture,
        lane,
        provider_bin,
        timeout_seconds: timeout(a.timeout)?,
        fake_behavior: a.fake_behavior,
        runs_dir: a.runs_dir,
        model_provider: env("CTO_HARNESS_CASE_MODEL_PROVIDER"),
        model: env("CTO_HARNESS_CASE_MODEL"),
        no_sandbox: a.no_sandbox,
        allow_net: a.allow_net,
        // The escape self-check's targets (a file outside the run, a port), for the fake only.
        fake_env: crate::env::with_prefix("CTO_FAKE_CA_ESCAPE_"),
    })
}

fn text(w: &mut dyn Write, r: &Stage2Out) -> R {
    let rep = &r.report;
    writeln!(
        w,
        "run:{}  lane {}  status {}  verdict {}",
        rep.run_id, rep.lane, rep.status, rep.verdict
    )?;
    if let Some(reason) = &rep.reason {
        writeln!(w, "  reason:   {reason}")?;
    }
    if let Some(s) = &rep.sandbox {
        writeln!(w, "  sandbox:  {}", s.summary())?;
    }
    writeln!(w, "  folder:   {}", r.run_dir.display())?;
    writeln!(w, "  report:   {}", r.run_dir.join("report.json").display())?;
    if let Some(t) = &rep.tests {
        let exit = t.exit_code.map_or("-".into(), |c| c.to_string());
        writeln!(w, "  tests:    {} (exit {exit})", t.result)?;
    }
    writeln!(w, "  recorded: event {} ({} artifacts)", r.seq, r.artifacts)
}
