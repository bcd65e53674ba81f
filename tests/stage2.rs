//! Stage 2 through the real binary: the fake lane, timeouts, gates, tampering.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

fn validate(report: &Value) {
    assert_follows_schema(include_str!("../schema/stage2-report.schema.json"), report);
}

pub(crate) struct Stage2 {
    pub(crate) code: i32,
    pub(crate) report: Value,
    pub(crate) dir: PathBuf,
    pub(crate) stderr: String,
}

pub(crate) fn stage2(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> Stage2 {
    let mut c = env.cmd(["run", "stage2", "--json"]);
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    stage2_of(env, c)
}

/// Runs a `run stage2 --json` command and checks its report as [`stage2`] does.
fn stage2_of(env: &Env, mut c: std::process::Command) -> Stage2 {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let dir = env
        .ledger
        .join("runs")
        .join(report["run_id"].as_str().unwrap());
    let on_disk: Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(on_disk, report, "printed report and report.json differ");
    validate(&report);
    Stage2 {
        code: out.status.code().unwrap_or(-1),
        report,
        dir,
        stderr,
    }
}

pub(crate) fn provider_started(dir: &Path) -> bool {
    dir.join("home/fake-ca-started").exists()
}

pub(crate) fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
                    state != 'Z' && state != 'X'
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Host processes still running for the run in `dir`: every live process whose
/// environment says `HOME=<dir>/home` (the provider's, and all it started). Read from the
/// host's `/proc`, which a sandboxed provider cannot see (its pids are its namespace's).
pub(crate) fn left_running(dir: &Path) -> Vec<u32> {
    let needle = format!("HOME={}/home\0", dir.display()).into_bytes();
    let pids: Vec<u32> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|p| {
            fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
        })
        .collect();
    alive(&pids)
}

fn in_group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        if rest[2].parse::<u32>().ok() == Some(pgid) && rest[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

#[test]
fn fake_lane_passes_on_a_fresh_ledger() {
    let env = Env::new();
    let r = stage2(&env, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["status"], "passed");
    assert_eq!(r.report["verdict"], "pass");
    assert_eq!(r.report["lane"], "fake");
    assert_eq!(r.report["tests"]["result"], "passed");
    assert!(
        r.report["argv"][1] == "run"
            && r.report["argv"][2] == "--task"
            && r.report["argv"][4] == "--mode"
            && r.report["argv"][5] == "unattended"
    );
    assert!(r.report["argv"][3]
        .as_str()
        .unwrap()
        .ends_with("workspace/.case/tasks/active/r1-string-slugify.task.json"));
    // What runs is the ledger's one verified executable of the admitted object: no run
    // folder holds a copy.
    let executed = r.report["provider"]["executed"].as_str().unwrap();
    assert!(executed.contains("/exec/"), "{executed}");
    assert!(!r.dir.join("backend/provider").exists());
    let config: Value =
        serde_json::from_slice(&fs::read(r.dir.join("backend/case-data/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["models"]["default"]["provider"], "fake");
    let projects: Value =
        serde_json::from_slice(&fs::read(r.dir.join("backend/case-data/projects.json")).unwrap())
            .unwrap();
    assert_eq!(
        projects["repos"][0]["path"],
        r.dir.join("workspace").to_str().unwrap()
    );
    // The run is in the ledger, linked to its report and config objects.
    let run = env
        .ok([
            "show",
            &format!("run:{}", r.report["run_id"].as_str().unwrap()),
            "--json",
        ])
        .json();
    assert_eq!(run["run"]["status"], "passed");
    assert!(run["run"]["report_object"]
        .as_str()
        .unwrap()
        .starts_with("blake3:"));
    assert!(run["run"]["config_object"]
        .as_str()
        .unwrap()
        .starts_with("blake3:"));
    let report_id = run["run"]["report_object"].as_str().unwrap();
    assert_eq!(
        env.ok(["cat", report_id]).stdout.as_bytes(),
        fs::read(r.dir.join("report.json")).unwrap()
    );
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn relative_ledger_home_still_runs_the_provider() {
    // The provider runs in the fixture workspace: a home given relative to the caller's
    // directory must still name the same place there.
    let env = Env::new();
    let out = env
        .cmd(["--ledger", "rel-home", "run", "stage2", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "passed", "{report:#}");
    assert!(env.path("rel-home/ledger.db").is_file());
    assert!(report["provider"]["executed"]
        .as_str()
        .unwrap()
        .starts_with(env.path("rel-home").to_str().unwrap()));
}

#[test]
fn hanging_provider_times_out_and_its_group_dies() {
    let env = Env::new();
    // The report says the timeout, not the provider, ended it (how long the rest took
    // depends on the machine: not asserted).
    let r = stage2(&env, &["--fake-behavior", "hang", "--timeout", "2"], &[]);
    assert_eq!(r.report["provider_exit"]["timed_out"], true, "{}", r.report);
    assert_eq!(r.code, 1);
    assert_eq!(r.report["status"], "provider_timeout");
    assert_eq!(r.report["verdict"], "fail");
    assert!(r.dir.join("backend/provider-timeout.txt").exists());
    let pgid = r.report["provider_exit"]["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        in_group(pgid),
        Vec::<u32>::new(),
        "processes of the provider's group are still alive"
    );
}

/// A harness in session 0: the first process of a container, whose session leader lives
/// outside its PID namespace, gets 0 from getsid(2). Once that made the harness panic
/// (rustix asserts a positive id) before its provider's group could be killed.
#[test]
fn a_harness_whose_session_leader_is_outside_its_pid_namespace_runs_and_kills() {
    let env = Env::new();
    let in_namespace = |args: &[&str]| {
        let inner = env.cmd(["run", "stage2", "--json"].iter().chain(args));
        let mut c = std::process::Command::new("unshare");
        // Root needs no user namespace; anyone else maps themselves to root in one.
        if !fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:\t0\t"))
        {
            c.arg("--map-root-user");
        }
        c.args(["--pid", "--fork", "--mount-proc", "--"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(inner.get_current_dir().unwrap());
        stage2_of(&env, c)
    };
    let r = in_namespace(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "pass");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let r = in_namespace(&["--fake-behavior", "hang", "--timeout", "2"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.report["status"], "provider_timeout");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn timeout_from_the_environment_variable_bounds_the_run() {
    let env = Env::new();
    let r = stage2(
        &env,
        &["--fake-behavior", "hang"],
        &[("CTO_HARNESS_CASE_TIMEOUT_SECONDS", "1")],
    );
    assert_eq!(r.report["provider_exit"]["timed_out"], true, "{}", r.report);
    assert_eq!(r.report["status"], "provider_timeout");
    assert_eq!(r.report["timeout_seconds"], 1.0);
}

#[test]
fn grandchild_of_a_hanging_provider_is_killed() {
    let env = Env::new();
    let r = stage2(
        &env,
        &["--fake-behavior", "hang-grandchild", "--timeout", "2"],
        &[],
    );
    assert_eq!(r.report["status"], "provider_timeout");
    let pids: Vec<u32> = fs::read_to_string(r.dir.join("home/fake-ca-pids"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        pids.len() >= 2,
        "the provider and its grandchild recorded their pids: {pids:?}"
    );
    assert_eq!(left_running(&r.dir), Vec::<u32>::new());
    // It names the host's pid of each process killed (the provider knows only its
    // namespace's numbers): at least as many as the provider noted.
    let text = fs::read_to_string(r.dir.join("backend/provider-timeout.txt")).unwrap();
    let named = r.report["provider_exit"]["killed_pids"].as_array().unwrap();
    assert!(named.len() >= pids.len() - 1, "{text}");
    for p in named {
        assert!(
            text.contains(&p.to_string()),
            "provider-timeout.txt names killed pid {p}: {text}"
        );
    }
}

#[test]
fn provider_that_changes_nothing_and_exits_0_fails() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "noop"], &[]);
    assert_eq!(r.report["provider_exit"]["code"], 0);
    assert_eq!(r.report["status"], "failed");
    assert_eq!(r.report["verdict"], "fail");
    assert_eq!(r.code, 1);
}

#[test]
fn failing_and_crashing_providers_fail() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "fail"], &[]);
    assert_eq!(r.report["status"], "failed");
    let r = stage2(&env, &["--fake-behavior", "crash"], &[]);
    assert_eq!(r.report["status"], "failed");
    assert_eq!(r.report["provider_exit"]["signal"], 6);
}

fn assert_blocked(r: &Stage2, file: &str) {
    assert_eq!(r.report["status"], "blocked", "{}", r.report);
    assert_eq!(r.code, 1);
    assert!(
        r.dir.join("backend").join(file).exists(),
        "backend/{file} missing"
    );
    assert!(
        !provider_started(&r.dir),
        "the provider process was started"
    );
    assert!(r.report["provider_exit"].is_null());
}

/// A clone whose committed HEAD built `dist/ca` = a copy of the fake provider.
fn admitted_fake(env: &Env) -> Repo {
    let repo = env.repo("provider");
    fs::copy(FAKE, repo.bin()).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(repo.bin())
        .map(|mut f| std::io::Write::write_all(&mut f, b"\0"))
        .unwrap()
        .unwrap();
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    repo
}

#[test]
fn real_lane_without_a_provider_blocks() {
    let env = Env::new();
    let r = stage2(&env, &["--provider", "case"], &[]);
    assert_blocked(&r, "provider-unavailable.txt");
    let r = stage2(&env, &[], &[("CTO_HARNESS_CASE_BIN", "/no/such/ca")]);
    assert_eq!(r.report["lane"], "case");
    assert_blocked(&r, "provider-unavailable.txt");
}

#[test]
fn real_lane_without_an_admitted_model_blocks() {
    let env = Env::new();
    let repo = admitted_fake(&env);
    let bin = s(&repo.bin()).to_string();
    let r = stage2(&env, &[], &[("CTO_HARNESS_CASE_BIN", &bin)]);
    assert_blocked(&r, "provider-model-not-admitted.txt");
    assert!(r.report["reason"]
        .as_str()
        .unwrap()
        .contains("CTO_HARNESS_CASE_MODEL_PROVIDER"));
    let model = [
        ("CTO_HARNESS_CASE_BIN", bin.as_str()),
        ("CTO_HARNESS_CASE_MODEL_PROVIDER", "anthropic"),
        ("CTO_HARNESS_CASE_MODEL", "claude-sonnet-4-6"),
    ];
    let r = stage2(&env, &[], &model);
    assert_blocked(&r, "provider-model-not-admitted.txt");
    // Once the model is admitted, the same run goes ahead: the provider starts. (On the
    // real lane the fake gets no solution, so the fixture's tests fail: verdict from tests.)
    env.ok(["admit", "--model", "anthropic/claude-sonnet-4-6"]);
    let r = stage2(&env, &[], &model);
    assert!(provider_started(&r.dir), "{}", r.report);
    assert_eq!(r.report["status"], "failed", "{}", r.report);
    assert_eq!(r.report["lane"], "case");
    assert!(r.report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["passed"] == true));
    assert!(r.report["model"]["admission"]
        .as_str()
        .unwrap()
        .starts_with("mod_"));
    assert_eq!(r.report["provider"]["source_commit"], repo.head());
    let config: Value =
        serde_json::from_slice(&fs::read(r.dir.join("backend/case-data/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["models"]["default"]["model"], "claude-sonnet-4-6");
}

#[test]
fn unadmitted_provider_blocks() {
    let env = Env::new();
    let other = env.path("other-ca");
    fs::copy(FAKE, &other).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .map(|mut f| std::io::Write::write_all(&mut f, b"xx"))
        .unwrap()
        .unwrap();
    let r = stage2(&env, &["--provider-bin", s(&other)], &[]);
    assert_blocked(&r, "provider-not-admitted.txt");
}

#[test]
fn a_provider_that_is_not_the_shipped_fake_gets_no_answer_key() {
    let env = Env::new();
    let repo = admitted_fake(&env);
    // The same code as the shipped fake, admitted from a clone: it asks for the answer
    // key as the shipped one does, and must not get it.
    let r = stage2(&env, &["--provider-bin", s(&repo.bin())], &[]);
    assert_eq!(r.report["provider"]["admission_name"], "ca");
    assert_eq!(r.report["verdict"], "fail", "{}", r.report["reason"]);
    assert!(!r.dir.join("backend/fake-solution").exists());
    let names = r.report["env_names"].as_array().unwrap();
    assert!(
        !names.iter().any(|n| n == "CTO_FAKE_CA_SOLUTION"),
        "{names:?}"
    );
    let ro = r.report["sandbox"]["read_only"].as_array().unwrap();
    assert!(
        !ro.iter()
            .any(|p| p.as_str().unwrap().ends_with("fake-solution")),
        "{ro:?}"
    );
    // The shipped fake still gets it, and solves.
    let shipped = stage2(&env, &[], &[]);
    assert_eq!(shipped.report["verdict"], "pass");
}

#[test]
fn revoked_provider_blocks() {
    let env = Env::new();
    let repo = admitted_fake(&env);
    env.ok(["revoke", "ca", "--reason", "compromised"]);
    let r = stage2(&env, &["--provider-bin", s(&repo.bin())], &[]);
    assert_blocked(&r, "provider-not-admitted.txt");
    assert!(r.report["reason"].as_str().unwrap().contains("compromised"));
}

#[test]
fn overwriting_the_admitted_file_never_runs_the_new_bytes() {
    let env = Env::new();
    let repo = admitted_fake(&env);
    // Replace the admitted provider with a script that would leave a mark if run.
    let marker = env.path("new-bytes-ran");
    fs::write(
        repo.bin(),
        format!("#!/bin/sh\ntouch {}\n", marker.display()),
    )
    .unwrap();
    let r = stage2(&env, &["--provider-bin", s(&repo.bin())], &[]);
    assert_blocked(&r, "provider-not-admitted.txt");
    assert!(
        r.report["reason"]
            .as_str()
            .unwrap()
            .contains("changed since admission"),
        "{}",
        r.report["reason"]
    );
    assert!(!marker.exists(), "the replaced bytes were executed");
}

#[test]
fn damaged_store_copy_of_the_provider_blocks() {
    let env = Env::new();
    let repo = admitted_fake(&env);
    env.damage_stored_copy(&repo.bin(), false);
    let r = stage2(&env, &["--provider-bin", s(&repo.bin())], &[]);
    assert_blocked(&r, "provider-not-admitted.txt");
}

#[test]
fn sigterm_during_a_run_finalises_the_report_as_interrupted() {
    let env = Env::new();
    let child = env
        .cmd([
            "run",
            "stage2",
            "--fake-behavior",
            "hang-grandchild",
            "--timeout",
            "60",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = wait_for_provider(&env);
    std::thread::sleep(Duration::from_millis(300));
    send_sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    validate(&report);
    assert_eq!(report["status"], "interrupted");
    assert_eq!(left_running(&dir), Vec::<u32>::new());
    assert_eq!(env.run(["audit"]).code, 0);
}

/// Starts a Stage 2 run whose fake provider hangs (60 s timeout), with `extra` arguments.
pub(crate) fn spawn_hanging_run(env: &Env, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "run",
        "stage2",
        "--fake-behavior",
        "hang",
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    env.cmd(args).spawn().unwrap()
}

/// SIGKILLs a harness whose provider runs in `dir`, and waits (5 s at most) for the
/// kernel to kill the provider (PR_SET_PDEATHSIG); returns the run's processes still
/// running then.
pub(crate) fn sigkill_harness(mut harness: std::process::Child, dir: &Path) -> Vec<u32> {
    assert!(
        !left_running(dir).is_empty(),
        "the provider was not running"
    );
    signal(harness.id(), rustix::process::Signal::KILL);
    harness.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !left_running(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    left_running(dir)
}

/// The run folder of the one running Stage 2, once its provider has started.
fn wait_for_provider(env: &Env) -> PathBuf {
    wait_for_provider_in(&env.ledger.join("runs"))
}

/// The run folder under `runs` of the one running Stage 2, once its provider has started.
pub(crate) fn wait_for_provider_in(runs: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = fs::read_dir(runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        if let Some(d) = found.filter(|d| d.join("home/fake-ca-pids").exists()) {
            return d;
        }
        assert!(Instant::now() < deadline, "the provider never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send_sigterm(pid: u32) {
    signal(pid, rustix::process::Signal::TERM);
}

#[test]
fn fixture_directory_of_the_same_shape_runs() {
    let env = Env::new();
    let fx = env.copy_of_builtin_fixture("my-fixture");
    let r = stage2(&env, &["--fixture", s(&fx)], &[]);
    assert_eq!(r.report["status"], "passed");
    // A task file that breaks Case's schema is refused before any run folder exists.
    fs::write(
        fx.join("task/r1-string-slugify.task.json"),
        r#"{"id":"r1-string-slugify","status":"active","repo":"r1-string-slugify"}"#,
    )
    .unwrap();
    let bad = env.run(["run", "stage2", "--fixture", s(&fx)]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("created"), "{}", bad.stderr);
}

#[test]
fn provider_environment_is_minimal() {
    let env = Env::new();
    let mut c = env.cmd(["run", "stage2", "--fake-behavior", "noop", "--json"]);
    c.env("CANARY_SECRET", "do-not-leak")
        .env("AWS_SECRET_ACCESS_KEY", "nope");
    let out = c.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["env_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"CANARY_SECRET") && !names.contains(&"AWS_SECRET_ACCESS_KEY"),
        "{names:?}"
    );
    assert!(names.contains(&"CASE_DATA_DIR") && names.contains(&"HOME"));
}

#[test]
fn health_reports_every_check_passing() {
    let env = Env::new();
    let r = env.run(["health", "--json"]);
    let v = r.json();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "fake_lane_passes",
        "provider_timeout_fail_closed",
        "model_provider_gate_blocks",
        "provider_unavailable_blocks",
        "unadmitted_provider_blocks",
        "tampered_provider_blocks",
        "grandchild_killed_on_timeout",
        "sandbox_blocks_ledger_read",
        "sandbox_blocks_ledger_write",
        "sandbox_blocks_outside_read",
        "sandbox_blocks_network",
        "sandbox_blocks_signals",
        "sandbox_drops_capabilities",
        "judge_ignores_a_shadowed_runner",
        "judge_runs_the_fixtures_tests",
        "changes_come_from_the_store",
        "gitdir_is_never_followed",
        "nothing_outlives_the_run",
        "special_files_never_stop_the_record",
        "output_is_bounded",
        "folders_are_bounded",
        "model_stream_is_bounded",
        "report_always_written",
    ] {
        assert!(names.contains(&want), "missing check {want}");
    }
    assert_eq!(r.code, 0, "{}", serde_json::to_string_pretty(&v).unwrap());
    assert_eq!(v["ok"], true);
}

#[test]
fn every_attempt_is_registered_before_its_provider_starts_and_a_hidden_one_stays_visible() {
    let env = Env::new();
    // A finished run: its run event names its registration.
    let r = stage2(&env, &[], &[]);
    let log = env.ok(["log", "--json"]).json();
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["admission", "run_start", "run"], "{log}");
    let events = env.db();
    let start_of = |kind: &str| -> Value {
        let text: String = events
            .query_row(
                "SELECT event FROM journal WHERE kind = ?1 ORDER BY seq DESC LIMIT 1",
                [kind],
                |row| row.get(0),
            )
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (start, run) = (start_of("run_start"), start_of("run"));
    assert_eq!(start["id"], r.report["run_id"]);
    assert_eq!(start["fixture_tree"], r.report["judge"]["fixture_tree"]);
    assert_eq!(start["protected"], serde_json::json!(["test_strings.py"]));
    assert_eq!(start["provider_object"], r.report["provider"]["blake3"]);
    // The run names the registration by the digest of its body (kind and fields).
    let mut body = start.clone();
    for k in ["seq", "time", "actor"] {
        body.as_object_mut().unwrap().remove(k);
    }
    use sha2::Digest as _;
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(serde_jcs::to_vec(&body).unwrap()))
    );
    assert_eq!(run["start"], digest.as_str());

    // An attempt killed with its harness, its folder and its run_folders row then removed:
    // the signed history still has it.
    let elsewhere = env.path("hidden-runs");
    let child = spawn_hanging_run(&env, &["--runs-dir", s(&elsewhere)]);
    let dir = wait_for_provider_in(&elsewhere);
    assert_eq!(sigkill_harness(child, &dir), Vec::<u32>::new());
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    fs::remove_dir_all(&dir).unwrap();
    env.db()
        .execute("DELETE FROM run_folders WHERE id = ?1", [&id])
        .unwrap();
    let runs = env.ok(["runs", "--status", "unfinished", "--json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["id"], id.as_str());
    let mut later = env.cmd(["audit"]);
    later.env("CTO_LEDGER_TEST_NOW", "2099-01-01T00:00:00.000Z");
    let out = later.output().unwrap();
    let audit = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{audit}");
    assert!(
        audit.lines().any(|l| l.contains(&id)
            && l.contains("started, never finished")
            && l.contains("is gone")),
        "{audit}"
    );
}

#[test]
fn harness_killed_with_sigkill_leaves_a_report_and_audit_names_the_folder() {
    let env = Env::new();
    let child = spawn_hanging_run(&env, &[]);
    let dir = wait_for_provider(&env);
    let left = sigkill_harness(child, &dir);
    let report: Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["status"], "started",
        "the report written before the provider started is there"
    );
    assert_eq!(left, Vec::<u32>::new());
    let r = env.run(["audit", "--json"]);
    assert_eq!(r.code, 1);
    let f = serde_json::to_string(&r.json()["findings"]).unwrap();
    assert!(
        f.contains(dir.file_name().unwrap().to_str().unwrap()) && f.contains("not recorded"),
        "{f}"
    );
    // `recover` finalises the folder as interrupted and records it; then audit passes.
    let rec = env.ok(["recover", "--json"]).json();
    assert_eq!(
        rec["recovered"][0],
        dir.file_name().unwrap().to_str().unwrap()
    );
    let report: Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    validate(&report);
    assert_eq!(report["status"], "interrupted");
    assert!(dir.join("backend/harness-killed.txt").exists());
    let run = env
        .ok([
            "show",
            &format!("run:{}", report["run_id"].as_str().unwrap()),
            "--json",
        ])
        .json();
    assert_eq!(run["run"]["status"], "interrupted");
    assert_eq!(env.run(["audit"]).code, 0);
}

/// Bytes under `dir`, as `du` would count file contents.
fn bytes_under(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_suite_runs_every_fixture_n_times_j_at_a_time_each_recorded_with_no_provider_copy() {
    let env = Env::new();
    let other = env.copy_of_builtin_fixture("other-fixture");
    let r = env.run([
        "run",
        "stage2",
        "--fixture",
        "r1-string-slugify",
        "--fixture",
        s(&other),
        "--repeat",
        "2",
        "--jobs",
        "2",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let out = r.json();
    assert_eq!(out["passed"], 4);
    assert_eq!(out["failed"], 0);
    let runs = out["runs"].as_array().unwrap();
    let order: Vec<(&str, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["fixture"].as_str().unwrap(),
                r["repeat"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("r1-string-slugify", 1),
            (s(&other), 1),
            ("r1-string-slugify", 2),
            (s(&other), 2)
        ]
    );
    let ids: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "each run is its own");
    // Each recorded, each with its own folder and report; no folder holds the provider.
    let listed = env.ok(["runs", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 4);
    for run in listed.as_array().unwrap() {
        let dir = Path::new(run["run_dir"].as_str().unwrap());
        let report: Value =
            serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
        validate(&report);
        assert_eq!(report["status"], "passed");
        let size = bytes_under(dir);
        let provider = fs::metadata(report["provider"]["executed"].as_str().unwrap())
            .unwrap()
            .len();
        assert!(
            size < 2 << 20,
            "{} holds {size} bytes (the provider is {provider})",
            dir.display()
        );
    }
    // One executable per admitted object, shared by every run.
    assert_eq!(fs::read_dir(env.ledger.join("exec")).unwrap().count(), 1);
    assert!(env.ok(["audit"]).stdout.contains("audit passed"));
    // The text form: one table, then the sums.
    let t = env.ok(["run", "stage2", "--repeat", "2"]).stdout;
    assert!(
        t.contains("FIXTURE") && t.contains("2 passed, 0 failed"),
        "{t}"
    );
}

#[test]
fn a_suite_with_a_failing_run_exits_1_and_bad_suites_exit_2_before_any_run() {
    let env = Env::new();
    let r = env.run([
        "run",
        "stage2",
        "--repeat",
        "2",
        "--fake-behavior",
        "fail",
        "--json",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["failed"], 2);
    let before = env.head();
    for bad in [
        vec!["--jobs", "0"],
        vec!["--repeat", "0"],
        vec![
            "--fixture",
            "r1-string-slugify",
            "--fixture",
            "no-such-fixture",
        ],
        vec!["--repeat", "2", "--fake-behavior", "dance"],
        vec!["--repeat", "2", "--timeout", "-3"],
    ] {
        let mut args = vec!["run", "stage2"];
        args.extend(bad.iter());
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
    }
    assert_eq!(env.head(), before, "no run started");
}

#[test]
fn ctrl_c_stops_every_run_of_a_suite_and_each_report_says_interrupted() {
    let env = Env::new();
    let child = env
        .cmd([
            "run",
            "stage2",
            "--repeat",
            "3",
            "--jobs",
            "2",
            "--fake-behavior",
            "hang",
            "--timeout",
            "60",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both running providers started.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let started = fs::read_dir(env.ledger.join("runs"))
            .map(|rd| rd.flatten().filter(|e| provider_started(&e.path())).count())
            .unwrap_or(0);
        if started == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "providers did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::util::signal(child.id(), rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["not_started"], 1);
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    for run in env.ok(["runs", "--json"]).json().as_array().unwrap() {
        assert_eq!(run["status"], "interrupted");
        let report: Value = serde_json::from_slice(
            &fs::read(Path::new(run["run_dir"].as_str().unwrap()).join("report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["status"], "interrupted");
        let pid = report["provider_exit"]["pid"].as_u64().unwrap() as u32;
        assert!(alive(&[pid]).is_empty(), "provider {pid} still alive");
    }
}

#[test]
fn an_altered_provider_executable_is_made_again_from_the_store() {
    let env = Env::new();
    let first = stage2(&env, &[], &[]);
    let exe = std::path::PathBuf::from(first.report["provider"]["executed"].as_str().unwrap());
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // One copy of the provider: the executable is the store's own file, linked.
    let id = exe.file_name().unwrap().to_str().unwrap().to_string();
    let object = stored(&env.ledger, &id).file;
    let (a, b) = (fs::metadata(&exe).unwrap(), fs::metadata(&object).unwrap());
    assert_eq!((a.ino(), a.nlink(), a.mode() & 0o777), (b.ino(), 2, 0o555));
    // Replaced by another file: made again from the store.
    let planted = exe.with_file_name("planted");
    fs::write(&planted, b"#!/bin/sh\ntouch /tmp/should-never-run\n").unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o700)).unwrap();
    fs::rename(&planted, &exe).unwrap();
    let again = stage2(&env, &[], &[]);
    assert_eq!(again.report["status"], "passed");
    let gate = again.report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "provider_bytes_verified")
        .unwrap()
        .clone();
    assert!(
        gate["detail"]
            .as_str()
            .unwrap()
            .contains("made again from the store"),
        "{gate}"
    );
    // The file is the admitted bytes again, and the store's file again.
    assert_eq!(
        env.ok(["verify", s(&exe), "--json"]).json()["admitted"],
        true
    );
    assert_eq!(
        fs::metadata(&exe).unwrap().ino(),
        fs::metadata(&object).unwrap().ino()
    );
    // Written in place (as only this user or root can, never a sandboxed provider), the
    // one copy is damaged: the run blocks naming the stored bytes and audit names them.
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(&exe, b"#!/bin/sh\ntouch /tmp/should-never-run\n").unwrap();
    let third = stage2(&env, &[], &[]);
    assert_eq!(third.report["status"], "blocked", "{}", third.report);
    assert!(
        third.report["reason"].as_str().unwrap().contains("damaged"),
        "{}",
        third.report["reason"]
    );
    assert!(!std::path::Path::new("/tmp/should-never-run").exists());
    let audit = env.run(["audit"]);
    assert_eq!(audit.code, 1);
    assert!(audit.stdout.contains(&id), "{}", audit.stdout);
}
