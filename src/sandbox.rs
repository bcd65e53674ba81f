//! The kernel sandbox Stage 2 runs a provider and the fixture's tests in. Landlock
//! rules (filesystem, TCP, signal and abstract-socket scoping) at the newest ABI the
//! kernel offers; a user namespace (no capabilities over the host) and, for "no
//! network", a network namespace with no interface up; no new privileges; no core
//! dumps. Everything is prepared before the fork (paths opened, rulesets created), so
//! the child only makes system calls. The only module that touches Landlock and
//! namespaces.

use std::ffi::CStr;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};
use rustix::thread::{unshare_unsafe, UnshareFlags};
use serde::{Deserialize, Serialize};

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

/// The Landlock ABI the running kernel offers (0: none).
pub(crate) fn kernel_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) reads no
    // memory and only returns the ABI version (or -1 with errno).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

/// `CTO_LEDGER_TEST_SANDBOX_ABI=N` makes cto-ledger use at most Landlock ABI N, as on
/// an older kernel (0: as on a kernel without Landlock). It can only take rules away,
/// and what is then not enforced is refused or recorded as on such a kernel.
fn abi_cap() -> i32 {
    crate::env::test_number::<i32>("CTO_LEDGER_TEST_SANDBOX_ABI").map_or(i32::MAX, |n| n.max(0))
}

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

/// Whether this process may make user and network namespaces (asked once).
fn namespaces_work() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let maps = UserMaps::identity();
        probe(|cmd| {
            // SAFETY: only system calls on data prepared before the fork.
            unsafe { cmd.pre_exec(move || maps.enter(UnshareFlags::NEWNET)) };
            Ok(())
        })
    })
}

/// A sandbox ready to be put on a command: the Landlock ruleset is created and its
/// rules added in this process; the child restricts itself and execs.
pub(crate) struct Prepared {
    ruleset: RulesetCreated,
    maps: Option<(UserMaps, UnshareFlags)>,
    pub report: SandboxReport,
}

/// Opens every path of `paths` that exists (a missing one is no rule and no access),
/// with whether what was opened is not a folder (asked of the opened descriptor).
fn open_existing(paths: &[PathBuf]) -> Vec<(PathBuf, PathFd, bool)> {
    let mut out: Vec<(PathBuf, PathFd, bool)> = Vec::new();
    for p in paths {
        if out.iter().any(|(q, ..)| q == p) {
            continue;
        }
        let Ok(fd) = PathFd::new(p) else {
            continue;
        };
        if let Ok(st) = rustix::fs::fstat(&fd) {
            let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
            out.push((p.clone(), fd, !is_dir));
        }
    }
    out
}

/// What this kernel and process can enforce, asked once per sandbox.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    abi: ABI,
    /// The ABI the rules are written for (the kernel's, at most this build's newest).
    abi_n: u32,
    userns: bool,
    /// A network namespace of its own (only for network "none", and with a user namespace).
    netns: bool,
    tcp: bool,
    udp: bool,
    scoped: bool,
}

impl Kernel {
    fn probe(policy: &Policy) -> std::result::Result<Kernel, Unavailable> {
        let kernel = kernel_abi().min(abi_cap());
        if kernel < 1 {
            return Err(Unavailable("this kernel has no Landlock (landlock_create_ruleset reports no ABI): the provider cannot be confined to its run folder. Enable Landlock (boot with lsm=...,landlock) or pass --no-sandbox to run it unconfined, recorded as such".into()));
        }
        let abi = ABI::from(kernel);
        let abi_n = (kernel as u32).min(abi as u32);
        let userns = namespaces_work();
        let k = Kernel {
            abi,
            abi_n,
            userns,
            netns: policy.net == Net::None && userns,
            tcp: abi_n >= 4,
            udp: abi_n >= 10,
            scoped: abi_n >= 6,
        };
        if !k.tcp && !k.netns {
            return Err(Unavailable(format!("the network policy cannot be enforced: Landlock ABI {abi_n} has no TCP rules (ABI 4) and this process may not create a network namespace. Pass --no-sandbox to run unconfined, recorded as such")));
        }
        Ok(k)
    }
}

fn ruleset_failed(what: &str, e: &dyn std::fmt::Display) -> Unavailable {
    Unavailable(format!("the Landlock ruleset could not be {what}: {e}. Pass --no-sandbox to run unconfined, recorded as such"))
}

/// The Landlock ruleset: every access this ABI knows handled (so denied unless a rule
/// grants it), read rules for `ro`, read-write rules for `rw`, and TCP connect rules.
fn ruleset(
    k: &Kernel,
    policy: &Policy,
    ro: &[(PathBuf, PathFd, bool)],
    rw: &[(PathBuf, PathFd, bool)],
) -> std::result::Result<RulesetCreated, Unavailable> {
    let abi = k.abi;
    let mut net_access = AccessNet::from_all(abi);
    if policy.net != Net::None {
        net_access &= !(AccessNet::BindUdp | AccessNet::ConnectSendUdp);
    }
    let setup = |e: landlock::RulesetError| ruleset_failed("set up", &e);
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(setup)?;
    if k.tcp {
        rs = rs.handle_access(net_access).map_err(setup)?;
    }
    if k.scoped {
        rs = rs.scope(Scope::from_all(abi)).map_err(setup)?;
    }
    let mut created = rs.create().map_err(|e| ruleset_failed("created", &e))?;
    let given = |e: landlock::RulesetError| ruleset_failed("given its rules", &e);
    let file_rights = |a: landlock::BitFlags<AccessFs>, is_file: bool| {
        if is_file {
            a & AccessFs::from_file(abi)
        } else {
            a
        }
    };
    for (paths, rights) in [
        (ro, AccessFs::from_read(abi)),
        (rw, AccessFs::from_all(abi)),
    ] {
        for (_, fd, is_file) in paths {
            let rule = PathBeneath::new(fd, file_rights(rights, *is_file));
            created = created.add_rule(rule).map_err(given)?;
        }
    }
    if let (true, Net::Tcp(ports)) = (k.tcp, &policy.net) {
        for port in ports {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(given)?;
        }
    }
    Ok(created)
}

/// Each rule and whether (and by what) it is enforced, for the report.
fn rules(k: &Kernel, none: bool) -> Vec<Rule> {
    let ll = format!("Landlock ABI {}", k.abi_n);
    let rule = |rule: &str, enforced: bool, by: String| Rule {
        rule: rule.into(),
        enforced,
        by,
    };
    let tcp_by = match (k.tcp, k.netns) {
        (true, true) => format!("{ll} and a network namespace"),
        (true, false) => ll.clone(),
        _ => "a network namespace".into(),
    };
    let udp = match (none, k.netns, k.udp) {
        (false, ..) => rule(
            "udp",
            false,
            "not restricted: the model's host name must resolve (DNS)".into(),
        ),
        (true, true, _) => rule("udp", true, "a network namespace".into()),
        (true, false, true) => rule("udp", true, ll.clone()),
        (true, false, false) => rule(
            "udp",
            false,
            format!("not enforced: {ll} has no UDP rules (ABI 10) and no network namespace could be made"),
        ),
    };
    let signals_by = if k.scoped {
        format!("{ll} signal scoping")
    } else {
        format!("not enforced: {ll} has no signal scoping (ABI 6)")
    };
    let sockets_by = match (k.scoped, k.netns) {
        (true, _) => format!("{ll} abstract socket scoping"),
        (false, true) => "a network namespace".into(),
        _ => format!("not enforced: {ll} has no abstract socket scoping (ABI 6)"),
    };
    let caps_by = if k.userns {
        "a user namespace, and every capability set cleared"
    } else {
        "every capability set cleared (no user namespace could be made)"
    };
    vec![
        rule("filesystem", true, ll.clone()),
        rule("tcp", true, tcp_by),
        udp,
        rule("signals", k.scoped, signals_by),
        rule("abstract_unix_sockets", k.scoped || k.netns, sockets_by),
        rule("no_new_privs", true, "prctl(PR_SET_NO_NEW_PRIVS)".into()),
        rule("no_capabilities", true, caps_by.into()),
        rule("no_core_dumps", true, "RLIMIT_CORE 0".into()),
        rule("own_session", true, "setsid".into()),
    ]
}

/// Builds the sandbox for `policy`, or says why this kernel cannot enforce it.
/// Required: filesystem rules (Landlock ABI 1) and the network policy (Landlock TCP
/// rules, ABI 4, or for "none" a network namespace). Best effort, recorded as not
/// enforced where the kernel lacks them: signal and abstract-socket scoping (ABI 6),
/// UDP rules (ABI 10, or the network namespace), the user namespace.
pub(crate) fn prepare(policy: &Policy) -> std::result::Result<Prepared, Unavailable> {
    let k = Kernel::probe(policy)?;
    let none = policy.net == Net::None;
    let ro = open_existing(&policy.read_only);
    let rw = open_existing(&policy.read_write);
    let created = ruleset(&k, policy, &ro, &rw)?;
    let maps = k.userns.then(|| {
        let extra = if k.netns {
            UnshareFlags::NEWNET
        } else {
            UnshareFlags::empty()
        };
        (UserMaps::identity(), extra)
    });
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
        rules: rules(&k, none),
        waived: None,
    };
    Ok(Prepared {
        ruleset: created,
        maps,
        report,
    })
}

impl Prepared {
    /// Makes `cmd` restrict itself before it execs. The runner gives it its own session.
    pub(crate) fn install(self, cmd: &mut Command) {
        let mut ruleset = Some(self.ruleset);
        let maps = self.maps;
        // SAFETY: between fork and exec this only makes system calls (setrlimit, unshare,
        // open/write of /proc files, capset, prctl, landlock_restrict_self) on data
        // prepared before the fork; nothing allocates or takes a lock.
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
                if let Some((m, extra)) = &maps {
                    m.enter(*extra)?;
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
    }
}
