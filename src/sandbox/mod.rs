//! The kernel sandbox Stage 2 runs a provider and the fixture's tests in. Landlock
//! rules (filesystem, TCP, signal and abstract-socket scoping) at the newest ABI the
//! kernel offers; a user namespace (no capabilities over the host) and, for "no
//! network", a network namespace with no interface up; no new privileges; no core
//! dumps. Everything is prepared before the fork (paths opened, rulesets created), so
//! the child only makes system calls. The process also gets a PID namespace of its own
//! (everything it starts dies with it), a control group with a process and a memory
//! limit where this machine allows one, and a file-size limit. The only module that
//! touches Landlock, namespaces and cgroups: the ruleset and its report are
//! [`landlock_rules`], the namespaces [`namespaces`], the control group [`cgroup`].

use landlock_rules::{open_existing, rules, ruleset, Kernel};
pub(crate) use namespaces::{probe, UserMaps};

mod cgroup;
mod landlock_rules;
mod namespaces;
mod root;

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use landlock::RulesetCreated;
use rustix::thread::UnshareFlags;
use serde::{Deserialize, Serialize};

pub(crate) use cgroup::Usage;

/// What a sandboxed process may reach on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Net {
    /// Nothing: a network namespace with no interface up, and no TCP by Landlock.
    None,
    /// TCP connections to these ports only (no TCP listening).
    Tcp(Vec<u16>),
}

/// What a sandboxed process may touch. Paths that do not exist are left out.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Read and execute (folders: everything beneath).
    pub read_only: Vec<PathBuf>,
    /// Read, write, create and remove beneath.
    pub read_write: Vec<PathBuf>,
    pub net: Net,
    /// Ports added by `--allow-net` (already in `net`), for the record.
    pub allow_net: Vec<u16>,
    pub limits: Limits,
}

/// What the kernel bounds for a sandboxed process and everything it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Processes at once (a cgroup's `pids.max`).
    pub processes: u64,
    /// Memory (a cgroup's memory limit).
    pub memory_bytes: u64,
    /// The largest file it may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
}

/// The `sandbox` object of `report.json`: what was asked, and what the kernel enforced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SandboxReport {
    pub enabled: bool,
    /// `landlock` when enabled.
    pub mechanism: Option<String>,
    /// The Landlock ABI the rules were written for (the kernel's, or the newest this
    /// build knows when the kernel's is newer).
    pub abi: Option<u32>,
    pub read_only: Vec<String>,
    pub read_write: Vec<String>,
    pub network: NetworkReport,
    pub rules: Vec<Rule>,
    /// Why there is no sandbox (`--no-sandbox`), when there is none.
    pub waived: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct NetworkReport {
    /// `none`, `tcp` (the listed ports) or `unrestricted` (no sandbox).
    pub mode: String,
    pub tcp_connect: Vec<u16>,
    pub allow_net: Vec<u16>,
    /// Whether the process got its own network namespace.
    pub namespace: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Rule {
    pub rule: String,
    pub enforced: bool,
    pub by: String,
}

impl SandboxReport {
    pub(crate) fn waived(why: &str) -> SandboxReport {
        SandboxReport {
            enabled: false,
            mechanism: None,
            abi: None,
            read_only: Vec::new(),
            read_write: Vec::new(),
            network: NetworkReport {
                mode: "unrestricted".into(),
                tcp_connect: Vec::new(),
                allow_net: Vec::new(),
                namespace: false,
            },
            rules: Vec::new(),
            waived: Some(why.into()),
        }
    }

    /// One line for the journal and `runs`: `landlock ABI 7, network none`.
    pub(crate) fn summary(&self) -> String {
        if !self.enabled {
            return format!("off ({})", self.waived.as_deref().unwrap_or("not applied"));
        }
        let net = match self.network.mode.as_str() {
            "tcp" => format!(
                "tcp {}",
                self.network
                    .tcp_connect
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            m => m.to_string(),
        };
        format!(
            "{} ABI {}, network {net}",
            self.mechanism.as_deref().unwrap_or("?"),
            self.abi.unwrap_or(0)
        )
    }
}

/// The kernel cannot enforce the policy: the run must not start.
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

/// A sandbox ready to be put on a command: the Landlock ruleset is created and its
/// rules added in this process, the cgroup made; the child joins the cgroup, enters its
/// namespaces, forks its namespace's first process, restricts itself and execs.
pub(crate) struct Prepared {
    ruleset: RulesetCreated,
    maps: Option<(UserMaps, UnshareFlags)>,
    root: Option<root::Plan>,
    cgroup: Option<cgroup::Cgroup>,
    file_bytes: u64,
    pub report: SandboxReport,
}

/// Lives as long as the sandboxed process may: its cgroup (emptied and removed on drop).
pub(crate) struct Guard {
    cgroup: Option<cgroup::Cgroup>,
}

impl Guard {
    /// What the kernel counted against the cgroup's limits, if there is one.
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.cgroup.as_ref().map(cgroup::Cgroup::usage)
    }
}

/// Builds the sandbox for `policy`, or says why this kernel cannot enforce it.
/// Required: filesystem rules (Landlock ABI 1) and the network policy (Landlock TCP
/// rules, ABI 4, or for "none" a network namespace). Best effort, recorded as not
/// enforced where the kernel lacks them: signal and abstract-socket scoping (ABI 6),
/// UDP rules (ABI 10, or the network namespace), the user namespace.
/// Starts the kernel probes (namespaces, a root of its own) on a thread of their own:
/// each is asked once per process, and a run has other work to do meanwhile.
pub(crate) fn warm_probes() {
    std::thread::spawn(|| {
        namespaces::namespaces_work();
        namespaces::own_root_works();
    });
}

pub(crate) fn prepare(policy: &Policy) -> std::result::Result<Prepared, Unavailable> {
    let k = Kernel::probe(policy)?;
    let none = policy.net == Net::None;
    let ro = open_existing(&policy.read_only);
    let rw = open_existing(&policy.read_write);
    let created = ruleset(&k, policy, &ro, &rw)?;
    let root = match k.root {
        true => Some(own_root(&k, &created, &ro, &rw)?),
        false => None,
    };
    let maps = k.userns.then(|| {
        let mut extra = UnshareFlags::NEWPID | UnshareFlags::NEWIPC;
        if k.netns {
            extra |= UnshareFlags::NEWNET;
        }
        if k.root {
            extra |= UnshareFlags::NEWNS;
        }
        (UserMaps::identity(), extra)
    });
    let l = policy.limits;
    let cgroup = cgroup::Cgroup::create(cgroup::CgroupLimits {
        processes: l.processes,
        memory_bytes: l.memory_bytes,
    });
    let mut rules = rules(&k, none);
    rules.extend(process_rules(&k, cgroup.as_ref(), l));
    let report = SandboxReport {
        enabled: true,
        mechanism: Some("landlock".into()),
        abi: Some(k.abi_n),
        read_only: ro.iter().map(|(p, ..)| crate::paths::lossy(p)).collect(),
        read_write: rw.iter().map(|(p, ..)| crate::paths::lossy(p)).collect(),
        network: NetworkReport {
            mode: if none { "none".into() } else { "tcp".into() },
            tcp_connect: match &policy.net {
                Net::None => Vec::new(),
                Net::Tcp(p) => p.clone(),
            },
            allow_net: policy.allow_net.clone(),
            namespace: k.netns,
        },
        rules,
        waived: None,
    };
    Ok(Prepared {
        ruleset: created,
        maps,
        root,
        cgroup,
        file_bytes: l.file_bytes,
        report,
    })
}

/// The root of its own for `ro` and `rw`, with the new `/proc` readable under Landlock.
fn own_root(
    k: &Kernel,
    ruleset: &RulesetCreated,
    ro: &[(PathBuf, landlock::PathFd, bool)],
    rw: &[(PathBuf, landlock::PathFd, bool)],
) -> std::result::Result<root::Plan, Unavailable> {
    let failed = |e: io::Error| {
        Unavailable(format!("the sandbox's own root could not be prepared: {e}. Pass --no-sandbox to run unconfined, recorded as such"))
    };
    let paths: Vec<(PathBuf, bool, bool)> = ro
        .iter()
        .map(|(p, _, f)| (p.clone(), *f, true))
        .chain(rw.iter().map(|(p, _, f)| (p.clone(), *f, false)))
        .collect();
    let dup: Option<std::os::fd::OwnedFd> = ruleset.try_clone().map_err(failed)?.into();
    let plan = root::Plan::new(&paths).map_err(failed)?;
    Ok(match dup {
        Some(fd) => plan.with_proc_rule(fd, landlock::AccessFs::from_read(k.abi).bits()),
        None => plan,
    })
}

/// The rules on the process tree: its PID namespace, its cgroup's limits, file size.
fn process_rules(k: &Kernel, cg: Option<&cgroup::Cgroup>, l: Limits) -> Vec<Rule> {
    let userns = k.userns;
    let rule = |rule: &str, enforced: bool, by: String| Rule {
        rule: rule.into(),
        enforced,
        by,
    };
    let no_cgroup = "not enforced: this machine gives cto-ledger no cgroup it may write (run as root, or delegate a cgroup v2 subtree)";
    vec![
        rule(
            "pid_namespace",
            userns,
            if userns {
                "a PID namespace of its own: when its first process ends, the kernel kills every process left in it".into()
            } else {
                "not enforced: no user namespace could be made; processes left behind are killed by group and as orphans".into()
            },
        ),
        match cg.filter(|c| c.limits_processes()) {
            Some(_) => rule(
                "processes",
                true,
                format!("a cgroup's pids.max {}", l.processes),
            ),
            None => rule("processes", false, no_cgroup.into()),
        },
        match cg.filter(|c| c.limits_memory()) {
            Some(_) => rule(
                "memory",
                true,
                format!("a cgroup's memory limit of {} bytes", l.memory_bytes),
            ),
            None => rule("memory", false, no_cgroup.into()),
        },
        rule(
            "file_size",
            true,
            format!("RLIMIT_FSIZE {} bytes", l.file_bytes),
        ),
        rule(
            "own_root",
            k.root,
            if k.root {
                "a mount namespace whose root holds only the listed folders and files (read-only ones mounted read-only, so their modes and times cannot change either) and a /proc of its own PID namespace: nothing else of the machine, its sockets or its processes is there".into()
            } else {
                "not enforced: no mount namespace could be made; Landlock denies reading and writing outside the listed folders, but not changing modes or connecting to sockets there".into()
            },
        ),
        rule(
            "ipc",
            userns,
            if userns {
                "an IPC namespace of its own: SysV shared memory, semaphores and message queues die with it".into()
            } else {
                "not enforced: no user namespace could be made".into()
            },
        ),
    ]
}

impl Prepared {
    /// Makes `cmd` confine itself before it execs; the runner has already given it its
    /// own session (in the hook before this one). The guard holds the cgroup.
    pub(crate) fn install(self, cmd: &mut Command) -> Guard {
        let mut ruleset = Some(self.ruleset);
        let maps = self.maps;
        let root = self.root;
        let cwd = cmd
            .get_current_dir()
            .and_then(|d| std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok());
        let file_bytes = self.file_bytes;
        let cgroup = self.cgroup;
        let joiner = cgroup.as_ref().map(cgroup::Cgroup::joiner);
        // SAFETY: between fork and exec this only makes system calls (setrlimit, writes to
        // cgroup and /proc files, unshare, clone, waitpid, capset, prctl,
        // landlock_restrict_self) on data prepared before the fork; nothing allocates or
        // takes a lock.
        unsafe {
            cmd.pre_exec(move || {
                use rustix::process::{setrlimit, Resource, Rlimit};
                setrlimit(
                    Resource::Core,
                    Rlimit {
                        current: Some(0),
                        maximum: Some(0),
                    },
                )?;
                let fsize = Rlimit {
                    current: Some(file_bytes),
                    maximum: Some(file_bytes),
                };
                setrlimit(Resource::Fsize, fsize)?;
                if let Some(j) = &joiner {
                    j.join_self()?;
                }
                if let Some((m, extra)) = &maps {
                    m.enter(*extra)?;
                    if extra.contains(UnshareFlags::NEWPID) {
                        namespaces::become_init()?;
                    }
                }
                if let Some(r) = &root {
                    r.enter(cwd.as_deref())?;
                }
                let none = rustix::thread::CapabilitySet::empty();
                rustix::thread::set_capabilities(
                    None,
                    rustix::thread::CapabilitySets {
                        effective: none,
                        permitted: none,
                        inheritable: none,
                    },
                )?;
                let Some(rs) = ruleset.take() else {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                };
                match rs.restrict_self() {
                    Ok(st)
                        if st.no_new_privs
                            && st.ruleset == landlock::RulesetStatus::FullyEnforced =>
                    {
                        Ok(())
                    }
                    _ => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
                }
            });
        }
        Guard { cgroup }
    }
}
