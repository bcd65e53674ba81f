//! The namespaces a sandboxed process enters: its own user namespace (mapping the caller
//! to itself, so no capability over the host), its own PID namespace (so nothing it
//! starts outlives it) and, for "no network", a network namespace.

use std::ffi::CStr;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rustix::thread::{unshare_unsafe, UnshareFlags};

/// `/proc/self/uid_map` and `gid_map` lines mapping the caller to itself.
#[derive(Debug, Clone)]
pub(crate) struct UserMaps {
    uid: Vec<u8>,
    gid: Vec<u8>,
}

impl UserMaps {
    pub(crate) fn identity() -> UserMaps {
        let (uid, gid) = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        UserMaps {
            uid: format!("{uid} {uid} 1\n").into_bytes(),
            gid: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }

    /// In the child, before exec: `unshare(NEWUSER | extra)`, then map us to ourselves.
    /// Only system calls on data prepared before the fork.
    pub(crate) fn enter(&self, extra: UnshareFlags) -> io::Result<()> {
        // SAFETY: called in a single-threaded child between fork and exec.
        unsafe { unshare_unsafe(UnshareFlags::NEWUSER | extra)? };
        write_proc(c"/proc/self/setgroups", b"deny")?;
        write_proc(c"/proc/self/uid_map", &self.uid)?;
        write_proc(c"/proc/self/gid_map", &self.gid)?;
        Ok(())
    }
}

/// Writes `bytes` to a /proc file (in the child: no allocation).
pub(crate) fn write_proc(path: &CStr, bytes: &[u8]) -> io::Result<()> {
    let fd = rustix::fs::open(path, rustix::fs::OFlags::WRONLY, rustix::fs::Mode::empty())?;
    rustix::io::write(&fd, bytes)?;
    Ok(())
}

/// Whether `cmd`, set up by `setup`, runs: our own executable with `--version`, once.
pub(crate) fn probe(setup: impl FnOnce(&mut Command) -> io::Result<()>) -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let mut cmd = Command::new(exe);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if setup(&mut cmd).is_err() {
        return false;
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Whether this process may make user, network and PID namespaces (asked once).
pub(super) fn namespaces_work() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let maps = UserMaps::identity();
        probe(|cmd| {
            // SAFETY: only system calls on data prepared before the fork.
            unsafe {
                cmd.pre_exec(move || maps.enter(UnshareFlags::NEWNET | UnshareFlags::NEWPID))
            };
            Ok(())
        })
    })
}

/// Whether a root of its own can be made here (a mount namespace, binds, a fresh
/// `/proc`, `pivot_root`): our own executable run in one with the system folders only.
pub(super) fn own_root_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let Ok(exe) = std::env::current_exe() else {
            return false;
        };
        let mut paths: Vec<(std::path::PathBuf, bool, bool)> = ["/usr", "/bin", "/lib", "/lib64"]
            .iter()
            .map(std::path::PathBuf::from)
            .filter(|p| p.exists())
            .map(|p| (p, false, true))
            .collect();
        paths.push((exe, true, true));
        let Ok(plan) = super::root::Plan::new(&paths) else {
            return false;
        };
        let maps = UserMaps::identity();
        probe(|cmd| {
            // SAFETY: only system calls on data prepared before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    maps.enter(UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWIPC)?;
                    become_init()?;
                    plan.enter(None)
                })
            };
            Ok(())
        })
    })
}

/// A fork with no handlers run: `clone(SIGCHLD)`.
///
/// # Safety
/// Only in a single-threaded child between fork and exec; both sides then make system
/// calls only.
unsafe fn raw_fork() -> io::Result<libc::pid_t> {
    let pid = libc::syscall(
        libc::SYS_clone,
        libc::SIGCHLD as libc::c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    );
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid as libc::pid_t)
    }
}

/// Closes every descriptor above the standard three but `keep`.
///
/// # Safety
/// As [`raw_fork`].
unsafe fn close_all_but(keep: libc::c_int) {
    let keep = keep as u32;
    if keep > 3 {
        libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
    }
    libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
}

/// Ends this process as a wait status says its child ended: the same exit code, or the
/// same signal.
///
/// # Safety
/// As [`raw_fork`].
unsafe fn end_as(status: libc::c_int) -> ! {
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    let sig = libc::WTERMSIG(status);
    libc::signal(sig, libc::SIG_DFL);
    libc::kill(libc::getpid(), sig);
    libc::_exit(128 + sig)
}

/// In the child, after `unshare(CLONE_NEWPID)`. Three processes come of it:
///
/// - the waiter (this process, outside the namespace): it closes every descriptor but
///   the standard three (so the spawner sees the exec, not the waiter), waits for the
///   namespace's first process, and ends as the provider ended (exit code or signal,
///   passed up through a pipe);
/// - PID 1, cto-ledger's own: it reaps whatever is orphaned to it and, when the
///   provider ends, reports how and exits, and the kernel kills every process left in
///   the namespace, however it forked, double-forked or called `setsid`;
/// - PID 2, for which this returns `Ok`: it goes on to exec the provider. Not being the
///   namespace's init, it gets signals as any process does (an `abort` is a SIGABRT).
///
/// Both PID 1 and PID 2 die with their parent (`PR_SET_PDEATHSIG`).
pub(super) fn become_init() -> io::Result<()> {
    // SAFETY: in a single-threaded child between fork and exec; every step below is a
    // system call on memory this function owns.
    unsafe {
        let mut fds = [0 as libc::c_int; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let (r, w) = (fds[0], fds[1]);
        let init = raw_fork()?;
        if init > 0 {
            libc::close(w);
            close_all_but(r);
            let mut status = 0;
            while libc::waitpid(init, &mut status, 0) < 0 {
                if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    libc::_exit(127);
                }
            }
            let mut buf = [0u8; 4];
            if libc::read(r, buf.as_mut_ptr().cast(), 4) == 4 {
                status = libc::c_int::from_ne_bytes(buf);
            }
            end_as(status);
        }
        libc::close(r);
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        let provider = raw_fork()?;
        if provider == 0 {
            libc::close(w);
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            return Ok(());
        }
        close_all_but(w);
        let mut status = 0;
        loop {
            let p = libc::waitpid(-1, &mut status, 0);
            if p == provider {
                let bytes = status.to_ne_bytes();
                libc::write(w, bytes.as_ptr().cast(), 4);
                libc::_exit(0);
            }
            if p < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(127);
            }
        }
    }
}
