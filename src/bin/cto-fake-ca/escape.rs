//! `escape`: a hostile provider for the sandbox's self-check, and the same attempts
//! planted in the code the fixture's tests import (whose report lands in the tests'
//! temp folder, `judge/tmp/escape-tests.json`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use std::io::Write;
use std::time::Duration;

use super::die;

/// The escape targets: the ledger home (told, or guessed from the run folder's place in
/// `<ledger>/runs/<run>/workspace`), a file outside the run, a loopback port.
struct Targets {
    ledger: PathBuf,
    run: PathBuf,
    read: Option<PathBuf>,
    port: Option<u16>,
    /// A UNIX socket listening on the host (an ssh-agent, docker's).
    socket: Option<PathBuf>,
    /// The key of a SysV shared memory segment on the host.
    shm_key: Option<i32>,
}

impl Targets {
    fn get(repo: &Path) -> Targets {
        let run = repo.parent().unwrap_or(repo).to_path_buf();
        let ledger = env::var_os("CTO_FAKE_CA_ESCAPE_LEDGER")
            .map(PathBuf::from)
            .unwrap_or_else(|| run.join("../.."));
        Targets {
            ledger,
            run,
            read: env::var_os("CTO_FAKE_CA_ESCAPE_READ").map(PathBuf::from),
            port: env::var("CTO_FAKE_CA_ESCAPE_PORT")
                .ok()
                .and_then(|p| p.parse().ok()),
            socket: env::var_os("CTO_FAKE_CA_ESCAPE_SOCKET").map(PathBuf::from),
            shm_key: env::var("CTO_FAKE_CA_ESCAPE_SHM_KEY")
                .ok()
                .and_then(|k| k.parse().ok()),
        }
    }
}

fn attempt<T: std::fmt::Debug, E: std::fmt::Display>(
    out: &mut Vec<serde_json::Value>,
    name: &str,
    r: Result<T, E>,
) {
    let (succeeded, detail) = match r {
        Ok(v) => (true, format!("{v:?}")),
        Err(e) => (false, e.to_string()),
    };
    let detail: String = detail.chars().take(200).collect();
    println!(
        "ca (fake): escape {name}: {}",
        if succeeded { "SUCCEEDED" } else { "blocked" }
    );
    out.push(serde_json::json!({"name": name, "succeeded": succeeded, "detail": detail}));
}

pub(crate) fn escape(repo: &Path) {
    let t = Targets::get(repo);
    let l = &t.ledger;
    let mut out = Vec::new();
    attempt(
        &mut out,
        "ledger_read",
        fs::read(l.join("ledger.db")).map(|b| b.len()),
    );
    attempt(
        &mut out,
        "ledger_list",
        fs::read_dir(l.join("objects")).map(|d| d.count()),
    );
    // The folder holding this run's folder holds the other runs (wherever --runs-dir put it).
    let runs = t.run.parent().unwrap_or(&t.run);
    attempt(&mut out, "runs_list", fs::read_dir(runs).map(|d| d.count()));
    attempt(
        &mut out,
        "ledger_write",
        fs::write(l.join("planted-by-provider"), "planted\n"),
    );
    // A descriptor the harness left open into the ledger (outside this run) would bypass
    // every path rule.
    let leaked: Vec<String> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| fs::read_link(e.path()).ok())
                .filter(|p| {
                    let l = fs::canonicalize(l).unwrap_or(l.clone());
                    let run = fs::canonicalize(&t.run).unwrap_or(t.run.clone());
                    p.starts_with(&l) && !p.starts_with(&run)
                })
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    attempt(
        &mut out,
        "ledger_fd",
        if leaked.is_empty() {
            Err("no descriptor into the ledger".to_string())
        } else {
            Ok(leaked)
        },
    );
    host_attempts(&t, &mut out);
    if let Some(port) = t.port {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        attempt(
            &mut out,
            "network",
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| port),
        );
    }
    let parent = rustix::process::getppid();
    attempt(
        &mut out,
        "signal",
        match parent {
            Some(p) => rustix::process::kill_process(p, rustix::process::Signal::CONT)
                .map(|_| p.as_raw_nonzero().get())
                .map_err(|e| e.to_string()),
            None => Err("no parent".into()),
        },
    );
    let caps = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("CapEff:"))
                .map(|l| l["CapEff:".len()..].trim().to_string())
        })
        .unwrap_or_default();
    attempt(
        &mut out,
        "capabilities",
        if caps.trim_start_matches('0').is_empty() {
            Err(format!("CapEff {caps}"))
        } else {
            Ok(caps)
        },
    );
    attempt(
        &mut out,
        "workspace_write",
        fs::write(repo.join("escape-probe.txt"), "ok\n"),
    );
    let doc = serde_json::json!({"attempts": out});
    fs::write(
        repo.join("escape-provider.json"),
        serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .unwrap_or_else(|e| die(&format!("cannot write escape-provider.json: {e}")));
}

/// What Landlock alone does not stop: re-moding files outside the run, connecting to
/// the host's sockets, seeing its processes and its SysV IPC.
fn host_attempts(t: &Targets, out: &mut Vec<serde_json::Value>) {
    let l = &t.ledger;
    if let Some(p) = &t.read {
        attempt(out, "outside_read", fs::read(p).map(|b| b.len()));
        // Landlock has no rule for modes: only a root without the file stops this.
        use std::os::unix::fs::PermissionsExt;
        attempt(
            out,
            "outside_chmod",
            fs::set_permissions(p, fs::Permissions::from_mode(0o666)),
        );
    }
    attempt(out, "ledger_chmod", {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(l, fs::Permissions::from_mode(0o777))
    });
    if let Some(p) = &t.socket {
        attempt(
            out,
            "unix_socket",
            std::os::unix::net::UnixStream::connect(p).map(|_| p.display().to_string()),
        );
    }
    let harness = harness_pid();
    attempt(out, "host_processes", harness.clone());
    // Its environment holds the caller's (credentials): not for the provider to read,
    // even of the namespace's own init, which is a fork of the harness.
    let init_env = fs::read("/proc/1/environ").map(|b| b.len());
    attempt(
        out,
        "harness_environ",
        match harness {
            Ok(pid) => fs::read(format!("/proc/{pid}/environ"))
                .map(|b| b.len())
                .map_err(|e| e.to_string()),
            Err(_) => init_env.map_err(|e| e.to_string()),
        },
    );
    if let Some(key) = t.shm_key {
        // SAFETY: shmget only looks the key up (no IPC_CREAT).
        let id = unsafe { libc::shmget(key, 0, 0) };
        attempt(
            out,
            "host_ipc",
            if id >= 0 {
                Ok(id)
            } else {
                Err(std::io::Error::last_os_error())
            },
        );
    }
}

/// The harness's own process, found through `/proc` by its command line: in a PID
/// namespace with a `/proc` of its own, only the namespace's init (pid 1, a fork of the
/// harness) is there, and no process of the host.
fn harness_pid() -> Result<u32, String> {
    let rd = fs::read_dir("/proc").map_err(|e| e.to_string())?;
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid != 1 && cmdline.split(|b| *b == 0).any(|a| a == b"stage2") {
            return Ok(pid);
        }
    }
    Err("no process of the harness in /proc".into())
}

/// Appends to `strings.py` code that tries the same escapes when the tests import it.
pub(crate) fn plant(repo: &Path) {
    let t = Targets::get(repo);
    let lit = |v: &str| serde_json::to_string(v).expect("json");
    let read = t
        .read
        .as_ref()
        .map_or("None".into(), |p| lit(&p.display().to_string()));
    let port = t.port.map_or("None".into(), |p| p.to_string());
    let socket = t
        .socket
        .as_ref()
        .map_or("None".into(), |p| lit(&p.display().to_string()));
    let code = format!(
        r#"

def _cto_escape():  # planted by the fake provider's escape behaviour
    import json, os, signal, socket
    out = []
    def attempt(name, f):
        try:
            out.append({{"name": name, "succeeded": True, "detail": repr(f())[:200]}})
        except Exception as e:
            out.append({{"name": name, "succeeded": False, "detail": repr(e)[:200]}})
    ledger = {ledger}
    read, port, sock = {read}, {port}, {socket}
    attempt("ledger_read", lambda: len(open(os.path.join(ledger, "ledger.db"), "rb").read()))
    attempt("ledger_list", lambda: len(os.listdir(os.path.join(ledger, "objects"))))
    attempt("ledger_write", lambda: open(os.path.join(ledger, "planted-by-tests"), "w").write("planted"))
    if read is not None:
        attempt("outside_read", lambda: len(open(read, "rb").read()))
        attempt("outside_chmod", lambda: os.chmod(read, 0o666))
    attempt("ledger_chmod", lambda: os.chmod(ledger, 0o777))
    if sock is not None:
        def _connect():
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.close()
        attempt("unix_socket", _connect)
    def _harness():
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    c = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
                except OSError:
                    continue
                if b"stage2" in c and p != "1":
                    return p
        raise LookupError("no process of the harness in /proc")
    attempt("host_processes", _harness)
    if port is not None:
        attempt("network", lambda: socket.create_connection(("127.0.0.1", port), 2).close())
    attempt("signal", lambda: os.kill(os.getppid(), signal.SIGCONT))
    # The tests' folder is read-only to them: the report goes to their temp folder.
    with open(os.path.join(os.environ.get("TMPDIR", "."), "escape-tests.json"), "w") as f:
        json.dump({{"attempts": out}}, f, indent=1)


_cto_escape()
"#,
        ledger = lit(&t.ledger.display().to_string()),
    );
    let p = repo.join("strings.py");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap_or_else(|e| die(&format!("cannot open {}: {e}", p.display())));
    f.write_all(code.as_bytes())
        .unwrap_or_else(|e| die(&format!("cannot write {}: {e}", p.display())));
}
