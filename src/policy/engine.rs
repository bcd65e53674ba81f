//! Evaluating Rego with regorus, in a child process of our own (`cto-ledger
//! __policy-engine`): a policy that never ends, or asks for more memory than exists
//! (`numbers.range(1, 1e12)` allocates before any timer looks), is killed there and
//! named, and cto-ledger itself goes on to record the failure. The child takes one
//! [`Request`] on stdin and writes one [`Reply`] on stdout.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The argument that makes `cto-ledger` the engine (never typed by a person).
pub(crate) const ENGINE_ARG: &str = "__policy-engine";
/// Each policy's evaluation, as regorus's cooperative timer counts it.
const EVAL_LIMIT: Duration = Duration::from_secs(2);
/// The whole child, whatever it does: killed after this.
const CHILD_LIMIT: Duration = Duration::from_secs(10);
/// The child's address space.
const MEMORY_LIMIT: u64 = 2 << 30;
/// What the child may write back.
const REPLY_MAX: u64 = 4 << 20;
/// A request: the policies' text and the input document.
const REQUEST_MAX: u64 = 64 << 20;
/// A policy file.
pub(crate) const POLICY_MAX: u64 = 1 << 20;
/// Deny messages kept per decision, and each one's length.
const MESSAGES_MAX: usize = 100;
const MESSAGE_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Task {
    /// Parse each policy and name its package; it must declare `allow`.
    Check,
    /// Evaluate `allow` and `deny` of each policy over the input.
    Eval,
    /// Evaluate every `test_` rule of each policy.
    Test,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Source {
    /// How messages name it (a file name, or `policy NAME`).
    pub origin: String,
    pub rego: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub task: Task,
    pub policies: Vec<Source>,
    #[serde(default)]
    pub input: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TestResult {
    pub name: String,
    pub passed: bool,
    /// Why it did not pass: its value (undefined, false) or its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the engine found for one policy.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Outcome {
    pub origin: String,
    #[serde(default)]
    pub package: Option<String>,
    /// `allow` is `true` (Eval).
    #[serde(default)]
    pub allow: bool,
    /// Every `deny` message (Eval).
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestResult>,
    /// The policy could not be parsed or evaluated: it decides nothing.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    outcomes: Vec<Outcome>,
}

/// Runs `req` in the engine child; one outcome per policy, in order.
pub(crate) fn run(req: &Request) -> Result<Vec<Outcome>> {
    Warm::start().finish(req)
}

/// The longest a started engine waits for its request (a caller's own work between
/// [`Warm::start`] and [`Warm::finish`], e.g. hashing a large candidate).
const WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// An engine child started ahead of its request, so that starting it (an exec of this
/// large executable, most of the cost of a decision) overlaps the caller's own work.
/// Dropped unfinished, it reads an empty request and ends.
pub(crate) struct Warm {
    request: std::sync::mpsc::Sender<Vec<u8>>,
    done: std::thread::JoinHandle<Result<Raw>>,
}

/// What the child did, before it is read as a reply.
struct Raw {
    outcome: crate::runner::Outcome,
    out: Vec<u8>,
    err: String,
}

impl Warm {
    pub(crate) fn start() -> Warm {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        Warm {
            request: tx,
            done: std::thread::spawn(move || spawn_and_wait(rx)),
        }
    }

    /// Sends `req` and waits for the reply: one outcome per policy, in order.
    pub(crate) fn finish(self, req: &Request) -> Result<Vec<Outcome>> {
        let Warm { request, done } = self;
        let body = serde_json::to_vec(req).expect("requests serialise");
        let sent = request.send(body);
        // Dropped now, so a child that never read it sees its input end.
        drop(request);
        let raw = done.join().map_err(|_| Error::Integrity {
            message: "the policy engine's watcher panicked".into(),
        })??;
        if sent.is_err() {
            return Err(failed(
                "the policy engine ended before it was sent its request".into(),
            ));
        }
        reply(req, raw)
    }
}

/// Spawns the child; once `request` arrives, it has [`CHILD_LIMIT`] to answer.
fn spawn_and_wait(request: std::sync::mpsc::Receiver<Vec<u8>>) -> Result<Raw> {
    use std::sync::{Arc, Mutex};
    let exe = std::env::current_exe().map_err(|e| Error::Io {
        action: "find the running executable to evaluate policies with",
        path: "/proc/self/exe".into(),
        source: e,
    })?;
    let mut cmd = Command::new(&exe);
    cmd.arg(ENGINE_ARG)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let sent_at: Arc<Mutex<Option<std::time::Instant>>> = Arc::default();
    let mut pipes = None;
    let never = std::sync::atomic::AtomicBool::new(false);
    let mark = sent_at.clone();
    let mut watch = || {
        let at = *sent_at.lock().unwrap_or_else(|e| e.into_inner());
        at.filter(|t| t.elapsed() >= CHILD_LIMIT).map(|_| {
            format!(
                "policy evaluation did not finish in {} s and was killed",
                CHILD_LIMIT.as_secs()
            )
        })
    };
    let sweep = crate::runner::Sweep::GroupIfKilled;
    let outcome =
        crate::runner::run_child(cmd, None, sweep, WAIT_LIMIT, &never, &mut watch, |child| {
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            pipes = Some((
                std::thread::spawn(move || {
                    // No request (the caller gave up): the child reads an empty one and ends.
                    if let (Some(mut w), Ok(body)) = (stdin, request.recv()) {
                        *mark.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(std::time::Instant::now());
                        let _ = w.write_all(&body);
                    }
                }),
                std::thread::spawn(move || read_bounded(stdout, REPLY_MAX)),
                std::thread::spawn(move || read_bounded(stderr, 64 << 10)),
            ));
        })
        .map_err(Error::io("run the policy engine", &exe))?;
    let (writer, out, err) = pipes.expect("the child was spawned");
    let _ = writer.join();
    let out = out.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok(Raw { outcome, out, err })
}

/// The child's reply to `req`, or why there is none (naming the policy it was in).
fn reply(req: &Request, raw: Raw) -> Result<Vec<Outcome>> {
    let Raw { outcome, out, err } = raw;
    // The child names each policy on stderr as it starts on it: the last one named is
    // the one it was in when it stopped.
    let last = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("evaluating "))
        .map(str::to_string);
    let within = |what: String| match &last {
        Some(p) => format!("{what} while evaluating {p}"),
        None => what,
    };
    if let Some(why) = outcome.limited {
        return Err(failed(within(why)));
    }
    if outcome.timed_out {
        return Err(failed(format!(
            "the policy engine was not sent its request within {} s and was killed",
            WAIT_LIMIT.as_secs()
        )));
    }
    if outcome.code != Some(0) {
        let how = match (outcome.code, outcome.signal) {
            (_, Some(s)) => format!("was killed by signal {s}"),
            (Some(c), _) => format!("exited with status {c}"),
            _ => "ended".into(),
        };
        let said = err
            .lines()
            .rev()
            .find(|l| {
                !l.starts_with("evaluating ") && !l.starts_with("note: ") && !l.trim().is_empty()
            })
            .unwrap_or("")
            .trim()
            .to_string();
        let said = if said.is_empty() {
            format!(" (memory is limited to {} GiB)", MEMORY_LIMIT >> 30)
        } else {
            format!(": {said}")
        };
        return Err(failed(within(format!("the policy engine {how}{said}"))));
    }
    let reply: Reply = serde_json::from_slice(&out).map_err(|e| Error::Integrity {
        message: format!("the policy engine's reply is not one: {e}"),
    })?;
    if reply.outcomes.len() != req.policies.len() {
        return Err(Error::Integrity {
            message: format!(
                "the policy engine answered for {} policies, not {}",
                reply.outcomes.len(),
                req.policies.len()
            ),
        });
    }
    Ok(reply.outcomes)
}

fn failed(message: String) -> Error {
    Error::bad_input(
        message,
        "fix the policy so it finishes within its bounds (2 s per policy, 2 GiB), e.g. avoid huge numbers.range or nested comprehensions over them; `cto-ledger policy eval` shows what it sees",
    )
}

fn read_bounded(r: Option<impl std::io::Read>, max: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(max).read_to_end(&mut buf);
    }
    buf
}

/// The child: reads a request, evaluates, prints the reply; its exit code.
pub(crate) fn child_main() -> i32 {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let _ = setrlimit(
        Resource::As,
        Rlimit {
            current: Some(MEMORY_LIMIT),
            maximum: Some(MEMORY_LIMIT),
        },
    );
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().take(REQUEST_MAX).read_to_end(&mut body) {
        eprintln!("reading the request: {e}");
        return 2;
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("the request is not one: {e}");
            return 2;
        }
    };
    let outcomes = match req.task {
        Task::Test => test_all(&req.policies),
        task => req
            .policies
            .iter()
            .map(|p| {
                eprintln!("evaluating {}", p.origin);
                let mut o = Outcome {
                    origin: p.origin.clone(),
                    ..Outcome::default()
                };
                if let Err(e) = evaluate(task, p, &req.input, &mut o) {
                    o.error = Some(e);
                }
                o
            })
            .collect(),
    };
    let reply = serde_json::to_vec(&Reply { outcomes }).expect("replies serialise");
    match std::io::stdout().write_all(&reply) {
        Ok(()) => 0,
        Err(_) => 4,
    }
}

fn m<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> std::result::Result<T, String> {
    r.map_err(|e| one_line(&e))
}

/// regorus's messages span lines (the source line and a caret): kept whole, but bounded.
fn one_line(e: &impl std::fmt::Display) -> String {
    let s = format!("{e:#}");
    let s: String = s.chars().take(MESSAGE_CHARS * 2).collect();
    s.trim_end().to_string()
}

/// An engine as every evaluation gets it: the timer set, built-in errors strict.
fn bounded_engine() -> regorus::Engine {
    use regorus::utils::limits::ExecutionTimerConfig;
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: std::num::NonZeroU32::new(64).expect("nonzero"),
    });
    engine.set_strict_builtin_errors(true);
    engine
}

fn evaluate(task: Task, p: &Source, input: &Value, o: &mut Outcome) -> Result<(), String> {
    let mut engine = bounded_engine();
    let package = m(engine.add_policy(p.origin.clone(), p.rego.clone()))?;
    let components = package.strip_prefix("data.").unwrap_or(&package);
    let plain = components.split('.').all(|c| {
        c.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    });
    if !plain {
        return Err(format!("package `{package}` is not a dotted name of identifiers; write e.g. `package cto.team`"));
    }
    o.package = Some(package.clone());
    let declares = |e: &regorus::Engine, rule: &str| e.has_declared_rule_rooted_at(&p.origin, rule);
    if !m(declares(&engine, "allow"))? {
        return Err(format!("{} declares no `allow` rule: write `default allow := false` and the rules that make it true (and `deny contains msg if ...` for the reasons)", p.origin));
    }
    match task {
        Task::Check => Ok(()),
        Task::Eval => {
            engine.set_input(m(regorus::Value::from_json_str(&input.to_string()))?);
            let allow = m(engine.eval_rule(format!("{package}.allow")))?;
            o.allow = allow == regorus::Value::from(true);
            if m(declares(&engine, "deny"))? {
                let deny = m(engine.eval_rule(format!("{package}.deny")))?;
                o.deny = messages(&deny)?;
            }
            Ok(())
        }
        Task::Test => unreachable!("tests load every file into one engine: test_all"),
    }
}

/// `policy test`: every file in one engine (tests import the policies they test), then
/// each file's `test_` rules, each of which must be `true`.
fn test_all(sources: &[Source]) -> Vec<Outcome> {
    let mut engine = bounded_engine();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for p in sources {
        let mut o = Outcome {
            origin: p.origin.clone(),
            ..Outcome::default()
        };
        match engine.add_policy(p.origin.clone(), p.rego.clone()) {
            Ok(pkg) => o.package = Some(pkg),
            Err(e) => o.error = Some(one_line(&e)),
        }
        outcomes.push(o);
    }
    if outcomes.iter().any(|o| o.error.is_some()) {
        return outcomes;
    }
    for o in &mut outcomes {
        eprintln!("evaluating {}", o.origin);
        let package = o.package.clone().unwrap_or_default();
        for name in test_rules(&mut engine, &o.origin) {
            let (passed, detail) = match engine.eval_rule(format!("{package}.{name}")) {
                Ok(v) if v == regorus::Value::from(true) => (true, None),
                Ok(regorus::Value::Undefined) => (false, Some("undefined".into())),
                Ok(v) => (false, Some(v.to_json_str().unwrap_or_default())),
                Err(e) => (false, Some(one_line(&e))),
            };
            o.tests.push(TestResult {
                name,
                passed,
                detail,
            });
        }
    }
    outcomes
}

/// The names of the `test_` rules the module at `origin` declares, once each, in order.
fn test_rules(engine: &mut regorus::Engine, origin: &str) -> Vec<String> {
    use regorus::unstable::{Rule, RuleHead};
    let mut names: Vec<String> = Vec::new();
    for m in engine.get_modules() {
        if m.package.span.source.get_path() != origin {
            continue;
        }
        for r in &m.policy {
            let Rule::Spec { head, .. } = r.as_ref() else {
                continue;
            };
            let refr = match head {
                RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                RuleHead::Func { .. } => continue,
            };
            let name = refr.span().text().to_string();
            if name.starts_with("test_") && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// A `deny` set's messages: strings as they are, `{"msg": ...}` objects by their `msg`,
/// anything else as JSON. At most [`MESSAGES_MAX`], each at most [`MESSAGE_CHARS`].
fn messages(v: &regorus::Value) -> Result<Vec<String>, String> {
    if *v == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    // Sets are written as JSON arrays.
    let items = match m(serde_json::from_str::<Value>(&m(v.to_json_str())?))? {
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "`deny` is {other}, not a set of messages: write `deny contains msg if ...`"
            ))
        }
    };
    let mut out: Vec<String> = items
        .iter()
        .take(MESSAGES_MAX)
        .map(|item| {
            let text = match item {
                Value::String(s) => s.clone(),
                other => match &other["msg"] {
                    Value::String(s) => s.clone(),
                    _ => other.to_string(),
                },
            };
            text.chars().take(MESSAGE_CHARS).collect()
        })
        .collect();
    if items.len() > MESSAGES_MAX {
        out.push(format!("... and {} more", items.len() - MESSAGES_MAX));
    }
    Ok(out)
}
