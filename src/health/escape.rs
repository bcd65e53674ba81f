//! The sandbox checks: one run of the hostile fake (`escape`), aimed at this ledger, a
//! file outside the run folder and a listening loopback port; each check passes only if
//! every attempt it names was made and failed.

use std::fs;
use std::path::Path;

use super::{Attempts, Ctx, Escape};
use crate::error::{Error, Result};
use crate::stage2::RunOptions;
use crate::state::RunStatus;

fn attempts(p: &Path) -> Attempts {
    let v: serde_json::Value = fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    v["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap_or_default().to_string(),
                        x["succeeded"].as_bool().unwrap_or(true),
                        x["detail"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One run of the hostile fake, aimed at this ledger, a file outside the run folder
/// and a loopback port that is listening.
fn escape_run(cx: &mut Ctx) -> Result<Escape> {
    if let Some(e) = &cx.escape {
        return e
            .clone()
            .map_err(|m| Error::bad_input(m, "see the first sandbox check"));
    }
    let outside = cx.tmp.join("outside-the-run.txt");
    fs::write(&outside, "a file the provider must not read\n")
        .map_err(Error::io("write", &outside))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(Error::io("listen on", Path::new("127.0.0.1:0")))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("listen on", Path::new("127.0.0.1:0")))?
        .port();
    // A UNIX socket listening outside the run (as an ssh-agent's does), and a SysV
    // segment of this process's IPC namespace: neither may be reachable from the run.
    let sock = cx.tmp.join("agent.sock");
    let unix =
        std::os::unix::net::UnixListener::bind(&sock).map_err(Error::io("listen on", &sock))?;
    let shm = Shm::new();
    let mut opts = RunOptions::fake("escape");
    opts.fake_env = vec![
        (
            "CTO_FAKE_CA_ESCAPE_READ".into(),
            outside.display().to_string(),
        ),
        ("CTO_FAKE_CA_ESCAPE_PORT".into(), port.to_string()),
        (
            "CTO_FAKE_CA_ESCAPE_SOCKET".into(),
            sock.display().to_string(),
        ),
    ];
    if let Some(s) = &shm {
        opts.fake_env
            .push(("CTO_FAKE_CA_ESCAPE_SHM_KEY".into(), s.key.to_string()));
    }
    let r = cx.run(opts).map(|o| {
        let ws = o.run_dir.join("workspace");
        let planted = ["planted-by-provider", "planted-by-tests"]
            .iter()
            .filter(|n| cx.home.dir.join(n).exists())
            .map(|n| n.to_string())
            .collect();
        Escape {
            status: o.report.status,
            provider: attempts(&ws.join("escape-provider.json")),
            tests: attempts(&o.run_dir.join("judge/tmp/escape-tests.json")),
            planted,
        }
    });
    drop((listener, unix, shm));
    cx.escape = Some(r.as_ref().map(Escape::clone).map_err(|e| e.to_string()));
    r
}

/// A SysV shared memory segment of this process, removed on drop.
struct Shm {
    key: i32,
    id: i32,
}

impl Shm {
    fn new() -> Option<Shm> {
        let key = 0x0c70_0000 | (std::process::id() as i32 & 0xffff);
        // SAFETY: creates a 4 KiB segment under a key of this process's own.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
        (id >= 0).then_some(Shm { key, id })
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: removes the segment `new` made.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// Passes when every attempt named was made, by the provider (`provider`) and by the
/// code it planted in the tests (`tests`), and failed, while the provider still wrote
/// its workspace and the run passed: a sandbox that blocked everything would fail here.
fn escapes_blocked(cx: &mut Ctx, provider: &[&str], tests: &[&str]) -> Result<(bool, String)> {
    let e = escape_run(cx)?;
    let mut pass = e.status == RunStatus::Passed;
    let mut said = Vec::new();
    let sides: [(&str, &Attempts, &[&str]); 2] = [
        ("provider", &e.provider, provider),
        ("tests", &e.tests, tests),
    ];
    for (who, list, names) in sides {
        for n in names {
            match list.iter().find(|a| a.0 == *n) {
                Some((_, false, why)) => said.push(format!("{who} {n} blocked ({why})")),
                Some((_, true, what)) => {
                    pass = false;
                    said.push(format!("{who} {n} SUCCEEDED ({what})"));
                }
                None => {
                    pass = false;
                    said.push(format!("{who} {n} NOT TRIED"));
                }
            }
        }
    }
    let wrote = e.provider.iter().any(|a| a.0 == "workspace_write" && a.1);
    pass &= wrote;
    said.push(format!(
        "workspace write {}, run {}",
        if wrote { "succeeded" } else { "FAILED" },
        e.status
    ));
    Ok((pass, said.join("; ")))
}

pub(super) fn sandbox_blocks_ledger_read(cx: &mut Ctx) -> Result<(bool, String)> {
    escapes_blocked(
        cx,
        &["ledger_read", "ledger_list", "runs_list", "ledger_fd"],
        &["ledger_read", "ledger_list"],
    )
}

pub(super) fn sandbox_blocks_ledger_write(cx: &mut Ctx) -> Result<(bool, String)> {
    let (pass, detail) = escapes_blocked(cx, &["ledger_write"], &["ledger_write"])?;
    let planted = escape_run(cx)?.planted;
    Ok((
        pass && planted.is_empty(),
        format!("{detail}; files planted in the ledger home: {planted:?}"),
    ))
}

pub(super) fn sandbox_blocks_outside_read(cx: &mut Ctx) -> Result<(bool, String)> {
    escapes_blocked(cx, &["outside_read"], &["outside_read"])
}

pub(super) fn sandbox_blocks_network(cx: &mut Ctx) -> Result<(bool, String)> {
    escapes_blocked(cx, &["network"], &["network"])
}

pub(super) fn sandbox_blocks_signals(cx: &mut Ctx) -> Result<(bool, String)> {
    escapes_blocked(cx, &["signal"], &["signal"])
}

pub(super) fn sandbox_drops_capabilities(cx: &mut Ctx) -> Result<(bool, String)> {
    escapes_blocked(cx, &["capabilities"], &[])
}

pub(super) fn sandbox_blocks_mode_changes(cx: &mut Ctx) -> Result<(bool, String)> {
    let both = ["outside_chmod", "ledger_chmod"];
    escapes_blocked(cx, &both, &both)
}

pub(super) fn sandbox_hides_the_host(cx: &mut Ctx) -> Result<(bool, String)> {
    let mut provider = vec!["unix_socket", "host_processes", "harness_environ"];
    // Tried only where this machine let the check make a SysV segment to aim at.
    if escape_run(cx)?.provider.iter().any(|a| a.0 == "host_ipc") {
        provider.push("host_ipc");
    }
    escapes_blocked(cx, &provider, &["unix_socket", "host_processes"])
}
