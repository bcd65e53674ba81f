//! The kernel sandbox around the provider and the fixture's tests: a hostile provider
//! (the fake's `escape` behaviour, which also plants code in what the tests import)
//! tries each escape; with the sandbox every one fails and the run still passes,
//! without it (`--no-sandbox`) every one succeeds, so the checks can fail.

use std::fs;
use std::net::TcpListener;

use serde_json::Value;

use crate::stage2::{provider_started, stage2, Stage2};
use crate::util::*;

/// Escape targets: a file outside every run folder, a listening loopback port, a UNIX
/// socket listening in a folder of the host (as an ssh-agent's does), and a SysV shared
/// memory segment of the host.
struct Targets {
    secret: std::path::PathBuf,
    _listener: TcpListener,
    port: String,
    socket: std::path::PathBuf,
    _unix: std::os::unix::net::UnixListener,
    shm: Shm,
}

/// A SysV shared memory segment on the host, removed on drop.
struct Shm {
    key: i32,
    id: i32,
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: removes the segment this test made.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

fn targets(env: &Env) -> Targets {
    let secret = env.path("outside/secret.txt");
    fs::create_dir_all(secret.parent().unwrap()).unwrap();
    fs::write(&secret, "the invoking user's secret\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let socket = env.path("outside/agent.sock");
    let unix = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // World-accessible, as a socket meant for one user often is not: only the sandbox
    // may keep the provider away from it.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
    static N: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = 0x0c00_0000 | ((std::process::id() as i32 & 0xffff) << 8) | (n & 0xff);
    // SAFETY: creates a 4 KiB segment under a key of this test's own.
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    Targets {
        secret,
        _listener: listener,
        port,
        socket,
        _unix: unix,
        shm: Shm { key, id },
    }
}

fn escape_run(env: &Env, t: &Targets, extra: &[&str]) -> Stage2 {
    let mut args = vec!["--fake-behavior", "escape"];
    args.extend_from_slice(extra);
    stage2(
        env,
        &args,
        &[
            ("CTO_FAKE_CA_ESCAPE_READ", s(&t.secret)),
            ("CTO_FAKE_CA_ESCAPE_PORT", &t.port),
            ("CTO_FAKE_CA_ESCAPE_SOCKET", s(&t.socket)),
            ("CTO_FAKE_CA_ESCAPE_SHM_KEY", &t.shm.key.to_string()),
        ],
    )
}

/// attempt name → succeeded, from `workspace/escape-provider.json` (the provider's) or
/// `judge/tmp/escape-tests.json` (the code it planted, run by the tests).
fn attempts(r: &Stage2, file: &str) -> Vec<(String, bool)> {
    let folder = if file == "escape-tests.json" {
        "judge/tmp"
    } else {
        "workspace"
    };
    let p = r.dir.join(folder).join(file);
    let v: Value = serde_json::from_slice(
        &fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}\n{}", p.display(), r.stderr)),
    )
    .unwrap();
    v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["succeeded"].as_bool().unwrap(),
            )
        })
        .collect()
}

const PROVIDER_ESCAPES: [&str; 14] = [
    "ledger_read",
    "ledger_list",
    "runs_list",
    "ledger_write",
    "outside_read",
    "outside_chmod",
    "ledger_chmod",
    "unix_socket",
    "host_processes",
    "harness_environ",
    "host_ipc",
    "network",
    "signal",
    "capabilities",
];
const TEST_ESCAPES: [&str; 10] = [
    "ledger_read",
    "ledger_list",
    "ledger_write",
    "outside_read",
    "outside_chmod",
    "ledger_chmod",
    "unix_socket",
    "host_processes",
    "network",
    "signal",
];

fn outcome(list: &[(String, bool)], name: &str) -> bool {
    list.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("attempt {name} was not made: {list:?}"))
        .1
}

fn planted(env: &Env) -> Vec<String> {
    fs::read_dir(&env.ledger)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("planted"))
        .collect()
}

#[test]
fn every_escape_of_a_hostile_provider_and_its_planted_test_code_is_blocked() {
    let env = Env::new();
    let t = targets(&env);
    let r = escape_run(&env, &t, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "pass", "the provider still completes");
    let provider = attempts(&r, "escape-provider.json");
    for name in PROVIDER_ESCAPES {
        assert!(
            !outcome(&provider, name),
            "provider escape {name} succeeded: {provider:?}"
        );
    }
    assert!(
        !outcome(&provider, "ledger_fd"),
        "a descriptor into the ledger leaked"
    );
    assert!(
        outcome(&provider, "workspace_write"),
        "the workspace must stay writable"
    );
    let tests = attempts(&r, "escape-tests.json");
    for name in TEST_ESCAPES {
        assert!(
            !outcome(&tests, name),
            "escape {name} from the tests succeeded: {tests:?}"
        );
    }
    assert!(planted(&env).is_empty());
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&t.secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the secret outside the run was re-moded");

    let sb = &r.report["sandbox"];
    assert_eq!(sb["enabled"], true);
    assert_eq!(sb["mechanism"], "landlock");
    assert!(sb["abi"].as_u64().unwrap() >= 4);
    assert_eq!(sb["network"]["mode"], "none");
    let rules: Vec<(&str, bool)> = sb["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap(),
                r["enforced"].as_bool().unwrap(),
            )
        })
        .collect();
    for must in [
        "filesystem",
        "tcp",
        "no_new_privs",
        "no_capabilities",
        "own_root",
        "ipc",
    ] {
        assert!(
            rules.contains(&(must, true)),
            "{must} not enforced: {rules:?}"
        );
    }
    let rw: Vec<&str> = sb["read_write"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !rw.iter()
            .any(|p| *p == s(&env.ledger) || p.ends_with("/runs")),
        "{rw:?}"
    );
    assert_eq!(r.report["tests"]["sandbox"]["network"]["mode"], "none");
    assert!(r.report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "provider_sandboxed" && g["passed"] == true));

    let runs = env.ok(["runs", "--json"]).json();
    assert!(
        runs[0]["sandbox"]
            .as_str()
            .unwrap()
            .starts_with("landlock ABI "),
        "{runs}"
    );
    env.ok(["audit"]);
}

#[test]
fn without_the_sandbox_the_same_escapes_succeed_the_choice_is_recorded_and_audit_finds_the_plant() {
    let env = Env::new();
    let t = targets(&env);
    let r = escape_run(&env, &t, &["--no-sandbox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let provider = attempts(&r, "escape-provider.json");
    for name in [
        "ledger_read",
        "ledger_list",
        "ledger_write",
        "outside_read",
        "outside_chmod",
        "ledger_chmod",
        "unix_socket",
        "host_processes",
        "harness_environ",
        "host_ipc",
        "network",
    ] {
        assert!(
            outcome(&provider, name),
            "escape {name} failed even unconfined: {provider:?}"
        );
    }
    let tests = attempts(&r, "escape-tests.json");
    assert!(outcome(&tests, "ledger_write"), "{tests:?}");
    assert_eq!(planted(&env), ["planted-by-provider", "planted-by-tests"]);

    assert_eq!(r.report["sandbox"]["enabled"], false);
    assert_eq!(r.report["sandbox"]["waived"], "--no-sandbox");
    let id = r.report["run_id"].as_str().unwrap();
    let runs = env.ok(["runs", "--wide"]);
    assert!(
        runs.stdout.contains("off (--no-sandbox)"),
        "{}",
        runs.stdout
    );
    let narrow = env.ok(["runs"]).stdout;
    assert!(narrow.contains("pass, unsandboxed"), "{narrow}");
    let shown = env.ok(["show", &format!("run:{id}"), "--json"]).json();
    assert_eq!(shown["run"]["sandbox"], "off (--no-sandbox)", "{shown}");
    let journal = env.db().query_row(
        "SELECT event FROM journal ORDER BY seq DESC LIMIT 1",
        [],
        |row| row.get::<_, String>(0),
    );
    assert!(journal.unwrap().contains("off (--no-sandbox)"));

    let audit = env.run(["audit", "--json"]);
    assert_eq!(audit.code, 1);
    let findings = audit.json()["findings"].to_string();
    assert!(
        findings.contains("planted-by-provider") && findings.contains("\"home\""),
        "{findings}"
    );
}

#[test]
fn a_kernel_without_landlock_blocks_the_run_before_the_provider_starts() {
    let env = Env::new();
    let r = stage2(&env, &[], &[("CTO_LEDGER_TEST_SANDBOX_ABI", "0")]);
    assert_eq!(r.code, 1);
    assert_eq!(r.report["status"], "blocked");
    assert!(!provider_started(&r.dir));
    let note = fs::read_to_string(r.dir.join("backend/provider-sandbox-unavailable.txt")).unwrap();
    assert!(
        note.contains("Landlock") && note.contains("--no-sandbox"),
        "{note}"
    );
    let gate = r.report["gates"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(gate["name"], "provider_sandboxed");
    assert_eq!(gate["passed"], false);
}

#[test]
fn an_older_landlock_abi_records_what_it_cannot_enforce_and_still_confines() {
    let env = Env::new();
    let t = targets(&env);
    let r5 = stage2(
        &env,
        &["--fake-behavior", "escape"],
        &[
            ("CTO_LEDGER_TEST_SANDBOX_ABI", "5"),
            ("CTO_FAKE_CA_ESCAPE_READ", s(&t.secret)),
            ("CTO_FAKE_CA_ESCAPE_PORT", &t.port),
            ("CTO_FAKE_CA_ESCAPE_SOCKET", s(&t.socket)),
            ("CTO_FAKE_CA_ESCAPE_SHM_KEY", &t.shm.key.to_string()),
        ],
    );
    assert_eq!(r5.code, 0, "{}", r5.stderr);
    assert_eq!(r5.report["sandbox"]["abi"], 5);
    let signals = r5.report["sandbox"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "signals")
        .unwrap()
        .clone();
    assert_eq!(signals["enforced"], false, "{signals}");
    assert!(signals["by"].as_str().unwrap().contains("ABI 6"));
    let provider = attempts(&r5, "escape-provider.json");
    for name in ["ledger_read", "ledger_write", "outside_read", "network"] {
        assert!(!outcome(&provider, name), "{name} escaped under ABI 5");
    }
}

#[test]
fn allow_net_opens_one_port_to_the_provider_only_and_is_recorded() {
    let env = Env::new();
    let t = targets(&env);
    let r = escape_run(&env, &t, &["--allow-net", &t.port]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let port: u64 = t.port.parse().unwrap();
    let net = &r.report["sandbox"]["network"];
    assert_eq!(net["mode"], "tcp");
    assert_eq!(net["allow_net"], serde_json::json!([port]));
    assert!(outcome(&attempts(&r, "escape-provider.json"), "network"));
    assert!(!outcome(
        &attempts(&r, "escape-provider.json"),
        "ledger_read"
    ));
    // The tests never get the network.
    assert!(!outcome(&attempts(&r, "escape-tests.json"), "network"));
}

#[test]
fn allow_net_outside_1_to_65535_exits_2_before_any_run() {
    let env = Env::new();
    for bad in ["0", "65536", "http"] {
        let r = env.run(["run", "stage2", "--allow-net", bad]);
        assert_eq!(r.code, 2, "--allow-net {bad}: {}", r.stderr);
        assert!(r.stderr.contains("--allow-net"), "{}", r.stderr);
    }
    assert!(!env.ledger.join("runs").exists());
}

#[test]
fn a_file_planted_in_a_recorded_run_folder_is_an_audit_finding() {
    let env = Env::new();
    let r = stage2(&env, &[], &[]);
    assert_eq!(r.code, 0);
    env.ok(["audit"]);
    fs::write(r.dir.join("workspace/later.py"), "planted after the run\n").unwrap();
    fs::write(r.dir.join("backend/tests.log"), "OK\n").unwrap();
    fs::remove_file(r.dir.join("backend/provider-stderr.log")).unwrap();
    let a = env.run(["audit", "--json"]);
    assert_eq!(a.code, 1);
    let findings = a.json()["findings"].to_string();
    for want in [
        "planted workspace/later.py",
        "changed backend/tests.log",
        "missing backend/provider-stderr.log",
    ] {
        assert!(findings.contains(want), "{want}: {findings}");
    }
}
