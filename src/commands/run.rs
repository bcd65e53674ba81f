//! `cto-ledger run stage2`: run an admitted provider against a fixture, record all evidence.

use std::io::Write;
use std::path::PathBuf;

use super::{text::shown, text::R, Context, Output};
use crate::error::{Error, Result};
use crate::ledger::Mode;
use crate::stage2::suite::SuiteOut;
use crate::stage2::{self, Lane, RunOptions, Stage2Out};
use crate::state::Verdict;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Run an admitted provider against a Stage 2 fixture and record all evidence
    Stage2(Stage2Args),
}

/// `--provider`: a lane, or the real lane's provider executable.
#[derive(Clone)]
enum ProviderArg {
    Fake,
    Case,
    Path(PathBuf),
}

fn parse_provider(s: &str) -> std::result::Result<ProviderArg, String> {
    Ok(match s {
        "fake" => ProviderArg::Fake,
        "case" => ProviderArg::Case,
        "" => return Err("give fake, case or the provider's path".into()),
        p => ProviderArg::Path(PathBuf::from(p)),
    })
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
    /// Lane: fake (default) or case (the real WorkOS Case; implied by CTO_HARNESS_CASE_BIN),
    /// or the real lane's provider executable (a path: `--provider dist/ca`)
    #[arg(long, value_name = "fake|case|PATH", value_parser = parse_provider)]
    provider: Option<ProviderArg>,
    /// Provider executable (default: CTO_HARNESS_CASE_BIN, or the shipped fake `ca`)
    #[arg(long, value_name = "PATH")]
    provider_bin: Option<PathBuf>,
    /// Seconds before the provider's process group is killed (default: CTO_HARNESS_CASE_TIMEOUT_SECONDS or 900)
    #[arg(long)]
    timeout: Option<f64>,
    /// Fake lane behaviour: `solve` (the default) and `agent` pass, the rest are the
    /// failures and attacks the harness must catch
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(stage2::FAKE_BEHAVIORS))]
    fake_behavior: Option<String>,
    /// The model, PROVIDER/MODEL (default: CTO_HARNESS_CASE_MODEL_PROVIDER and
    /// CTO_HARNESS_CASE_MODEL), e.g. `scripted/r1-string-slugify`
    #[arg(long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    /// Evaluate every gate and print it, without starting the provider or recording
    /// anything; exit 0 when a run would start
    #[arg(long)]
    check: bool,
    /// Run the provider and the tests without the kernel sandbox (recorded in the report and the journal)
    #[arg(long)]
    no_sandbox: bool,
    /// Also let the provider connect to this TCP port (repeatable; recorded)
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..=65535))]
    allow_net: Vec<u16>,
    /// Where run folders go (default: <ledger>/runs)
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    /// A limit over the fixture's and the defaults, e.g. `folder_bytes=2G` (repeatable):
    /// stdout_bytes, stderr_bytes, folder_bytes, folder_entries, processes, memory_bytes,
    /// model_response_bytes; sizes may end in K, M or G
    #[arg(long = "limit", value_name = "NAME=N", value_parser = parse_limit)]
    limits: Vec<(String, u64)>,
    /// One run of a suite: the options its parent resolved, as JSON (nothing else is read)
    #[arg(long, hide = true, value_name = "JSON")]
    resolved: Option<String>,
}

pub(crate) fn run(cx: &Context, cmd: Cmd) -> Result<Output> {
    let Cmd::Stage2(a) = cmd;
    if a.check {
        return check(cx, a);
    }
    if a.fixture.len() > 1 || a.repeat > 1 || a.jobs.is_some() {
        return suite(cx, a);
    }
    let opts = match &a.resolved {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            Error::bad_input(
                format!("--resolved is not a run's options: {e}"),
                "--resolved is how a suite starts its runs; run `cto-ledger run stage2` without it",
            )
        })?,
        None => options(a)?,
    };
    let mut home = cx.open(Mode::ReadWrite)?;
    let r = stage2::run_stage2(&mut home, &opts)?;
    let pass = r.report.verdict == Verdict::Pass;
    Ok(Output::doc(r, text).negative_unless(pass))
}

/// `--check`: the gates of one run per fixture, nothing started or recorded.
fn check(cx: &Context, a: Stage2Args) -> Result<Output> {
    if a.repeat > 1 || a.jobs.is_some() {
        return Err(Error::bad_input(
            "--check evaluates the gates once; --repeat and --jobs say how many runs to start",
            "drop --repeat and --jobs, or drop --check",
        ));
    }
    let fixtures = a.fixture.clone();
    let mut opts = options(a)?;
    let mut home = cx.open(Mode::ReadWrite)?;
    let mut out = Vec::new();
    for f in fixtures {
        opts.fixture = f;
        out.push(stage2::check_stage2(&mut home, &opts)?);
    }
    let ready = out.iter().all(|c| c.ready);
    Ok(Output::doc(out, check_text).negative_unless(ready))
}

fn check_text(w: &mut dyn Write, checks: &Vec<stage2::CheckOut>) -> R {
    for c in checks {
        writeln!(w, "fixture {}  lane {}", shown(&c.fixture), c.lane)?;
        for g in &c.gates {
            let mark = if g.passed { "ok     " } else { "BLOCKED" };
            writeln!(w, "  {mark} {:<24} {}", g.name, shown(&g.detail))?;
        }
        match c.ready {
            true => writeln!(
                w,
                "ready: `cto-ledger run stage2` with these options would start the provider"
            )?,
            false => writeln!(
                w,
                "not ready: a run now would be recorded as blocked (evidence, but no verdict)"
            )?,
        }
    }
    Ok(())
}

/// A suite: everything a run would refuse is refused before any run starts; then each
/// run is its own `run stage2` process with the same resolved options.
fn suite(cx: &Context, a: Stage2Args) -> Result<Output> {
    let (fixtures, repeat, jobs) = (a.fixture.clone(), a.repeat, a.jobs.unwrap_or(1));
    let mut opts = options(a)?;
    for f in &fixtures {
        opts.fixture = f.clone();
        opts.check()?;
    }
    // Paths the children get are absolute: they are the suite's, wherever a child runs.
    opts.provider_bin = opts.provider_bin.map(|p| crate::paths::abs(&p));
    opts.runs_dir = opts.runs_dir.map(|p| crate::paths::abs(&p));
    // The ledger exists (and is migrated) before the runs race to open it.
    let ledger = cx.open(Mode::ReadWrite)?.dir;
    let progress = cx.progress();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs {elapsed}")
            .expect("valid template"),
    );
    let out = stage2::suite::run_suite(&ledger, &opts, &fixtures, repeat, jobs, &progress)?;
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
                r.run_id.as_ref().map_or_else(
                    || r.error.clone().unwrap_or_default(),
                    |id| format!("run:{id}"),
                ),
                r.status.to_string(),
                r.verdict.map_or_else(|| "-".into(), |v| v.to_string()),
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
            _ => stage2::DEFAULT_TIMEOUT_SECONDS,
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
    let (lane, flag_bin) = match (a.provider, a.provider_bin) {
        (Some(ProviderArg::Path(_)), Some(_)) => {
            return Err(Error::bad_input(
                "--provider PATH and --provider-bin both name the provider",
                "give one of them",
            ))
        }
        (Some(ProviderArg::Path(p)), None) => (Lane::Case, Some(p)),
        (Some(ProviderArg::Fake), bin) => (Lane::Fake, bin),
        (Some(ProviderArg::Case), bin) => (Lane::Case, bin),
        (None, bin) if env_bin.is_some() => (Lane::Case, bin),
        (None, bin) => (Lane::Fake, bin),
    };
    let provider_bin = match lane {
        Lane::Case => flag_bin.or(env_bin),
        Lane::Fake => flag_bin,
    };
    if let (Lane::Case, Some(b)) = (lane, &a.fake_behavior) {
        // The real lane's provider is not told any behaviour: it would run as it always
        // does, under a flag that says otherwise.
        return Err(Error::bad_input(
            format!("--fake-behavior {b} is for the fake lane, and this run is on the real lane (--provider PATH or case, or CTO_HARNESS_CASE_BIN)"),
            "leave --fake-behavior out, or run the fake lane: --provider-bin PATH runs another copy of the fake",
        ));
    }
    let env = |k: &str| crate::env::get(k).filter(|v| !v.trim().is_empty());
    let (model_provider, model) = match &a.model {
        Some(pm) => match pm.split_once('/') {
            Some((p, m)) if !p.is_empty() && !m.is_empty() => (Some(p.to_string()), Some(m.to_string())),
            _ => {
                return Err(Error::bad_input(
                    format!("--model `{pm}` is not PROVIDER/MODEL"),
                    "give e.g. --model scripted/r1-string-slugify or --model anthropic/claude-sonnet-4-5",
                ))
            }
        },
        None => (
            env("CTO_HARNESS_CASE_MODEL_PROVIDER"),
            env("CTO_HARNESS_CASE_MODEL"),
        ),
    };
    Ok(RunOptions {
        fixture,
        lane,
        provider_bin,
        timeout_seconds: timeout(a.timeout)?,
        fake_behavior: a.fake_behavior.unwrap_or_else(|| "solve".into()),
        runs_dir: a.runs_dir,
        model_provider,
        model,
        no_sandbox: a.no_sandbox,
        allow_net: a.allow_net,
        // The escape self-check's targets (a file outside the run, a port), for the fake only.
        fake_env: crate::env::with_prefix("CTO_FAKE_CA_ESCAPE_"),
        limits: limits_of(&a.limits),
    })
}

/// `NAME=N` with N a count, or bytes ending in K, M or G (powers of 1024).
fn parse_limit(s: &str) -> std::result::Result<(String, u64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=N"))?;
    if !LIMIT_NAMES.contains(&name) {
        return Err(format!(
            "`{name}` is not a limit; use one of {}",
            LIMIT_NAMES.join(", ")
        ));
    }
    let (digits, scale) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{value}` is not a number (with an optional K, M or G)"))?;
    let n = n
        .checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{value}` is not a positive size that fits 64 bits"))?;
    Ok((name.to_string(), n))
}

const LIMIT_NAMES: [&str; 7] = [
    "stdout_bytes",
    "stderr_bytes",
    "folder_bytes",
    "folder_entries",
    "processes",
    "memory_bytes",
    "model_response_bytes",
];

fn limits_of(flags: &[(String, u64)]) -> crate::stage2::fixture::LimitsSpec {
    let mut l = crate::stage2::fixture::LimitsSpec::default();
    for (name, n) in flags {
        let slot = match name.as_str() {
            "stdout_bytes" => &mut l.stdout_bytes,
            "stderr_bytes" => &mut l.stderr_bytes,
            "folder_bytes" => &mut l.folder_bytes,
            "folder_entries" => &mut l.folder_entries,
            "processes" => &mut l.processes,
            "memory_bytes" => &mut l.memory_bytes,
            _ => &mut l.model_response_bytes,
        };
        *slot = Some(*n);
    }
    l
}

fn text(w: &mut dyn Write, r: &Stage2Out) -> R {
    let rep = &r.report;
    writeln!(
        w,
        "run:{}  lane {}  status {}  verdict {}",
        rep.run_id, rep.lane, rep.status, rep.verdict
    )?;
    if let Some(reason) = &rep.reason {
        writeln!(w, "  reason:   {}", shown(reason))?;
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
