//! The auditor's day (#31): what a verifier prints and requires of signed statements, so
//! that exit 0 means what an auditor reads it to mean.

use std::fs;

use crate::util::*;

#[test]
fn a_failed_runs_attestations_fail_unless_asked_and_requirements_are_checked() {
    let env = Env::new();
    let repo = env.repo("case");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/workos/case.git",
    ]);
    env.ok(["key", "generate"]);
    let bin = {
        let mut b = fs::read(FAKE).unwrap();
        b.push(1);
        fs::write(repo.bin(), b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(repo.bin(), fs::Permissions::from_mode(0o755)).unwrap();
        repo.bin()
    };
    env.admit_repo(&repo);
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let pem = env.path("pub.pem");
    fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    let attest = |id: &str, name: &str| {
        let f = env.path(name);
        env.ok(["attest", &format!("run:{id}"), "-o", s(&f)]);
        f
    };
    let check = |f: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["verify-attestation", s(f), "--key", s(&pem)];
        args.extend_from_slice(extra);
        env.run(args)
    };

    // A provider that solves nothing: its run fails; the signatures hold, the claims don't.
    let failed = env
        .run([
            "run",
            "stage2",
            "--provider-bin",
            s(&bin),
            "--fake-behavior",
            "noop",
            "--json",
        ])
        .json();
    assert_eq!(failed["verdict"], "fail", "{failed}");
    let f = attest(failed["run_id"].as_str().unwrap(), "fail.intoto.jsonl");
    let r = check(&f, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("result FAILED") && r.stdout.contains("--any-result"),
        "{}",
        r.stdout
    );
    let r = check(&f, &["--json"]);
    let v = r.json();
    assert!(
        v["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["claims"]["result"] == "FAILED"),
        "{v}"
    );
    assert_eq!(check(&f, &["--any-result"]).code, 0);
    assert_eq!(check(&f, &["--expect-result", "FAILED"]).code, 0);

    // A passing run: exit 0, and each requirement holds or names what is missing.
    let passed = env.agent_run(&bin);
    assert_eq!(passed["verdict"], "pass", "{passed}");
    let p = attest(passed["run_id"].as_str().unwrap(), "pass.intoto.jsonl");
    let r = check(&p, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("result PASSED") && r.stdout.contains(&repo.head()),
        "{}",
        r.stdout
    );
    assert_eq!(check(&p, &["--expect-result", "FAILED"]).code, 1);
    assert_eq!(check(&p, &["--expect-commit", &repo.pin()]).code, 0);
    let r = check(&p, &["--expect-commit", "0000000"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("no provenance names source commit 0000000"),
        "{}",
        r.stdout
    );
    let uri = "https://github.com/workos/case.git";
    assert_eq!(check(&p, &["--expect-source-uri", uri]).code, 0);
    assert_eq!(
        check(
            &p,
            &["--expect-source-uri", "https://evil.example/case.git"]
        )
        .code,
        1
    );
    // The newest runs by name, as people type them.
    let id_of = |r: &str| env.ok(["show", r, "--json"]).stdout;
    let (fid, pid) = (
        failed["run_id"].as_str().unwrap(),
        passed["run_id"].as_str().unwrap(),
    );
    assert!(id_of("run:latest").contains(pid));
    assert!(id_of("run:latest:pass").contains(pid));
    assert!(id_of("run:latest:fail").contains(fid));
    // `runs` prints REFs that paste; a typo names the newest runs and the listing command.
    let listed = env.ok(["runs"]).stdout;
    assert!(listed.contains(&format!("run:{pid}")), "{listed}");
    let r = env.run(["show", &format!("run:{}x", &pid[..10])]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("run:{pid}")) && r.stderr.contains("cto-ledger runs"),
        "{}",
        r.stderr
    );
    let vsa = "https://slsa.dev/verification_summary/v1";
    assert_eq!(check(&p, &["--predicate-type", vsa]).code, 0);
    assert_eq!(
        check(&p, &["--predicate-type", "https://example.com/other"]).code,
        1
    );
}

#[test]
fn a_build_from_a_dirty_tree_says_so() {
    let env = Env::new();
    let repo = env.repo("case");
    fs::write(repo.dir.join("gen.ts"), "export const assets = 9;\n").unwrap();
    let out = env.build_in(&repo, "echo built > dist/ca");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dirty before the build: gen.ts"), "{text}");
    // A clean tree: no warning.
    repo.git(&["checkout", "-q", "--", "gen.ts"]);
    let mut c = env.cmd([
        "build",
        "--output",
        "dist/ca",
        "--json",
        "--",
        "sh",
        "-c",
        "echo built > dist/ca",
    ]);
    let out = c.current_dir(&repo.dir).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("dirty_before").is_none(), "{v}");
}

#[test]
fn prove_of_a_file_takes_its_newest_admission_a_checkpoint_covers() {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["key", "generate"]);
    env.admit_repo(&repo);
    let first = env.head().0;
    env.ok(["checkpoint", "--sign"]);
    // The same bytes admitted again (under another name: the same admission again
    // records nothing): the newest admission is past every checkpoint.
    env.ok([
        "admit",
        s(&repo.bin()),
        "--source-pin",
        &repo.pin(),
        "--name",
        "case-again",
    ]);
    assert!(env.head().0 > first);
    let proof: serde_json::Value =
        serde_json::from_str(&env.ok(["prove", s(&repo.bin())]).stdout).unwrap();
    assert_eq!(proof["entry"]["seq"].as_u64(), Some(first), "{proof}");
    let event = proof["entry"]["event"].as_str().unwrap();
    assert!(event.contains("\"kind\":\"admission\""), "{event}");
}

/// Runs (and every event) in the journal.
fn events(env: &Env) -> usize {
    if !env.ledger.join("ledger.db").exists() {
        return 0;
    }
    env.ok(["log", "--json"]).json().as_array().unwrap().len()
}

#[test]
fn check_evaluates_every_gate_and_records_nothing() {
    let env = Env::new();
    // A fresh ledger, the shipped fake: ready, and still nothing recorded.
    let r = env.run(["run", "stage2", "--check"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for g in [
        "fixture_valid",
        "provider_available",
        "provider_admitted",
        "model_admitted",
        "provider_bytes_verified",
        "provider_sandboxed",
        "tests_interpreter",
    ] {
        assert!(r.stdout.contains(g), "{g} missing:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("ready:"), "{}", r.stdout);
    assert_eq!(events(&env), 0);
    assert!(
        !env.ledger.join("runs").exists()
            || fs::read_dir(env.ledger.join("runs"))
                .unwrap()
                .next()
                .is_none()
    );
    assert!(!env.ledger.join("exec").exists());

    // Every misconfiguration at once, each named; a relative path says relative to what.
    let r = env.run([
        "run",
        "stage2",
        "--check",
        "--provider",
        "dist/ca",
        "--model",
        "scripted/r1-string-slugify",
        "--json",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let gates = v[0]["gates"].as_array().unwrap();
    let blocked: Vec<&str> = gates
        .iter()
        .filter(|g| g["passed"] == false)
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, ["provider_available", "model_admitted"], "{v}");
    let detail = gates[1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("current folder")
            && detail.contains(s(&env.path(""))[..].trim_end_matches('/')),
        "{detail}"
    );
    assert_eq!(v[0]["ready"], false);
    assert_eq!(events(&env), 0);

    // What the check said is what a run then does: admitted, it is ready and a run passes.
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let before = events(&env);
    let r = env.run([
        "run",
        "stage2",
        "--check",
        "--model",
        "scripted/r1-string-slugify",
        "--fake-behavior",
        "agent",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("model server's loopback port"),
        "{}",
        r.stdout
    );
    assert_eq!(events(&env), before);
    let run = env
        .run([
            "run",
            "stage2",
            "--model",
            "scripted/r1-string-slugify",
            "--fake-behavior",
            "agent",
            "--json",
        ])
        .json();
    assert_eq!(run["verdict"], "pass", "{run}");
    assert_eq!(run["model"]["provider"], "scripted");
    assert_eq!(run["model"]["model"], "r1-string-slugify");
    let bad = env.run(["run", "stage2", "--model", "nomodel"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("PROVIDER/MODEL"), "{}", bad.stderr);
}

#[test]
fn fake_behaviors_are_listed_in_help_and_checked() {
    let env = Env::new();
    let help = env.ok(["run", "stage2", "--help"]).stdout;
    for b in ["solve", "agent", "shadow-package", "python-version", "fill"] {
        assert!(help.contains(b), "{b} not in help:\n{help}");
    }
    // <REF> says what it may be.
    let show = env.ok(["show", "--help"]).stdout;
    assert!(
        show.contains("run:latest") && show.contains("commit:PREFIX"),
        "{show}"
    );
    let r = env.run(["run", "stage2", "--fake-behavior", "solvee"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("solve"), "{}", r.stderr);
}

#[test]
fn runs_fit_100_columns_filter_and_ids_are_not_pids() {
    let env = Env::new();
    let pass = stage2_json(&env, &[]);
    let fail = stage2_json(&env, &["--fake-behavior", "noop"]);
    let (p, f) = (
        pass["run_id"].as_str().unwrap(),
        fail["run_id"].as_str().unwrap(),
    );
    // Sortable by time; the suffix is not the harness's pid, and two runs differ.
    assert!(p < f || p[..16] == f[..16], "{p} {f}");
    for r in [&pass, &fail] {
        let id = r["run_id"].as_str().unwrap();
        let pid = r["harness_pid"].to_string();
        assert!(
            !id.ends_with(&format!("-{pid}")),
            "{id} ends with the pid {pid}"
        );
    }
    assert_ne!(p, f);
    let out = env.ok(["runs"]).stdout;
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    assert!(out.contains(&format!("run:{p}")) && out.contains(&format!("run:{f}")));
    let wide = env.ok(["runs", "--wide"]).stdout;
    assert!(
        wide.contains("SANDBOX") && wide.contains("STARTED"),
        "{wide}"
    );
    let only_fail = env.ok(["runs", "--verdict", "fail"]).stdout;
    assert!(
        only_fail.contains(f) && !only_fail.contains(p),
        "{only_fail}"
    );
    let none = env
        .ok(["runs", "--fixture", "no-such-fixture", "--json"])
        .json();
    assert_eq!(none, serde_json::json!([]));
    let by_model = env
        .ok(["runs", "--model", "fake/fake-model", "--json"])
        .json();
    assert_eq!(by_model.as_array().unwrap().len(), 2);
}

fn stage2_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["run", "stage2", "--json"];
    a.extend_from_slice(args);
    env.run(a).json()
}

#[test]
fn show_run_leads_with_the_outcome_and_the_transcript_reads_as_text() {
    let env = Env::new();
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let r = stage2_json(
        &env,
        &[
            "--fake-behavior",
            "agent",
            "--model",
            "scripted/r1-string-slugify",
        ],
    );
    assert_eq!(r["verdict"], "pass", "{r}");
    let run = format!("run:{}", r["run_id"].as_str().unwrap());
    let out = env.ok(["show", &run]).stdout;
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} missing:\n{out}"));
    assert!(at("status") < at("verdict") && at("verdict") < at("gates"));
    assert!(at("gates") < at("provider") && at("model") < at("artifacts"));
    assert!(
        out.lines()
            .take(3)
            .any(|l| l.contains("verdict") && l.contains("pass")),
        "{out}"
    );
    assert!(out.contains("provider started: yes"), "{out}");
    // --json is the graph node, as before.
    let j = env.ok(["show", &run, "--json"]).json();
    assert_eq!(j["type"], "run");

    let t = env.ok(["show", &run, "--transcript"]).stdout;
    for s in [
        "implementer",
        "verifier",
        "retrospective",
        "< call write(",
        "> tool:",
    ] {
        assert!(t.contains(s), "{s} missing:\n{t}");
    }
    // Long messages are elided, with their length.
    assert!(t.contains("characters)"), "{t}");
    assert!(t.lines().all(|l| l.chars().count() <= 140), "{t}");
    // What has no transcript, or is no run, says so.
    let plain = stage2_json(&env, &[]);
    let r = env.run([
        "show",
        &format!("run:{}", plain["run_id"].as_str().unwrap()),
        "--transcript",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("called no model"), "{}", r.stderr);
    let r = env.run(["show", "fake-ca", "--transcript"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a run"), "{}", r.stderr);
}

#[test]
fn the_actor_is_the_user_databases_name_when_no_variable_names_one() {
    let env = Env::new();
    let f = env.path("f.txt");
    fs::write(&f, "x").unwrap();
    let mut c = env.cmd(["ingest", s(&f)]);
    c.env_remove("USER").env_remove("LOGNAME");
    assert!(c.status().unwrap().success());
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    let log = env.ok(["log", "--json"]).json();
    let actor = log[0]["actor"].as_str().unwrap();
    assert!(
        actor.starts_with(&format!("{me}@")),
        "{actor} is not {me}@…"
    );
}

#[test]
fn a_builds_command_is_shown_as_a_shell_would_read_it() {
    let env = Env::new();
    let repo = env.repo("app");
    let mut c = env.cmd([
        "build",
        "--name",
        "app",
        "--output",
        "dist/ca",
        "--",
        "sh",
        "-c",
        "echo one && echo two > dist/ca",
    ]);
    c.current_dir(&repo.dir);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("sh -c 'echo one && echo two > dist/ca'"),
        "{text}"
    );
}
