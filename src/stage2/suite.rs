//! Suites: every fixture N times, J runs at a time. Each run is its own `cto-ledger run
//! stage2` process (its own subreaper, process groups, signal handling and ledger
//! connection, exactly as a single run), so one run's cleanup can never touch another's
//! provider; the suite only schedules, forwards Ctrl-C and sums up. A child gets the
//! suite's own resolved [`RunOptions`] (as JSON, `--resolved`) and answers with its
//! [`Report`], so nothing is re-parsed from flags or read back as untyped JSON.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

use super::RunOptions;
use crate::error::{Error, Result};
use crate::id::RunId;
use crate::report::Report;
use crate::runner::Interrupts;
use crate::state::{RunStatus, Verdict};

/// One run of a suite, as the summary shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SuiteRun {
    pub fixture: String,
    /// 1..=repeat.
    pub repeat: u32,
    pub run_id: Option<RunId>,
    /// The report's status; `error` when the run could not start or record.
    pub status: RunStatus,
    pub verdict: Option<Verdict>,
    pub duration_seconds: f64,
    /// Why a run that is not in the ledger failed (its error message).
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SuiteOut {
    pub runs: Vec<SuiteRun>,
    pub passed: usize,
    pub failed: usize,
    /// Runs never started because the suite was interrupted.
    pub not_started: usize,
    pub interrupted: bool,
    pub jobs: u32,
    pub wall_seconds: f64,
}

struct Running {
    fixture: String,
    repeat: u32,
    child: Child,
    started: Instant,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// The command line of one run of a suite: the ledger, and `opts` for `fixture`.
fn child_args(ledger: &std::path::Path, opts: &RunOptions, fixture: &str) -> Vec<OsString> {
    let mut one = opts.clone();
    one.fixture = fixture.to_string();
    let resolved = serde_json::to_string(&one).expect("options serialise");
    vec![
        "--ledger".into(),
        ledger.as_os_str().to_os_string(),
        "run".into(),
        "stage2".into(),
        "--json".into(),
        "--resolved".into(),
        resolved.into(),
    ]
}

/// Runs `fixtures` × `repeat`, `jobs` at a time, each with `opts` in the ledger at
/// `ledger`; `progress` ticks once per finished run.
pub(crate) fn run_suite(
    ledger: &std::path::Path,
    opts: &RunOptions,
    fixtures: &[String],
    repeat: u32,
    jobs: u32,
    progress: &ProgressBar,
) -> Result<SuiteOut> {
    let exe = std::env::current_exe().map_err(Error::io(
        "find the cto-ledger executable",
        "/proc/self/exe",
    ))?;
    let mut queue: std::collections::VecDeque<(String, u32)> = (1..=repeat)
        .flat_map(|i| fixtures.iter().map(move |f| (f.clone(), i)))
        .collect();
    progress.set_length(queue.len() as u64);
    let interrupts = Interrupts::catch();
    let start = Instant::now();
    let mut running: Vec<Running> = Vec::new();
    let mut done = Vec::new();
    let mut forwarded = false;
    loop {
        let stop = interrupts.flag.load(Ordering::SeqCst);
        while !stop && running.len() < jobs as usize {
            let Some((fixture, repeat)) = queue.pop_front() else {
                break;
            };
            let mut child = Command::new(&exe)
                .args(child_args(ledger, opts, &fixture))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(Error::io("start a run", &exe))?;
            let stdout = drain(child.stdout.take().expect("piped"));
            let stderr = drain(child.stderr.take().expect("piped"));
            running.push(Running {
                fixture,
                repeat,
                child,
                started: Instant::now(),
                stdout,
                stderr,
            });
        }
        if stop && !forwarded {
            // Each run kills its provider and finalises its report as `interrupted`.
            for r in &running {
                if let Some(pid) = rustix::process::Pid::from_raw(r.child.id() as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
                }
            }
            forwarded = true;
        }
        let mut i = 0;
        while i < running.len() {
            if running[i]
                .child
                .try_wait()
                .map_err(Error::io("wait for a run", &exe))?
                .is_some()
            {
                let r = running.swap_remove(i);
                done.push(finish(r)?);
                progress.inc(1);
            } else {
                i += 1;
            }
        }
        if running.is_empty() && (queue.is_empty() || stop) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    progress.finish_and_clear();
    // In the order they were asked for, not the order they finished.
    done.sort_by(|a, b| {
        (a.repeat, fixtures.iter().position(|f| *f == a.fixture))
            .cmp(&(b.repeat, fixtures.iter().position(|f| *f == b.fixture)))
    });
    let passed = done
        .iter()
        .filter(|r| r.verdict == Some(Verdict::Pass))
        .count();
    Ok(SuiteOut {
        passed,
        failed: done.len() - passed,
        not_started: queue.len(),
        interrupted: interrupts.flag.load(Ordering::SeqCst),
        jobs,
        wall_seconds: start.elapsed().as_secs_f64(),
        runs: done,
    })
}

fn finish(mut r: Running) -> Result<SuiteRun> {
    let status = r
        .child
        .wait()
        .map_err(Error::io("wait for a run", "cto-ledger"))?;
    let duration = r.started.elapsed().as_secs_f64();
    let stdout = r.stdout.join().unwrap_or_default();
    let stderr = r.stderr.join().unwrap_or_default();
    Ok(match serde_json::from_slice::<Report>(&stdout) {
        Ok(rep) => SuiteRun {
            fixture: r.fixture,
            repeat: r.repeat,
            run_id: Some(rep.run_id),
            status: rep.status,
            verdict: Some(rep.verdict),
            duration_seconds: rep.duration_seconds.unwrap_or(duration),
            error: None,
        },
        Err(_) => SuiteRun {
            fixture: r.fixture,
            repeat: r.repeat,
            run_id: None,
            status: RunStatus::Error,
            verdict: None,
            duration_seconds: duration,
            error: Some(
                match String::from_utf8_lossy(&stderr)
                    .lines()
                    .find(|l| !l.trim().is_empty())
                {
                    Some(l) => l.trim().to_string(),
                    None => format!("the run exited with {status} and printed no report"),
                },
            ),
        },
    })
}
