//! Running a child bounded in time (providers, builds, fixture tests): its own
//! process group, the whole group (and any orphan reparented to us) killed on
//! timeout, on interrupt, and after it exits. The only module that kills processes.

use std::fs;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, waitpid, Pid, Signal, WaitOptions};

const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// Why the watcher ended the run (a limit it saw exceeded), if it did.
    pub limited: Option<String>,
    pub killed: Vec<u32>,
    pub elapsed: Duration,
    /// What the sandbox's cgroup counted, when there was one.
    pub usage: Option<crate::sandbox::Usage>,
}

/// How often a watcher is asked whether the run must end.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// SIGINT, SIGTERM and SIGHUP set a flag instead of killing cto-ledger while this
/// guard lives, so a running child can be killed and its record finalised.
pub(crate) struct Interrupts {
    pub flag: std::sync::Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Interrupts {
    pub(crate) fn catch() -> Interrupts {
        let flag = std::sync::Arc::new(AtomicBool::new(false));
        let ids = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ]
        .iter()
        .filter_map(|s| signal_hook::flag::register(*s, flag.clone()).ok())
        .collect();
        Interrupts { flag, ids }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// (pid, state, ppid, pgrp, session) of every process, from `/proc`.
pub(crate) fn processes() -> Vec<(u32, char, u32, u32, u32)> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may hold spaces and parentheses: parse after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut f = rest.split_whitespace();
            let state = f.next()?.chars().next()?;
            let ppid = f.next()?.parse().ok()?;
            let pgrp = f.next()?.parse().ok()?;
            let session = f.next()?.parse().ok()?;
            Some((pid, state, ppid, pgrp, session))
        })
        .collect()
}

/// Whether a process from `processes()` still runs: not a zombie, or a zombie thread
/// group leader whose other threads live on (a main thread that called `pthread_exit`
/// shows `Z` while the process keeps running).
pub(crate) fn is_live(p: &(u32, char, u32, u32, u32)) -> bool {
    match p.1 {
        'X' => false,
        'Z' => fs::read_dir(format!("/proc/{}/task", p.0)).is_ok_and(|rd| {
            rd.flatten().any(|t| {
                fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                    st.rfind(')')
                        .and_then(|i| st[i + 2..].chars().next())
                        .is_some_and(|c| c != 'Z' && c != 'X')
                })
            })
        }),
        _ => true,
    }
}

/// Live (not zombie) processes whose environment holds `HOME=<home>`: what a run whose
/// provider was given that home left behind, however it forked (a sandboxed provider's
/// own pids are its namespace's, so only the environment ties them to the run).
pub(crate) fn left_running(home: &std::path::Path) -> Vec<u32> {
    let mut needle = b"HOME=".to_vec();
    needle.extend_from_slice(home.as_os_str().as_encoded_bytes());
    needle.push(0);
    processes()
        .into_iter()
        .filter(is_live)
        .filter(|p| {
            fs::read(format!("/proc/{}/environ", p.0))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
        })
        .map(|p| p.0)
        .collect()
}

/// Live (not zombie) members of a process group.
pub(crate) fn live_in_group(pgid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.3 == pgid && is_live(p))
        .map(|p| p.0)
        .collect()
}

/// Makes this process the reaper of orphaned descendants, so a grandchild that
/// leaves the provider's group still cannot outlive the run unseen.
pub(crate) fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

fn pid(p: u32) -> Option<Pid> {
    Pid::from_raw(p as i32)
}

/// Kills the group and every orphan reparented to us; returns the pids that were alive.
/// Kills the provider's group and every orphan it left to this subreaper. An orphan is a
/// child of this process outside this process's session: the provider leads a session of
/// its own, and no process can join another session, while what the harness itself
/// started meanwhile (the test interpreter being resolved) stays in the harness's.
fn kill_all(pgid: u32, child_pid: u32) -> Vec<u32> {
    let me = std::process::id();
    // Not rustix's getsid: it asserts a positive id, and a process whose session leader
    // lives outside its PID namespace (a container's first process) is in session 0.
    // SAFETY: getsid(0) only reads the calling process's session id.
    let own_session = unsafe { libc::getsid(0) }.max(0) as u32;
    let orphan =
        |p: &(u32, char, u32, u32, u32)| p.2 == me && p.0 != child_pid && p.4 != own_session;
    let mut killed = Vec::new();
    for round in 0..50 {
        let procs = processes();
        let targets: Vec<u32> = procs
            .iter()
            .filter(|p| is_live(p))
            .filter(|p| p.3 == pgid || orphan(p))
            .map(|p| p.0)
            .collect();
        if let Some(g) = pid(pgid) {
            let _ = kill_process_group(g, Signal::KILL);
        }
        for t in &targets {
            if let Some(p) = pid(*t) {
                let _ = kill_process(p, Signal::KILL);
            }
            if !killed.contains(t) {
                killed.push(*t);
            }
        }
        // Reap orphans that became our children so they do not linger as zombies.
        for p in procs.iter().filter(|p| orphan(p)) {
            if let Some(pp) = pid(p.0) {
                let _ = waitpid(Some(pp), WaitOptions::NOHANG);
            }
        }
        if targets.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(if round < 10 { 10 } else { 50 }));
    }
    killed.sort_unstable();
    killed
}

/// Sleeps at most `max`, waking the moment the child exits when there is a pidfd for
/// it (a process that finishes in 5 ms is seen in 5 ms, not at the next poll).
fn wait_a_little(exits: Option<&std::os::fd::OwnedFd>, max: Duration) {
    match exits {
        Some(fd) => {
            let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
            let t = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: max.as_nanos() as _,
            };
            let _ = rustix::event::poll(&mut fds, Some(&t));
        }
        None => std::thread::sleep(max),
    }
}

fn decode(st: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (st.code(), st.signal())
}

/// Spawns `cmd` as the leader of a new process group and waits at most `timeout`.
pub(crate) fn run_bounded(
    cmd: Command,
    timeout: Duration,
    interrupt: &AtomicBool,
) -> std::io::Result<Outcome> {
    run_bounded_with(cmd, timeout, interrupt, |_| {})
}

/// As [`run_bounded`]; `on_spawn` gets the child first (to take its pipes).
pub(crate) fn run_bounded_with(
    cmd: Command,
    timeout: Duration,
    interrupt: &AtomicBool,
    on_spawn: impl FnOnce(&mut Child),
) -> std::io::Result<Outcome> {
    let mut never = || None;
    run_confined(cmd, None, timeout, interrupt, &mut never, on_spawn)
}

/// As [`run_bounded_with`], in `sandbox` (installed after the child has its own session,
/// so the sandbox's PID namespace waiter and everything below it share that process
/// group), asking `watch` every quarter second whether a limit it checks was exceeded:
/// `Some(why)` kills the run as a timeout would and is the outcome's `limited`.
pub(crate) fn run_confined(
    cmd: Command,
    sandbox: Option<crate::sandbox::Prepared>,
    timeout: Duration,
    interrupt: &AtomicBool,
    watch: &mut dyn FnMut() -> Option<String>,
    on_spawn: impl FnOnce(&mut Child),
) -> std::io::Result<Outcome> {
    run_child(
        cmd,
        sandbox,
        Sweep::Everything,
        timeout,
        interrupt,
        watch,
        on_spawn,
    )
}

/// What is killed once the child has ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Its process group, and every orphan it left to us (found in /proc): for commands
    /// that may leave daemons and grandchildren behind.
    Everything,
    /// Its process group only, and only when it was killed: for our own children that
    /// start no processes (the policy engine), whose end is the end of the work.
    GroupIfKilled,
}

/// As [`run_confined`], with what is swept after the child ends chosen.
pub(crate) fn run_child(
    mut cmd: Command,
    sandbox: Option<crate::sandbox::Prepared>,
    sweep: Sweep,
    timeout: Duration,
    interrupt: &AtomicBool,
    watch: &mut dyn FnMut() -> Option<String>,
    on_spawn: impl FnOnce(&mut Child),
) -> std::io::Result<Outcome> {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and prctl(PR_SET_PDEATHSIG) are single async-signal-safe system
    // calls. The child leads its own session and process group (killed as one), and the
    // kernel kills it if cto-ledger itself is killed (even by SIGKILL).
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let guard = sandbox.map(|s| s.install(&mut cmd));
    let start = Instant::now();
    let mut child: Child = cmd.spawn()?;
    on_spawn(&mut child);
    let child_pid = child.id();
    let exits = pid(child_pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let (mut timed_out, mut interrupted, mut limited) = (false, false, None);
    let mut watched = Instant::now();
    let mut doomed = Vec::new();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if interrupt.load(Ordering::SeqCst) {
            interrupted = true;
        } else if start.elapsed() >= timeout {
            timed_out = true;
        } else if watched.elapsed() >= WATCH_EVERY {
            watched = Instant::now();
            limited = watch();
        }
        if timed_out || interrupted || limited.is_some() {
            doomed = live_in_group(child_pid);
            let _ =
                kill_process_group(pid(child_pid).expect("child pid is positive"), Signal::KILL);
            break child.wait()?;
        }
        wait_a_little(exits.as_ref(), POLL);
    };
    let elapsed = start.elapsed();
    // Whatever the provider left running (a daemon, a grandchild) dies with the run.
    let mut killed = match sweep {
        Sweep::Everything => kill_all(child_pid, child_pid),
        Sweep::GroupIfKilled => Vec::new(),
    };
    killed.extend(doomed);
    killed.sort_unstable();
    killed.dedup();
    let (code, signal) = decode(status);
    let usage = guard.as_ref().and_then(crate::sandbox::Guard::usage);
    drop(guard);
    Ok(Outcome {
        pid: child_pid,
        code,
        signal,
        timed_out,
        interrupted,
        limited,
        killed,
        elapsed,
        usage,
    })
}
