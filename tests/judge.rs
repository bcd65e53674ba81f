//! The verdict belongs to the fixture: a provider that goes after its own judge (shadows
//! the test runner, rewrites or removes the tests, hides its changes from git, leaves
//! processes, special files or floods behind) fails, and the report names what it did.

use std::fs;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::stage2::{left_running, stage2, Stage2};
use crate::util::*;

fn tampered(r: &Stage2) -> Vec<String> {
    r.report["judge"]["tampered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect()
}

fn changes(r: &Stage2) -> Vec<(String, String)> {
    r.report["workspace_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_tampered_fail(r: &Stage2, paths: &[&str]) {
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "fail");
    assert_eq!(r.report["status"], "failed");
    assert!(
        r.report["reason"]
            .as_str()
            .unwrap()
            .starts_with("tests_tampered:"),
        "{}",
        r.report["reason"]
    );
    assert_eq!(tampered(r), paths);
}

#[test]
fn a_package_named_as_the_protected_test_module_is_tampering_and_never_imported() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "shadow-package"], &[]);
    assert_tampered_fail(&r, &["test_strings/__init__.py"]);
    // The fixture's own tests ran, not the package's passing stand-ins.
    assert_eq!(r.report["tests"]["result"], "failed");
    let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
    assert!(
        log.contains("CollapseWhitespaceTest"),
        "only the fixture has these: {log}"
    );
    assert!(log.contains("FAILED"), "{log}");
}

#[test]
fn tests_that_ran_none_fail_even_when_their_output_is_not_utf8() {
    let env = Env::new();
    // Nothing protected: the provider may rewrite the tests, here as none at all.
    let fx = env.copy_of_builtin_fixture("editable-tests");
    let manifest = fx.join("fixture.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["tests"] = serde_json::json!(["protects-nothing.py"]);
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let r = stage2(
        &env,
        &["--fixture", s(&fx), "--fake-behavior", "no-tests"],
        &[],
    );
    let log = fs::read(r.dir.join("backend/tests.log")).unwrap();
    assert!(
        String::from_utf8(log.clone()).is_err(),
        "the log is not UTF-8"
    );
    assert!(
        log.windows(11).any(|w| w == b"Ran 0 tests"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    assert_eq!(r.report["tests"]["result"], "failed", "{}", r.report);
    assert_eq!(r.report["verdict"], "fail");
}

#[test]
fn a_version_file_the_provider_leaves_does_not_pick_the_tests_interpreter() {
    let env = Env::new();
    // A version manager's shim, first on PATH: it runs whatever `.python-version` in the
    // folder it is started in says (here: refuses), else the real interpreter.
    let real = which_python();
    let (shim, path) = install_shim(&env, &format!("#!/bin/sh\nif [ -f .python-version ]; then echo \"shim: chose $(cat .python-version)\" >&2; exit 3; fi\nexec {} \"$@\"\n", real.display()));
    let r = stage2(
        &env,
        &["--fake-behavior", "python-version"],
        &[("PATH", &path)],
    );
    let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
    assert!(!log.contains("shim: chose"), "{log}");
    assert_eq!(r.report["tests"]["result"], "passed", "{log}");
    assert_eq!(r.report["verdict"], "pass");

    // A shim that names no interpreter when asked from outside: the tests are not run
    // through it in the judged tree, where the provider's version file would choose.
    fs::write(
        &shim,
        format!(
            "#!/bin/sh
case \"$*\" in *sys.executable*) echo /no/such/python; exit 0;; esac
if [ -f .python-version ]; then echo \"shim: chose $(cat .python-version)\" >&2; exit 0; fi
exec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    let r = stage2(
        &env,
        &["--fake-behavior", "python-version"],
        &[("PATH", &path)],
    );
    let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
    assert!(
        !log.contains("shim: chose") && log.contains("could not be resolved"),
        "{log}"
    );
    assert_eq!(r.report["verdict"], "fail", "{}", r.report);
}

#[test]
fn a_version_file_the_provider_leaves_in_home_does_not_pick_the_interpreter() {
    let env = Env::new();
    // A shim that, as asdf does, reads HOME's `.tool-versions`: with the provider's file
    // there it would name `/bin/true`, which exits 0 without running a test.
    let real = which_python();
    let (_, path) = install_shim(
        &env,
        &format!(
            "#!/bin/sh
case \"$*\" in *sys.executable*) [ -f \"$HOME/.tool-versions\" ] && printf /bin/true && exit 0;; esac
exec {} \"$@\"\n",
            real.display()
        ),
    );
    let r = stage2(
        &env,
        &["--fake-behavior", "python-version"],
        &[("PATH", &path)],
    );
    // The provider did leave it, where its HOME was.
    assert!(r.dir.join("home/.tool-versions").is_file());
    let argv = r.report["tests"]["argv"].as_array().unwrap();
    assert_eq!(argv[0], real.display().to_string(), "{argv:?}");
    let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
    assert!(
        log.contains("\nOK") && !log.contains("Ran 0 tests"),
        "{log}"
    );
    assert_eq!(r.report["verdict"], "pass", "{}", r.report);
}

#[test]
fn a_native_shim_on_path_is_asked_never_taken_for_the_interpreter() {
    let env = Env::new();
    // An ELF file named python3 that is no CPython install (mise's and rye's shims are
    // native, and pick an interpreter by the folder they run in): here, the fake `ca`.
    let shims = env.path("tools/shims");
    fs::create_dir_all(&shims).unwrap();
    std::os::unix::fs::symlink(FAKE, shims.join("python3")).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r = stage2(&env, &[], &[("PATH", &path)]);
    // Asked, it names no interpreter: unjudgeable, never run as one in the judged tree.
    let reason = r.report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("could not be resolved"), "{}", r.report);
    assert_eq!(r.report["verdict"], "fail");
    assert!(
        r.report["tests"]["argv"].is_null()
            || r.report["tests"]["argv"][0] != s(&shims.join("python3")),
        "{}",
        r.report
    );
}

#[test]
fn an_interpreter_answer_missed_while_the_provider_ran_is_asked_for_again() {
    let env = Env::new();
    // A shim that gives no answer the first time it is asked (as one held past its
    // deadline by a provider that keeps every core busy would), then answers.
    let real = which_python();
    let marker = env.path("asked-once");
    let (_, path) = install_shim(
        &env,
        &format!(
            "#!/bin/sh
case \"$*\" in *sys.executable*) [ -f {m} ] || {{ touch {m}; exit 1; }};; esac
exec {} \"$@\"\n",
            real.display(),
            m = marker.display()
        ),
    );
    let r = stage2(&env, &[], &[("PATH", &path)]);
    assert!(marker.exists());
    assert_eq!(r.report["verdict"], "pass", "{}", r.report);
    assert_eq!(r.report["tests"]["argv"][0], real.display().to_string());
}

#[test]
fn a_daemon_whose_main_thread_exited_is_killed_with_the_provider() {
    let env = Env::new();
    let repo = env.repo("provider");
    // The thread group leader calls pthread_exit: /proc says `Z` while a thread of it
    // (running system()) and that thread's shell live on.
    let python = which_python();
    fs::write(
        repo.bin(),
        format!(
            "#!/bin/sh
{} - <<'PY'
import ctypes, os
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
libc = ctypes.CDLL(None)
cmd = ctypes.c_char_p(b\"/bin/sh -c 'while :; do date >> $TMPDIR/alive.log; sleep 0.1; done'\")
t = ctypes.c_ulong()
libc.pthread_create(ctypes.byref(t), None, ctypes.cast(libc.system, ctypes.c_void_p), cmd)
libc.pthread_exit(None)
PY
sleep 0.5
",
            python.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(repo.bin(), fs::Permissions::from_mode(0o755)).unwrap();
    env.admit_repo(&repo);
    // Unsandboxed: no PID namespace or cgroup to end it, only the harness's own sweep.
    let r = stage2(
        &env,
        &["--provider-bin", s(&repo.bin()), "--no-sandbox"],
        &[],
    );
    assert!(
        r.dir.join("tmp/alive.log").exists(),
        "the daemon never started: {}",
        r.report
    );
    assert_eq!(left_running(&r.dir), Vec::<u32>::new(), "{}", r.report);
    let killed = r.report["provider_exit"]["killed_pids"].as_array().unwrap();
    assert!(!killed.is_empty(), "{}", r.report);
    let size = fs::metadata(r.dir.join("tmp/alive.log")).unwrap().len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        fs::metadata(r.dir.join("tmp/alive.log")).unwrap().len(),
        size,
        "it still writes"
    );
}

/// `script` as `python3` in `<prefix>/shims`, installed as version managers are (its
/// prefix is readable in the sandbox, as a pyenv root is); its path and a PATH with the
/// shims first.
fn install_shim(env: &Env, script: &str) -> (std::path::PathBuf, String) {
    use std::os::unix::fs::PermissionsExt;
    let shims = env.path("tools/shims");
    fs::create_dir_all(&shims).unwrap();
    let shim = shims.join("python3");
    fs::write(&shim, script).unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (shim, path)
}

/// The first `python3` on PATH, resolved to the interpreter it starts.
fn which_python() -> std::path::PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn a_planted_unittest_that_prints_ok_does_not_pass_the_run() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "shadow"], &[]);
    assert_tampered_fail(&r, &["sitecustomize.py", "unittest.py"]);
    // The fixture's tests ran (not the planted runner) and said so.
    assert_eq!(r.report["tests"]["result"], "failed");
    // The interpreter as it resolves outside the judged tree (a pyenv shim would pick
    // one by a `.python-version` the provider left), started isolated.
    let argv = r.report["tests"]["argv"].as_array().unwrap();
    let interpreter = std::path::Path::new(argv[0].as_str().unwrap());
    assert!(
        interpreter.is_absolute() && interpreter.is_file(),
        "{argv:?}"
    );
    assert_eq!(
        argv[1..],
        serde_json::json!(["-I", "-B", "-m", "unittest", "-v"])
            .as_array()
            .unwrap()[..]
    );
    let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
    assert!(log.contains("FAILED"), "{log}");
    // The signed test result says FAILED and names the tests that ran: the fixture's.
    let judge = &r.report["judge"];
    assert_ne!(judge["judged_tree"], judge["workspace_tree"]);
    env.ok(["key", "generate"]);
    let run = format!("run:{}", r.report["run_id"].as_str().unwrap());
    let statements = env.attested(&run);
    let result = statements
        .iter()
        .find(|s| s["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1")
        .unwrap();
    assert_eq!(result["predicate"]["result"], "FAILED");
    let config = result["predicate"]["configuration"].as_array().unwrap();
    let tests = config.iter().find(|c| c["name"] == "tests").unwrap();
    let want = judge["tests_tree"]
        .as_str()
        .unwrap()
        .trim_start_matches("blake3:");
    assert_eq!(tests["digest"]["blake3"], want, "{tests}");
    let vsa = statements
        .iter()
        .find(|s| s["predicateType"] == "https://slsa.dev/verification_summary/v1")
        .unwrap();
    assert_eq!(vsa["predicate"]["verificationResult"], "FAILED");
}

#[test]
fn rewriting_or_removing_the_tests_does_not_pass_the_run() {
    let env = Env::new();
    let edited = stage2(&env, &["--fake-behavior", "edit-test"], &[]);
    assert_tampered_fail(&edited, &["test_strings.py"]);
    assert!(changes(&edited).contains(&("test_strings.py".into(), "modified".into())));
    let removed = stage2(&env, &["--fake-behavior", "delete-test"], &[]);
    assert_tampered_fail(&removed, &["test_strings.py"]);
    // Both judged by the same tests: the fixture's.
    assert_eq!(
        edited.report["judge"]["tests_tree"],
        removed.report["judge"]["tests_tree"]
    );
    let solved = stage2(&env, &[], &[]);
    assert_eq!(solved.report["verdict"], "pass");
    assert_eq!(
        solved.report["judge"]["tests_tree"],
        edited.report["judge"]["tests_tree"]
    );
    assert_eq!(solved.report["judge"]["tampered"], serde_json::json!([]));
}

#[test]
fn git_settings_the_provider_writes_hide_nothing() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "git-worktree"], &[]);
    assert_eq!(r.report["verdict"], "pass", "it solved the task");
    let c = changes(&r);
    for want in [
        (".git", "modified"),
        ("added-by-provider.txt", "added"),
        ("strings.py", "modified"),
    ] {
        assert!(
            c.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing from {c:?}"
        );
    }
}

#[test]
fn a_gitdir_file_pointing_elsewhere_is_never_followed() {
    let env = Env::new();
    // Another repository with changes of its own: their names must not reach the report.
    let other = env.repo("other");
    fs::write(other.dir.join("secret-of-the-other-repo.txt"), "x").unwrap();
    let gitdir = format!("{}/.git", other.dir.display());
    let r = stage2(
        &env,
        &["--fake-behavior", "gitdir"],
        &[("CTO_FAKE_CA_ESCAPE_GITDIR", &gitdir)],
    );
    assert_eq!(r.report["verdict"], "pass", "it solved the task");
    let text = serde_json::to_string(&r.report).unwrap();
    assert!(
        !text.contains("secret-of-the-other-repo"),
        "the report names the other repository's files: {text}"
    );
    assert!(changes(&r).contains(&(".git".into(), "modified".into())));
}

#[test]
fn a_chain_of_setsid_forks_is_dead_when_the_run_returns() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "fork-chain"], &[]);
    let pids: Vec<u32> = fs::read_to_string(r.dir.join("home/fake-ca-pids"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(pids.len() >= 10, "the chain did not get going: {pids:?}");
    assert_eq!(
        left_running(&r.dir),
        Vec::<u32>::new(),
        "processes outlived the run"
    );
    let beat = r.dir.join("home/fork-chain-heartbeat");
    let before = fs::read_to_string(&beat).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fs::read_to_string(&beat).unwrap_or_default(), before);
    let rules = &r.report["sandbox"]["rules"];
    let pidns = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == "pid_namespace")
        .unwrap();
    assert_eq!(pidns["enforced"], true, "{pidns}");
}

/// The `path` of each item of the report's list `key` (`evidence`, `unrecorded`).
fn report_paths<'a>(r: &'a Stage2, key: &str) -> Vec<&'a str> {
    r.report[key]
        .as_array()
        .map(|a| a.iter().map(|e| e["path"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn names_that_read_alike_and_nested_git_folders_are_each_evidence() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "odd-names"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let paths = report_paths(&r, "evidence");
    for want in [
        "workspace/x\\xff",
        "workspace/x\\xfe",
        "workspace/sub/.git/kept.txt",
        "home/.git/kept.txt",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("workspace/.git/")),
        "{paths:?}"
    );
    let id = r.report["run_id"].as_str().unwrap();
    let shown = env.ok(["show", &format!("run:{id}"), "--json"]).json();
    let artifacts = shown["run"]["artifacts"].as_array().unwrap();
    assert_eq!(
        artifacts.len(),
        paths.len() + 1,
        "every evidence file and report.json"
    );
    assert!(env.ok(["audit"]).stdout.contains("audit passed"));
}

#[test]
fn a_path_past_path_max_stops_the_provider_and_hides_none_of_the_harness_files() {
    let env = Env::new();
    let r = stage2(
        &env,
        &["--fake-behavior", "long-path", "--timeout", "60"],
        &[],
    );
    assert_eq!(
        r.report["status"], "provider_output_limit",
        "{}",
        r.report["reason"]
    );
    let reason = r.report["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be walked"), "{reason}");
    // Stopped at its folder limit, its folders are listed and removed (the one past
    // PATH_MAX too); the harness's files beside them are evidence.
    let unrecorded = report_paths(&r, "unrecorded");
    assert_eq!(
        unrecorded,
        ["workspace", "home", "tmp", "backend/case-data"]
    );
    let why = &r.report["unrecorded"][3]["error"];
    assert!(why.as_str().unwrap().contains("and removed"), "{why}");
    assert!(!r.dir.join("backend/case-data").exists());
    let paths = report_paths(&r, "evidence");
    for want in [
        "backend/provider-stdout.log",
        "backend/provider-stderr.log",
        "backend/provider-output-limit.txt",
    ] {
        assert!(paths.contains(&want), "{want} missing: {paths:?}");
    }
    let audit = env.ok(["audit"]);
    assert!(audit.stdout.contains("audit passed"), "{}", audit.stdout);
}

#[test]
fn two_thousand_nested_folders_fail_the_run_and_crash_nothing() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "deep"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "fail");
    let reason = r.report["reason"].as_str().unwrap();
    assert!(
        reason.contains("nests more than 256 folders deep"),
        "{reason}"
    );
    let unrecorded = report_paths(&r, "unrecorded");
    assert_eq!(unrecorded, ["home", "workspace"]);
    assert_eq!(env.last_kind(), "run");
    let recover = env.run(["recover", "--json"]);
    assert_eq!(recover.code, 0, "{}", recover.stderr);
    // The run's own account of the parts it could not store is a note, not a finding.
    let audit = env.ok(["audit"]);
    assert!(audit.stdout.contains("audit passed"), "{}", audit.stdout);
    assert!(
        audit.stdout.contains("part `workspace` was not recorded"),
        "{}",
        audit.stdout
    );
}

#[test]
fn a_fifo_in_the_workspace_is_recorded_and_the_run_still_counts() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "fifo"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "pass");
    assert_eq!(r.report["judge"]["dropped"][0]["path"], "p");
    let id = r.report["run_id"].as_str().unwrap();
    let shown = env.ok(["show", &format!("run:{id}"), "--json"]).json();
    assert_eq!(shown["run"]["status"], "passed");
    assert_eq!(
        env.run(["audit"]).code,
        0,
        "the run folder matches its tree"
    );
    // A later recover has nothing left to do, and stops at nothing.
    let rec = env.ok(["recover", "--json"]).json();
    assert_eq!(rec["failed"], serde_json::json!([]));
}

#[test]
fn a_flood_on_stdout_is_kept_to_its_limit_and_said() {
    let env = Env::new();
    let r = stage2(&env, &["--fake-behavior", "flood"], &[]);
    let out = &r.report["output"]["stdout"];
    // 50 MiB of flood after the fake's first line.
    assert!(out["bytes"].as_u64().unwrap() > 50 * 1024 * 1024, "{out}");
    assert_eq!(out["kept"], 16 * 1024 * 1024);
    let log = r.dir.join("backend/provider-stdout.log");
    let size = fs::metadata(&log).unwrap().len();
    assert!(size < 16 * 1024 * 1024 + 200, "{size} bytes kept");
    let text = fs::read(&log).unwrap();
    let marker = b"bytes dropped here";
    assert!(text.windows(marker.len()).any(|w| w == marker));
    let limits = r.report["limits"].as_array().unwrap();
    let stdout = limits.iter().find(|l| l["name"] == "stdout_bytes").unwrap();
    assert_eq!(stdout["hit"], true);
}

#[test]
fn a_provider_that_fills_its_folders_is_stopped_at_the_limit() {
    let env = Env::new();
    let r = stage2(
        &env,
        &[
            "--fake-behavior",
            "fill",
            "--limit",
            "folder_bytes=8M",
            "--timeout",
            "600",
        ],
        &[],
    );
    // The limit, not the timeout, stopped it (how long that took depends on the machine:
    // not asserted).
    assert_eq!(
        r.report["status"], "provider_output_limit",
        "{}",
        r.report["reason"]
    );
    assert_eq!(r.report["verdict"], "fail");
    let limits = r.report["limits"].as_array().unwrap();
    let folder = limits.iter().find(|l| l["name"] == "folder_bytes").unwrap();
    assert_eq!(
        (folder["value"].as_u64(), folder["hit"].as_bool()),
        (Some(8 << 20), Some(true))
    );
    // What it wrote past the limit (as much as it could between two looks) is listed,
    // not stored, judged or left on disk: what the harness does after is bounded too.
    let listing = fs::read_to_string(r.dir.join("backend/provider-output-limit.txt")).unwrap();
    assert!(listing.contains("workspace: "), "{listing}");
    assert!(listing.contains("workspace/fill-0.bin"), "{listing}");
    // Removed, even the folder it took its own write permission from.
    assert!(!r.dir.join("workspace").exists());
    let unrecorded = r.report["unrecorded"].as_array().unwrap();
    let parts: Vec<&str> = unrecorded
        .iter()
        .filter_map(|u| u["path"].as_str())
        .collect();
    assert!(parts.contains(&"workspace"), "{unrecorded:?}");
    assert!(unrecorded
        .iter()
        .all(|u| u["error"].as_str().unwrap().contains("folder limit")));
    assert_eq!(r.report["tests"]["result"], "error");
    assert!(r.report.get("judge").is_none_or(Value::is_null));
    let id = r.report["run_id"].as_str().unwrap();
    let shown = env.ok(["show", &format!("run:{id}"), "--json"]).json();
    let artifacts = shown["run"]["artifacts"].as_array().unwrap();
    assert!(artifacts
        .iter()
        .any(|a| a["path"] == "backend/provider-output-limit.txt"));
    assert!(
        !artifacts
            .iter()
            .any(|a| a["path"].as_str().unwrap().starts_with("workspace/")),
        "{artifacts:?}"
    );
    assert_eq!(
        env.run(["audit"]).code,
        0,
        "the run folder matches its tree"
    );
    let bad = env.run(["run", "stage2", "--limit", "folder_bytes=lots"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// The built-in fixture with its tests run by `test_command`, and `repo/<file>` written
/// (listed among its protected tests too when `protect`).
fn fixture_running(
    env: &Env,
    file: Option<(&str, &str)>,
    test_command: Value,
    protect: bool,
) -> std::path::PathBuf {
    let fx = env.copy_of_builtin_fixture("fx");
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(fx.join("fixture.json")).unwrap()).unwrap();
    manifest["test_command"] = test_command;
    if let Some((file, body)) = file {
        fs::write(fx.join("repo").join(file), body).unwrap();
        if protect {
            manifest["tests"] = serde_json::json!(["test_strings.py", file]);
        }
    }
    fs::write(fx.join("fixture.json"), manifest.to_string()).unwrap();
    fx
}

/// The built-in fixture with its tests run as `sh ./run-tests.sh`.
fn fixture_run_by_sh(env: &Env) -> std::path::PathBuf {
    let script = ("run-tests.sh", "#!/bin/sh\nexec python3 -m unittest -v\n");
    fixture_running(
        env,
        Some(script),
        serde_json::json!(["sh", "./run-tests.sh"]),
        false,
    )
}

#[test]
fn the_test_command_and_its_sandbox_come_from_the_fixture_not_the_workspace() {
    let env = Env::new();
    let fx = fixture_run_by_sh(&env);
    let r = stage2(
        &env,
        &["--fixture", s(&fx), "--fake-behavior", "swap-runner"],
        &[("CTO_FAKE_CA_ESCAPE_RUNNER", "/bin/true")],
    );
    assert_tampered_fail(&r, &["run-tests.sh"]);
    let readable = r.report["tests"]["sandbox"]["read_only"]
        .as_array()
        .unwrap();
    assert!(
        readable
            .iter()
            .all(|p| !p.as_str().unwrap().contains("/workspace")),
        "{readable:?}"
    );
}

/// A relative or empty PATH entry names the folder a command runs in, and the judge runs
/// in a tree the provider wrote: `sh` and `python3` the provider left there must never be
/// what judges its work, whatever the user's PATH says.
#[test]
fn a_relative_path_entry_never_finds_a_program_the_provider_left() {
    let env = Env::new();
    let fx = fixture_run_by_sh(&env);
    // Relative entries before the system's, and none but a relative one (an empty PATH
    // would be the current folder too).
    for path in [
        format!(":.:{}", std::env::var("PATH").unwrap_or_default()),
        ".".into(),
    ] {
        let r = stage2(
            &env,
            &["--fixture", s(&fx), "--fake-behavior", "path-shadow"],
            &[("PATH", &path)],
        );
        assert_eq!(r.report["verdict"], "fail", "PATH={path}: {}", r.report);
        let tests = &r.report["tests"];
        assert_eq!(tests["result"], "failed", "{tests}");
        let log = fs::read_to_string(r.dir.join("backend/tests.log")).unwrap();
        assert!(log.contains("FAILED"), "the fixture's tests ran: {log}");
    }
}

/// A `GNUmakefile` the provider adds is read by make before the fixture's protected
/// `Makefile`: it is tampering, and is not carried into the judged tree.
#[test]
fn a_makefile_make_would_read_first_is_tampering() {
    let env = Env::new();
    let makefile = ("Makefile", "test:\n\tpython3 -m unittest -v\n");
    let fx = fixture_running(
        &env,
        Some(makefile),
        serde_json::json!(["make", "test"]),
        true,
    );
    let r = stage2(
        &env,
        &["--fixture", s(&fx), "--fake-behavior", "path-shadow"],
        &[],
    );
    assert_tampered_fail(&r, &["GNUmakefile"]);
}

/// pytest reads its configuration before any test runs (`addopts = --collect-only` exits
/// 0 having run none): a `pytest.ini` the provider adds, or a `pyproject.toml` with a
/// pytest section, is tampering.
#[test]
fn a_pytest_configuration_the_provider_adds_is_tampering() {
    let env = Env::new();
    let pytest = serde_json::json!(["python3", "-m", "pytest", "-v"]);
    let fx = fixture_running(&env, None, pytest, false);
    let r = stage2(
        &env,
        &["--fixture", s(&fx), "--fake-behavior", "pytest-config"],
        &[],
    );
    assert_tampered_fail(&r, &["pyproject.toml", "pytest.ini"]);
}

/// An admitted endpoint that answers every request with a stream that never ends.
fn endless_endpoint() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 65536];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
                );
                let chunk = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
                    "y".repeat(64 << 10)
                );
                while conn.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    port
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[test]
fn an_endpoint_that_streams_forever_is_cut_and_the_harness_stays_small() {
    let env = Env::new();
    let port = endless_endpoint();
    let url = format!("http://127.0.0.1:{port}/v1");
    env.ok(["admit", "--model", "local/endless", "--endpoint", &url]);
    let mut c = env.cmd([
        "run",
        "stage2",
        "--fake-behavior",
        "agent",
        "--timeout",
        "8",
        "--json",
    ]);
    c.env("CTO_HARNESS_CASE_MODEL_PROVIDER", "local")
        .env("CTO_HARNESS_CASE_MODEL", "endless")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(peak < 200 * 1024, "the harness peaked at {peak} KiB");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["verdict"], "fail");
    let dir = env
        .ledger
        .join("runs")
        .join(report["run_id"].as_str().unwrap());
    let transcript = fs::read_to_string(dir.join("backend/model-transcript.jsonl")).unwrap();
    let first: Value = serde_json::from_str(transcript.lines().next().unwrap()).unwrap();
    assert!(
        first["response"]["cut"]
            .as_str()
            .unwrap()
            .contains("response limit"),
        "{}",
        first["response"]["cut"]
    );
    let limits = report["limits"].as_array().unwrap();
    let model = limits
        .iter()
        .find(|l| l["name"] == "model_response_bytes")
        .unwrap();
    assert_eq!(model["hit"], true);
}

#[test]
fn recover_records_each_folder_on_its_own() {
    let env = Env::new();
    env.ok(["init"]);
    let runs = env.ledger.join("runs");
    // A killed run that left a FIFO, and a folder whose backend is a file (unrecordable).
    let fifo_run = runs.join("20260101T000000Z-r1-string-slugify-1");
    fs::create_dir_all(fifo_run.join("workspace")).unwrap();
    mkfifo(&fifo_run.join("workspace/p"));
    let broken = runs.join("20260101T000001Z-r1-string-slugify-2");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("backend"), "not a folder").unwrap();
    fs::write(broken.join("report.json"), "{\"kept\": true}").unwrap();
    let r = env.run(["recover", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    assert_eq!(
        v["recovered"],
        serde_json::json!(["20260101T000000Z-r1-string-slugify-1"])
    );
    assert_eq!(v["failed"].as_array().unwrap().len(), 1);
    assert!(v["failed"][0]["folder"].as_str().unwrap().ends_with("-2"));
    assert_eq!(
        fs::read_to_string(broken.join("report.json")).unwrap(),
        "{\"kept\": true}",
        "recover rewrote a report it did not record"
    );
    let shown = env
        .ok(["show", "run:20260101T000000Z-r1-string-slugify-1", "--json"])
        .json();
    assert_eq!(shown["run"]["status"], "interrupted");
}
