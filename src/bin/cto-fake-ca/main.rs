//! A fake WorkOS Case `ca` for the default Stage 2 lane. It accepts Case's CLI
//! (`ca run --task FILE --mode unattended`), reads `CASE_DATA_DIR` like the real
//! one, and behaves as `CTO_FAKE_CA_BEHAVIOR` says:
//!
//! - `solve`: copy the fixture's solution (`CTO_FAKE_CA_SOLUTION`) into the repo, exit 0
//! - `fail`: write a wrong implementation, exit 1
//! - `hang`: sleep until killed
//! - `hang-grandchild`: start a child that sleeps, then sleep until killed
//! - `crash`: abort (SIGABRT)
//! - `noop`: change nothing and exit 0 (what the real `ca` does when its model is unreachable)
//! - `escape`: a hostile provider, for the sandbox's self-check: try to read, list and
//!   write the ledger home (`CTO_FAKE_CA_ESCAPE_LEDGER`), read a file outside the run
//!   (`CTO_FAKE_CA_ESCAPE_READ`), connect to a loopback port (`CTO_FAKE_CA_ESCAPE_PORT`),
//!   signal the harness and keep capabilities; write what succeeded to
//!   `escape-provider.json` in the repo; then solve, planting the same attempts in
//!   `strings.py` so the fixture's tests try them too (`escape-tests.json`)
//! - `agent`: Case's pipeline as a model client: for each role (implementer, verifier,
//!   reviewer, closer, retrospective) stream chat completions from the model pi's
//!   `$HOME/.pi/agent/models.json` names, run the tool calls it answers with (read,
//!   write, edit) in the repo, until an `AGENT_RESULT` block; exit 0 even when a phase
//!   failed, as Case does
//!
//! - `shadow`, `edit-test`, `delete-test`, `git-worktree`, `gitdir`, `fork-chain`, `fifo`,
//!   `flood`, `fill`: providers that go after their own judge (see `hostile.rs`)
//!
//! It writes `$HOME/fake-ca-started` first, so tests can prove whether it ran, and
//! records the pids it started in `$HOME/fake-ca-pids` (as its `/proc` numbers them).

mod agent;
mod escape;
mod hostile;

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

fn die(msg: &str) -> ! {
    eprintln!("ca (fake): {msg}");
    exit(2)
}

/// This process's pid as its `/proc` numbers it: in the sandbox, its PID namespace's
/// (the host's processes are not there to see); unconfined, the host's.
fn global_pid() -> u32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

fn note_pid(pid: u32) {
    if let Some(home) = env::var_os("HOME") {
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&home).join("fake-ca-pids"))
        {
            let _ = writeln!(f, "{pid}");
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        sleep(Duration::from_secs(3600));
    }
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| die(&format!("cannot read {}: {e}", path.display())));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| die(&format!("{} is not JSON: {e}", path.display())))
}

/// What `ca run` was asked to work on, read as the real one reads it.
struct Case {
    repo: PathBuf,
    provider: String,
    model: String,
    task_id: String,
}

/// `ca run --task FILE --mode unattended` (and `--grandchild`, `--help`); the task file.
fn task_from_args() -> PathBuf {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--grandchild") {
        note_pid(global_pid());
        sleep_forever();
    }
    if args.first().map(String::as_str) == Some("--fork-chain") {
        let left = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        hostile::fork_chain(left);
        exit(0);
    }
    if args.first().map(String::as_str) == Some("--help") {
        println!("ca (fake WorkOS Case provider shipped with cto-ledger)\nusage: ca run --task FILE --mode unattended");
        exit(0);
    }
    let mut task = None;
    let mut mode = None;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("run") => {}
        _ => die("usage: ca run --task FILE --mode unattended"),
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--task" => task = it.next().cloned(),
            "--mode" => mode = it.next().cloned(),
            other => die(&format!("unknown argument {other}")),
        }
    }
    if mode.as_deref() != Some("unattended") {
        die("--mode unattended is required");
    }
    PathBuf::from(task.unwrap_or_else(|| die("--task is required")))
}

/// `CASE_DATA_DIR`'s `config.json` and `projects.json`, and the task.
fn read_case(task: &Path) -> Case {
    let data = PathBuf::from(
        env::var_os("CASE_DATA_DIR").unwrap_or_else(|| die("CASE_DATA_DIR is not set")),
    );
    let config = json(&data.join("config.json"));
    let text = |v: &serde_json::Value, what: &str| -> String {
        v.as_str()
            .unwrap_or_else(|| die(&format!("{what} is missing")))
            .to_string()
    };
    let provider = text(
        &config["models"]["default"]["provider"],
        "config.json models.default.provider",
    );
    let model = text(
        &config["models"]["default"]["model"],
        "config.json models.default.model",
    );
    let projects = json(&data.join("projects.json"));
    let task_json = json(task);
    let repo_name = text(&task_json["repo"], "the task's repo");
    let task_id = text(&task_json["id"], "the task's id");
    let repo = projects["repos"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"].as_str() == Some(&repo_name)))
        .and_then(|r| r["path"].as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| die(&format!("repo {repo_name} is not in projects.json")));
    Case {
        repo,
        provider,
        model,
        task_id,
    }
}

fn main() {
    let task = task_from_args();
    if let Some(home) = env::var_os("HOME") {
        let _ = fs::write(
            Path::new(&home).join("fake-ca-started"),
            format!("{}\n", global_pid()),
        );
    }
    note_pid(global_pid());
    let case = read_case(&task);
    let (repo, provider, model) = (&case.repo, &case.provider, &case.model);
    println!(
        "ca (fake): task {} on {} with model {provider}/{model}",
        case.task_id,
        repo.display()
    );
    let behavior = env::var("CTO_FAKE_CA_BEHAVIOR").unwrap_or_else(|_| "solve".into());
    let log_dir = repo.join(".case").join(&case.task_id);
    let _ = fs::create_dir_all(&log_dir);
    let _ = fs::write(log_dir.join("events.jsonl"), format!("{{\"event\":\"started\",\"behavior\":\"{behavior}\",\"model\":\"{provider}/{model}\"}}\n"));
    behave(&behavior, &case);
}

fn behave(behavior: &str, case: &Case) {
    let repo = &case.repo;
    match behavior {
        "solve" => solve(repo),
        "agent" => agent::agent(repo, &case.model, &case.task_id),
        "escape" => {
            escape::escape(repo);
            solve(repo);
            escape::plant(repo);
        }
        "fail" => {
            let p = repo.join("strings.py");
            let mut text = fs::read_to_string(&p).unwrap_or_default();
            text.push_str("\n\ndef slugify(text: str) -> str:  # fake provider: wrong on purpose\n    return text\n");
            fs::write(&p, text)
                .unwrap_or_else(|e| die(&format!("cannot write {}: {e}", p.display())));
            eprintln!("ca (fake): pipeline failed");
            exit(1);
        }
        "hang" => sleep_forever(),
        "hang-grandchild" => hang_with_grandchild(),
        "crash" => std::process::abort(),
        "noop" => println!("ca (fake): model unreachable; nothing changed"),
        other if hostile::behave(other, repo) => {}
        other => die(&format!("unknown CTO_FAKE_CA_BEHAVIOR {other}")),
    }
}

fn hang_with_grandchild() -> ! {
    let me = env::current_exe().unwrap_or_else(|e| die(&format!("cannot find myself: {e}")));
    let mut child = Command::new(me)
        .arg("--grandchild")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| die(&format!("cannot start grandchild: {e}")));
    // The grandchild notes its own pid (as the host numbers it).
    // Hang by waiting on a child that never exits.
    let _ = child.wait();
    sleep_forever()
}

fn solve(repo: &Path) {
    let sol = PathBuf::from(
        env::var_os("CTO_FAKE_CA_SOLUTION")
            .unwrap_or_else(|| die("CTO_FAKE_CA_SOLUTION is not set")),
    );
    let entries = fs::read_dir(&sol)
        .unwrap_or_else(|e| die(&format!("cannot read solution {}: {e}", sol.display())));
    for e in entries.flatten() {
        if e.path().is_file() {
            fs::copy(e.path(), repo.join(e.file_name()))
                .unwrap_or_else(|err| die(&format!("cannot apply {}: {err}", e.path().display())));
            println!("ca (fake): wrote {}", e.file_name().to_string_lossy());
        }
    }
}
