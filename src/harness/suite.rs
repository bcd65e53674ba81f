//! Suites: every fixture N times, J runs at a time. Each run is its own `cto-ledger run
//! stage2` process (its own subreaper, process groups, signal handling and ledger
//! connection, exactly as a single run), so one run's cleanup can never touch another's
//! provider; the suite only schedules, forwards Ctrl-C and sums up.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::runner::Interrupts;

/// One run of a suite, as the summary shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SuiteRun {
    pub fixture: String,
    /// 1..=repeat.
    pub repeat: u32,
    pub run_id: Option<String>,
    /// The report's status; `error` when the run could not start or record.
    pub status: String,
    pub verdict: Option<String>,
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

/// Runs `fixtures` × `repeat`, `jobs` at a time, each as `cto-ledger <base_args>
/// --fixture F --json`; `progress` ticks once per finished run.
pub(crate) fn run_suite(
    base_args: &[OsString],
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
                .args(base_args)
                .arg("--fixture")
                .arg(&fixture)
                .arg("--json")
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
        .filter(|r| r.verdict.as_deref() == Some("pass"))
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
    let report: Option<Value> = serde_json::from_slice(&stdout).ok();
    let text = |v: &Value, k: &str| v[k].as_str().map(String::from);
    Ok(match report.filter(|v| v["run_id"].is_string()) {
        Some(v) => SuiteRun {
            fixture: r.fixture,
            repeat: r.repeat,
            run_id: text(&v, "run_id"),
            status: text(&v, "status").unwrap_or_default(),
            verdict: text(&v, "verdict"),
            duration_seconds: v["duration_seconds"].as_f64().unwrap_or(duration),
            error: None,
        },
        None => SuiteRun {
            fixture: r.fixture,
            repeat: r.repeat,
            run_id: None,
            status: "error".into(),
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
