//! A root of its own for a sandboxed process (as bubblewrap makes one): in a mount
//! namespace, a read-only tmpfs that holds nothing but the policy's folders and files,
//! bind-mounted at their own paths (read-only ones read-only, so not even their modes or
//! times can change), a `/proc` of the process's own PID namespace, and `/dev/fd`. The
//! rest of the machine is not there at all: no other user's files to re-mode, no
//! `/tmp` or `/run` sockets (ssh-agent, docker, D-Bus) to connect to, no host process
//! to read. Landlock still applies on top: this takes away what Landlock cannot guard.
//!
//! Everything is prepared before the fork; the child makes system calls only.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// One step of building the root, in order.
#[derive(Debug)]
enum Step {
    Dir(CString),
    File(CString),
    Bind {
        from: CString,
        to: CString,
        read_only: bool,
    },
    Link {
        target: &'static CStr,
        at: CString,
    },
}

/// The root a sandboxed process gets, ready to enter.
#[derive(Debug)]
pub(super) struct Plan {
    /// The empty folder the tmpfs is mounted on (removed when the plan is dropped).
    _base: tempfile::TempDir,
    base_c: CString,
    old: CString,
    proc_at: CString,
    steps: Vec<Step>,
    /// The Landlock ruleset (a duplicate of its descriptor) and the read rights to add
    /// for the new `/proc`, which exists only once the child has mounted it.
    ruleset: Option<(OwnedFd, u64)>,
}

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `base` + `p` (an absolute path).
fn under(base: &Path, p: &Path) -> PathBuf {
    base.join(p.strip_prefix("/").unwrap_or(p))
}

impl Plan {
    /// The root for these paths: `(path, is_file, read_only)`. `/proc` is mounted afresh,
    /// never bound from the host.
    pub(super) fn new(paths: &[(PathBuf, bool, bool)]) -> io::Result<Plan> {
        remove_stale_bases();
        let base = tempfile::Builder::new().prefix(BASE_PREFIX).tempdir()?;
        let b = base.path().to_path_buf();
        let mut sorted: Vec<&(PathBuf, bool, bool)> = paths
            .iter()
            .filter(|(p, ..)| p.is_absolute() && p != Path::new("/proc"))
            .collect();
        sorted.sort_by(|x, y| x.0.cmp(&y.0));
        let mut made: BTreeSet<PathBuf> = BTreeSet::new();
        let mut bound: Vec<(&Path, bool)> = Vec::new();
        let mut steps = Vec::new();
        for (p, is_file, read_only) in sorted {
            // Inside a folder already bound, the path exists there: nothing to make, and
            // nothing to bind unless its access differs.
            match bound.iter().find(|(q, _)| p.starts_with(q)) {
                Some((_, ro)) if ro == read_only => continue,
                Some(_) => {}
                None => {
                    for a in p.ancestors().collect::<Vec<_>>().into_iter().rev().skip(1) {
                        if a != p.as_path() && made.insert(a.to_path_buf()) {
                            steps.push(Step::Dir(c(&under(&b, a))?));
                        }
                    }
                    let at = c(&under(&b, p))?;
                    steps.push(if *is_file {
                        Step::File(at)
                    } else {
                        Step::Dir(at)
                    });
                    made.insert(p.clone());
                }
            }
            steps.push(Step::Bind {
                from: c(p)?,
                to: c(&under(&b, p))?,
                read_only: *read_only,
            });
            bound.push((p, *read_only));
        }
        if made.insert(PathBuf::from("/dev")) {
            steps.push(Step::Dir(c(&b.join("dev"))?));
        }
        for (target, name) in [
            (c"/proc/self/fd", "fd"),
            (c"/proc/self/fd/0", "stdin"),
            (c"/proc/self/fd/1", "stdout"),
            (c"/proc/self/fd/2", "stderr"),
        ] {
            steps.push(Step::Link {
                target,
                at: c(&b.join("dev").join(name))?,
            });
        }
        Ok(Plan {
            base_c: c(&b)?,
            old: c(&b.join(".old"))?,
            proc_at: c(&b.join("proc"))?,
            _base: base,
            steps,
            ruleset: None,
        })
    }

    /// Adds read rights (`access`, Landlock bits) for the new `/proc` to `ruleset`, once
    /// the child has mounted it.
    pub(super) fn with_proc_rule(mut self, ruleset: OwnedFd, access: u64) -> Plan {
        self.ruleset = Some((ruleset, access));
        self
    }

    /// In the child, inside its user, mount and PID namespaces, before exec: builds the
    /// root and moves into it, then into `cwd`. System calls only.
    pub(super) fn enter(&self, cwd: Option<&CStr>) -> io::Result<()> {
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )?;
        rustix::mount::mount(
            c"tmpfs",
            self.base_c.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=0755,size=1m"),
        )?;
        for s in &self.steps {
            match s {
                Step::Dir(p) => match rustix::fs::mkdir(p.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Err(rustix::io::Errno::EXIST) | Ok(()) => {}
                    Err(e) => return Err(e.into()),
                },
                Step::File(p) => {
                    let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC;
                    drop(rustix::fs::open(
                        p.as_c_str(),
                        flags,
                        Mode::from_raw_mode(0o644),
                    )?);
                }
                Step::Bind {
                    from,
                    to,
                    read_only,
                } => {
                    rustix::mount::mount_bind_recursive(from.as_c_str(), to.as_c_str())?;
                    let set = if *read_only {
                        ATTR_RDONLY | ATTR_NOSUID
                    } else {
                        ATTR_NOSUID
                    };
                    set_attr(to, set, true)?;
                }
                Step::Link { target, at } => match rustix::fs::symlink(*target, at.as_c_str()) {
                    Err(rustix::io::Errno::EXIST) | Ok(()) => {}
                    Err(e) => return Err(e.into()),
                },
            }
        }
        match rustix::fs::mkdir(self.proc_at.as_c_str(), Mode::from_raw_mode(0o555)) {
            Err(rustix::io::Errno::EXIST) | Ok(()) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::mount::mount(
            c"proc",
            self.proc_at.as_c_str(),
            c"proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        )?;
        if let Some((ruleset, access)) = &self.ruleset {
            let proc_fd = rustix::fs::open(
                self.proc_at.as_c_str(),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            add_path_rule(ruleset.as_raw_fd(), proc_fd.as_raw_fd(), *access)?;
        }
        rustix::fs::mkdir(self.old.as_c_str(), Mode::from_raw_mode(0o700))?;
        // Nothing more may be written to the root itself: only its mounts are writable.
        set_attr(&self.base_c, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV, false)?;
        rustix::process::pivot_root(self.base_c.as_c_str(), self.old.as_c_str())?;
        rustix::process::chdir(c"/")?;
        rustix::mount::unmount(c"/.old", UnmountFlags::DETACH)?;
        rustix::process::chdir(cwd.unwrap_or(c"/"))?;
        Ok(())
    }
}

const BASE_PREFIX: &str = "cto-ledger-root-";

/// Removes the empty base folders of sandboxes whose harness was killed (SIGKILL leaves
/// no chance to) once they are an hour old. A live sandbox never needs its base after
/// the first milliseconds: its root was moved off it by `pivot_root`.
fn remove_stale_bases() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for e in rd.flatten() {
        // The name first: /tmp may hold thousands of entries, and only ours are looked at.
        if !e
            .file_name()
            .as_encoded_bytes()
            .starts_with(BASE_PREFIX.as_bytes())
        {
            continue;
        }
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > hour);
        if old {
            // Only an empty folder goes: rmdir refuses anything else.
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr` (linux/mount.h, MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(path, attr_set)`, over every mount beneath when `recursive`.
fn set_attr(path: &CStr, attr_set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr reads `path` (NUL-terminated) and `attr` (its size given).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `struct landlock_path_beneath_attr` (packed, as the kernel defines it).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, {access, dir})`.
fn add_path_rule(ruleset: i32, dir: i32, access: u64) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: dir,
    };
    // SAFETY: landlock_add_rule reads the attribute struct it is given; both descriptors
    // are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            1 as libc::c_int,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
