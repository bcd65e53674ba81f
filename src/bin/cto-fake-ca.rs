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
//! It writes `$HOME/fake-ca-started` first, so tests can prove whether it ran, and
//! records the pids it started in `$HOME/fake-ca-pids`.

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

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--grandchild") {
        note_pid(std::process::id());
        sleep_forever();
    }
    if args.first().map(String::as_str) == Some("--help") {
        println!("ca (fake WorkOS Case provider shipped with cto-ledger)\nusage: ca run --task FILE --mode unattended");
        return;
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
    let task = PathBuf::from(task.unwrap_or_else(|| die("--task is required")));
    if mode.as_deref() != Some("unattended") {
        die("--mode unattended is required");
    }
    if let Some(home) = env::var_os("HOME") {
        let _ = fs::write(
            Path::new(&home).join("fake-ca-started"),
            format!("{}\n", std::process::id()),
        );
    }
    note_pid(std::process::id());

    let data = PathBuf::from(
        env::var_os("CASE_DATA_DIR").unwrap_or_else(|| die("CASE_DATA_DIR is not set")),
    );
    let config = json(&data.join("config.json"));
    let provider = config["models"]["default"]["provider"]
        .as_str()
        .unwrap_or_else(|| die("config.json has no models.default.provider"));
    let model = config["models"]["default"]["model"]
        .as_str()
        .unwrap_or_else(|| die("config.json has no models.default.model"));
    let projects = json(&data.join("projects.json"));
    let task_json = json(&task);
    let repo_name = task_json["repo"]
        .as_str()
        .unwrap_or_else(|| die("task has no repo"));
    let task_id = task_json["id"]
        .as_str()
        .unwrap_or_else(|| die("task has no id"));
    let repo = projects["repos"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"].as_str() == Some(repo_name)))
        .and_then(|r| r["path"].as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| die(&format!("repo {repo_name} is not in projects.json")));
    println!(
        "ca (fake): task {task_id} on {} with model {provider}/{model}",
        repo.display()
    );

    let behavior = env::var("CTO_FAKE_CA_BEHAVIOR").unwrap_or_else(|_| "solve".into());
    let log_dir = repo.join(".case").join(task_id);
    let _ = fs::create_dir_all(&log_dir);
    let _ = fs::write(log_dir.join("events.jsonl"), format!("{{\"event\":\"started\",\"behavior\":\"{behavior}\",\"model\":\"{provider}/{model}\"}}\n"));
    match behavior.as_str() {
        "solve" => solve(&repo),
        "agent" => agent(&repo, model, task_id),
        "escape" => {
            escape(&repo);
            solve(&repo);
            plant(&repo);
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
        "hang-grandchild" => {
            let me =
                env::current_exe().unwrap_or_else(|e| die(&format!("cannot find myself: {e}")));
            let mut child = Command::new(me)
                .arg("--grandchild")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| die(&format!("cannot start grandchild: {e}")));
            note_pid(child.id());
            // Hang by waiting on a child that never exits.
            let _ = child.wait();
            sleep_forever();
        }
        "crash" => std::process::abort(),
        "noop" => println!("ca (fake): model unreachable; nothing changed"),
        other => die(&format!("unknown CTO_FAKE_CA_BEHAVIOR {other}")),
    }
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

/// The escape targets: the ledger home (told, or guessed from the run folder's place in
/// `<ledger>/runs/<run>/workspace`), a file outside the run, a loopback port.
struct Targets {
    ledger: PathBuf,
    run: PathBuf,
    read: Option<PathBuf>,
    port: Option<u16>,
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

fn escape(repo: &Path) {
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
    if let Some(p) = &t.read {
        attempt(&mut out, "outside_read", fs::read(p).map(|b| b.len()));
    }
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

/// Appends to `strings.py` code that tries the same escapes when the tests import it.
fn plant(repo: &Path) {
    let t = Targets::get(repo);
    let lit = |v: &str| serde_json::to_string(v).expect("json");
    let read = t
        .read
        .as_ref()
        .map_or("None".into(), |p| lit(&p.display().to_string()));
    let port = t.port.map_or("None".into(), |p| p.to_string());
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
    read, port = {read}, {port}
    attempt("ledger_read", lambda: len(open(os.path.join(ledger, "ledger.db"), "rb").read()))
    attempt("ledger_list", lambda: len(os.listdir(os.path.join(ledger, "objects"))))
    attempt("ledger_write", lambda: open(os.path.join(ledger, "planted-by-tests"), "w").write("planted"))
    if read is not None:
        attempt("outside_read", lambda: len(open(read, "rb").read()))
    if port is not None:
        attempt("network", lambda: socket.create_connection(("127.0.0.1", port), 2).close())
    attempt("signal", lambda: os.kill(os.getppid(), signal.SIGCONT))
    with open("escape-tests.json", "w") as f:
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

/// One streamed chat completion: (text, tool calls as (id, name, arguments), finish reason).
type Answer = (String, Vec<(String, String, String)>, String);

fn post(base: &str, body: &serde_json::Value) -> Result<Answer, String> {
    use std::io::Read;
    let rest = base
        .strip_prefix("http://")
        .ok_or("the model's baseUrl is not http://")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn =
        std::net::TcpStream::connect(hostport).map_err(|e| format!("connect {hostport}: {e}"))?;
    let payload = body.to_string();
    let key = env::var("OPENAI_API_KEY").unwrap_or_default();
    let req = format!(
        "POST {path}/chat/completions HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    conn.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("HTTP {status}: {body}"));
    }
    let (mut content, mut calls, mut finish) = (
        String::new(),
        Vec::<(String, String, String)>::new(),
        String::new(),
    );
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let c: serde_json::Value =
            serde_json::from_str(data).map_err(|e| format!("bad chunk {data}: {e}"))?;
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        if let Some(t) = choice["delta"]["content"].as_str() {
            content.push_str(t);
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap_or(0) as usize;
            while calls.len() <= i {
                calls.push(Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.to_string();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                calls[i].1.push_str(n);
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                calls[i].2.push_str(a);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    Ok((content, calls, finish))
}

/// Runs one tool call in the repo, as pi's tools would; returns what the model is told.
fn run_tool(repo: &Path, name: &str, args: &serde_json::Value) -> String {
    let path = |a: &serde_json::Value| repo.join(a["path"].as_str().unwrap_or(""));
    match name {
        "write" => match fs::write(path(args), args["content"].as_str().unwrap_or("")) {
            Ok(()) => format!("Successfully wrote {}", args["path"].as_str().unwrap_or("")),
            Err(e) => format!("Error: {e}"),
        },
        "read" => fs::read_to_string(path(args)).unwrap_or_else(|e| format!("Error: {e}")),
        "edit" => {
            let p = path(args);
            let (old, new) = (
                args["oldText"].as_str().unwrap_or(""),
                args["newText"].as_str().unwrap_or(""),
            );
            match fs::read_to_string(&p) {
                Ok(t) if !old.is_empty() && t.contains(old) => {
                    match fs::write(&p, t.replacen(old, new, 1)) {
                        Ok(()) => "Successfully edited".into(),
                        Err(e) => format!("Error: {e}"),
                    }
                }
                Ok(_) => "Error: oldText not found".into(),
                Err(e) => format!("Error: {e}"),
            }
        }
        other => format!("Error: the fake agent has no tool `{other}`"),
    }
}

/// The status of the last `<<<AGENT_RESULT {json} AGENT_RESULT>>>` block, as Case parses it.
fn agent_status(text: &str) -> Option<String> {
    let start = text.rfind("<<<AGENT_RESULT")? + "<<<AGENT_RESULT".len();
    let end = start + text[start..].find("AGENT_RESULT>>>")?;
    let v: serde_json::Value = serde_json::from_str(text[start..end].trim()).ok()?;
    v["status"].as_str().map(String::from)
}

fn agent(repo: &Path, model: &str, task_id: &str) {
    let home = PathBuf::from(env::var_os("HOME").unwrap_or_else(|| die("HOME is not set")));
    let models = json(&home.join(".pi/agent/models.json"));
    let base = models["providers"]["openai"]["baseUrl"]
        .as_str()
        .unwrap_or_else(|| die("models.json has no providers.openai.baseUrl"))
        .to_string();
    let task = fs::read_to_string(repo.join(format!(".case/tasks/active/{task_id}.md")))
        .unwrap_or_default();
    let tool = |name: &str| serde_json::json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}});
    let mut failed = false;
    for role in [
        "Implementer",
        "Verifier",
        "Reviewer",
        "Closer",
        "Retrospective",
    ] {
        if failed && role != "Retrospective" {
            continue;
        }
        let tools: Vec<serde_json::Value> = match role {
            "Implementer" | "Retrospective" => ["read", "write", "edit", "bash"].map(tool).to_vec(),
            _ => ["read", "bash"].map(tool).to_vec(),
        };
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": format!("# {role} — fake Case agent\nEnd with <<<AGENT_RESULT {{...}} AGENT_RESULT>>>.")}),
            serde_json::json!({"role": "user", "content": format!("Task {task_id}:\n{task}")}),
        ];
        let mut status = None;
        for _ in 0..10 {
            let body = serde_json::json!({"model": model, "messages": messages, "stream": true,
                "stream_options": {"include_usage": true}, "tools": tools});
            let (content, calls, finish) = match post(&base, &body) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("ca (fake): {role}: model request failed: {e}");
                    break;
                }
            };
            let mut assistant = serde_json::json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                assistant["tool_calls"] = calls
                    .iter()
                    .map(|(id, n, a)| serde_json::json!({"id": id, "type": "function", "function": {"name": n, "arguments": a}}))
                    .collect();
            }
            messages.push(assistant);
            if finish == "tool_calls" {
                for (id, n, a) in &calls {
                    let args: serde_json::Value = serde_json::from_str(a).unwrap_or_default();
                    let out = run_tool(repo, n, &args);
                    println!("ca (fake): {role} ran {n}: {out}");
                    messages.push(
                        serde_json::json!({"role": "tool", "tool_call_id": id, "content": out}),
                    );
                }
                continue;
            }
            status = agent_status(&content);
            break;
        }
        println!(
            "ca (fake): [{}] {}",
            role.to_lowercase(),
            status
                .as_deref()
                .unwrap_or("failed: AGENT_RESULT start delimiter not found")
        );
        if status.as_deref() != Some("completed") {
            failed = true;
        }
    }
    println!(
        "ca (fake): {}",
        if failed {
            "Pipeline failed."
        } else {
            "Pipeline completed successfully"
        }
    );
}
