//! The Landlock side of the sandbox: what this kernel can enforce, the ruleset, and the
//! report of every rule and whether it was enforced.

use std::path::PathBuf;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};

use super::namespaces::namespaces_work;

use super::{Net, Policy, Rule, Unavailable};

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

/// Opens every path of `paths` that exists (a missing one is no rule and no access),
/// with whether what was opened is not a folder (asked of the opened descriptor).
pub(super) fn open_existing(paths: &[PathBuf]) -> Vec<(PathBuf, PathFd, bool)> {
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
pub(super) struct Kernel {
    pub(super) abi: ABI,
    /// The ABI the rules are written for (the kernel's, at most this build's newest).
    pub(super) abi_n: u32,
    pub(super) userns: bool,
    /// A network namespace of its own (only for network "none", and with a user namespace).
    pub(super) netns: bool,
    pub(super) tcp: bool,
    pub(super) udp: bool,
    pub(super) scoped: bool,
    /// A root of its own (a mount namespace; see `root`).
    pub(super) root: bool,
}

impl Kernel {
    pub(super) fn probe(policy: &Policy) -> std::result::Result<Kernel, Unavailable> {
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
            root: userns && super::namespaces::own_root_works(),
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
pub(super) fn ruleset(
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
pub(super) fn rules(k: &Kernel, none: bool) -> Vec<Rule> {
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
