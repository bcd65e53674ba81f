//! A control group of the sandboxed process's own, where this machine lets cto-ledger
//! make one (cgroup v1's `pids` and `memory` controllers, or cgroup v2 with them
//! enabled, writable: as root, or delegated): a process limit and a memory limit the
//! kernel enforces on everything the process starts. Made under the caller's own
//! cgroups, so whatever limits those have still hold; removed when the run ends.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The limits a cgroup can enforce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CgroupLimits {
    pub processes: u64,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Pids,
    Memory,
}

/// One controller's folder for this process: where to write limits and join.
#[derive(Debug)]
struct Dir {
    controller: Controller,
    path: PathBuf,
    /// `<path>/cgroup.procs`, ready for the child to write its pid to.
    procs: CString,
    v2: bool,
}

/// The cgroup folders made for one sandboxed process.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<Dir>,
}

/// What the kernel counted against the limits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Forks refused at the process limit.
    pub processes_refused: u64,
    /// Times the memory limit was hit (v1 `failcnt`, v2 `max` events).
    pub memory_hits: u64,
    pub oom_kills: u64,
    pub memory_peak: Option<u64>,
}

/// The caller's own cgroup folder for `controller`, from `/proc/self/cgroup`.
fn own_folder(controller: Controller) -> Option<(PathBuf, bool)> {
    let name = match controller {
        Controller::Pids => "pids",
        Controller::Memory => "memory",
    };
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == name) {
            let dir = Path::new("/sys/fs/cgroup").join(name).join(rel);
            return dir.is_dir().then_some((dir, false));
        }
        if controllers.is_empty() {
            // cgroup v2: one hierarchy; usable when this controller is enabled below us.
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = Path::new(root).join(rel);
                let enabled = fs::read_to_string(dir.join("cgroup.subtree_control"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == name));
                if enabled {
                    return Some((dir, true));
                }
            }
        }
    }
    None
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

impl Cgroup {
    /// Makes one folder per controller this machine lets us use and sets its limit.
    /// Controllers that cannot be used are left out (`None` when none can).
    pub(crate) fn create(limits: CgroupLimits) -> Option<Cgroup> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "cto-ledger-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut dirs = Vec::new();
        for controller in [Controller::Pids, Controller::Memory] {
            let Some((parent, v2)) = own_folder(controller) else {
                continue;
            };
            let path = parent.join(&name);
            // cgroup v2 has one folder for both controllers.
            let made = dirs.iter().any(|d: &Dir| d.path == path);
            if !made && fs::create_dir(&path).is_err() {
                continue;
            }
            let set = match (controller, v2) {
                (Controller::Pids, _) => {
                    write(&path.join("pids.max"), &limits.processes.to_string())
                }
                (Controller::Memory, false) => write(
                    &path.join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                ),
                (Controller::Memory, true) => {
                    write(&path.join("memory.max"), &limits.memory_bytes.to_string())
                }
            };
            let procs = CString::new(path.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok();
            match (set, procs) {
                (Ok(()), Some(procs)) => dirs.push(Dir {
                    controller,
                    path,
                    procs,
                    v2,
                }),
                _ => {
                    let _ = fs::remove_dir(&path);
                }
            }
        }
        (!dirs.is_empty()).then_some(Cgroup { dirs })
    }

    pub(crate) fn limits_processes(&self) -> bool {
        self.dirs.iter().any(|d| d.controller == Controller::Pids)
    }

    pub(crate) fn limits_memory(&self) -> bool {
        self.dirs.iter().any(|d| d.controller == Controller::Memory)
    }

    /// What the child needs to join the folders, prepared before the fork.
    pub(crate) fn joiner(&self) -> Joiner {
        Joiner {
            procs: self.dirs.iter().map(|d| d.procs.clone()).collect(),
        }
    }

    /// What the kernel counted: read before the folders go.
    pub(crate) fn usage(&self) -> Usage {
        let mut u = Usage::default();
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        for d in &self.dirs {
            match (d.controller, d.v2) {
                (Controller::Pids, _) => {
                    u.processes_refused = field(&read(d.path.join("pids.events")), "max ")
                }
                (Controller::Memory, false) => {
                    u.memory_hits = read(d.path.join("memory.failcnt"))
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    u.oom_kills = field(&read(d.path.join("memory.oom_control")), "oom_kill ");
                    u.memory_peak = read(d.path.join("memory.max_usage_in_bytes"))
                        .trim()
                        .parse()
                        .ok();
                }
                (Controller::Memory, true) => {
                    let events = read(d.path.join("memory.events"));
                    u.memory_hits = field(&events, "max ");
                    u.oom_kills = field(&events, "oom_kill ");
                    u.memory_peak = read(d.path.join("memory.peak")).trim().parse().ok();
                }
            }
        }
        u
    }
}

impl Drop for Cgroup {
    /// Kills whatever is still in the folders, then removes them.
    fn drop(&mut self) {
        for _ in 0..100 {
            for d in &self.dirs {
                let procs = fs::read_to_string(d.path.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if let Some(p) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                }
            }
            let gone = |d: &Dir| fs::remove_dir(&d.path).is_ok() || !d.path.exists();
            if self.dirs.iter().all(gone) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The `cgroup.procs` files a child writes its pid to.
pub(crate) struct Joiner {
    procs: Vec<CString>,
}

impl Joiner {
    /// In the child, before it forks or execs: moves it into every folder. Only system
    /// calls on paths prepared before the fork; the pid is written from the stack.
    pub(crate) fn join_self(&self) -> io::Result<()> {
        let mut buf = [0u8; 20];
        let mut pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for procs in &self.procs {
            super::namespaces::write_proc(procs, &buf[i..])?;
        }
        Ok(())
    }
}
