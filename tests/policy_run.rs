//! Policies at the `policy_allowed` gate of `run stage2` and in `verify --policy`, through
//! the real binary: a denied run never starts its provider and leaves its report, every
//! decision is the run's evidence (report, journal, trace, the signed VSA).

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::policy::validate;
use crate::stage2::{
    provider_started, sigkill_harness, spawn_hanging_run, stage2, wait_for_provider_in, Stage2,
};
use crate::util::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/policies")
        .join(name)
}

fn gate<'a>(r: &'a Stage2, name: &str) -> &'a Value {
    r.report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no gate {name}: {}", r.report["gates"]))
}

#[test]
fn a_run_a_policy_denies_never_starts_and_an_allowed_one_is_signed_as_allowed() {
    let env = Env::new();
    env.ok(["init"]);
    let policy = example("fake-lane-only.rego");
    env.ok(["policy", "add", s(&policy), "--on", "run"]);

    // A kernel without signal scoping: the check says so and records nothing.
    let head = env.head();
    let older = [("CTO_LEDGER_TEST_SANDBOX_ABI", "5")];
    let mut c = env.cmd(["run", "stage2", "--check", "--json"]);
    c.envs(older);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = check[0]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "policy_allowed")
        .unwrap_or_else(|| panic!("{check}"))
        .clone();
    assert_eq!(g["passed"], false);
    assert!(
        g["detail"]
            .as_str()
            .unwrap()
            .contains("sandbox rule signals is not enforced"),
        "{g}"
    );
    assert_eq!(env.head(), head, "a check records nothing");

    // The run itself: blocked before the provider starts, with its file and its report.
    let r = stage2(&env, &[], &older);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.report["status"], "blocked");
    assert_eq!(r.report["verdict"], "fail");
    assert!(!provider_started(&r.dir));
    assert_eq!(gate(&r, "policy_allowed")["passed"], false);
    let run_id = r.report["run_id"].as_str().unwrap().to_string();
    let note = fs::read_to_string(r.dir.join("backend/provider-policy-denied.txt")).unwrap();
    assert!(
        note.contains("policy fake-lane-only denied: sandbox rule signals is not enforced")
            && note.contains(&format!("policy eval fake-lane-only --input run:{run_id}")),
        "{note}"
    );
    let d = &r.report["policies"][0];
    assert_eq!(
        (d["policy"].as_str(), d["result"].as_str()),
        (Some("fake-lane-only"), Some("denied")),
        "{d}"
    );
    // The journal's run event records the same decision; the input it was made over is
    // stored, follows the schema, and `policy eval` shows it.
    let recorded: (String, String) = env
        .db()
        .query_row(
            "SELECT result, messages FROM policy_decisions WHERE subject = 'run' AND subject_id = ?1",
            [&run_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(recorded.0, "denied");
    assert!(recorded.1.contains("signals"), "{}", recorded.1);
    let e = env.run([
        "policy",
        "eval",
        "fake-lane-only",
        "--input",
        &format!("run:{run_id}"),
        "--json",
    ]);
    assert_eq!(e.code, 1, "{}", e.stderr);
    let input = &e.json()["input"];
    validate(input);
    assert_eq!(input["kind"], "run");
    assert_eq!(input["sandbox"]["abi"], 5);
    assert_eq!(input["provider"]["admission"]["scope"], "fake-lane");
    let trace = env.ok(["trace", &format!("run:{run_id}")]).stdout;
    assert!(trace.contains("policy fake-lane-only denied"), "{trace}");

    // A hosted model is off this policy's list: blocked, the provider never started.
    env.ok([
        "admit",
        "--model",
        "openai/gpt-5",
        "--endpoint",
        "https://api.example.com/v1",
    ]);
    let hosted = stage2(&env, &["--model", "openai/gpt-5"], &[]);
    assert_eq!(hosted.report["status"], "blocked", "{}", hosted.stderr);
    assert!(!provider_started(&hosted.dir));
    let why = hosted.report["reason"].as_str().unwrap();
    assert!(
        why.contains("model openai/gpt-5 is not the fake or a scripted model (endpoint https://api.example.com/v1)"),
        "{why}"
    );

    // On a kernel that enforces every rule: allowed, said so by the gate, the report and
    // the signed VSA, whose policy is the Rego file by its SHA-256.
    let ok = stage2(&env, &[], &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.report["verdict"], "pass");
    assert_eq!(gate(&ok, "policy_allowed")["passed"], true);
    assert_eq!(ok.report["policies"][0]["result"], "allowed");
    env.ok(["key", "generate"]);
    let run = format!("run:{}", ok.report["run_id"].as_str().unwrap());
    let all = env.attested(&run);
    let vsa = &all
        .iter()
        .find(|s| s["predicateType"] == "https://slsa.dev/verification_summary/v1")
        .unwrap()["predicate"];
    assert_eq!(vsa["verificationResult"], "PASSED");
    assert_eq!(
        vsa["policy"]["uri"],
        "urn:cto-ledger:policy:rego:fake-lane-only"
    );
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        fs::read(&policy).unwrap(),
    ));
    assert_eq!(vsa["policy"]["digest"]["sha256"], sha.as_str());
    let levels = vsa["verifiedLevels"].to_string();
    assert!(
        levels.contains("CTO_LEDGER_POLICY_FAKE_2DLANE_2DONLY_ALLOWED"),
        "{levels}"
    );
    // The blocked run's VSA fails, naming the same policy.
    let blocked = env.attested(&format!("run:{run_id}"));
    let vsa = &blocked
        .iter()
        .find(|s| s["predicateType"] == "https://slsa.dev/verification_summary/v1")
        .unwrap()["predicate"];
    assert_eq!(vsa["verificationResult"], "FAILED");
    assert!(
        !vsa["verifiedLevels"].to_string().contains("POLICY"),
        "{vsa}"
    );
    env.ok(["audit"]);
}

#[test]
fn where_a_policy_applies_is_recorded_and_changing_it_needs_replace() {
    let env = Env::new();
    env.ok(["init"]);
    let policy = example("fake-lane-only.rego");
    let r = env.run(["policy", "add", s(&policy), "--on", "deploy"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("valid points are admit, run"),
        "{}",
        r.stderr
    );
    let added = env.ok(["policy", "add", s(&policy), "--json"]).json();
    assert_eq!(added["policy"]["applies"], serde_json::json!(["admit"]));
    // At admit only: runs are not held to it (no gate, no decision).
    let r = stage2(&env, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.report.get("policies").is_none(), "{}", r.report);
    let head = env.head();
    let r = env.run(["policy", "add", s(&policy), "--on", "admit", "--on", "run"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("at other points"), "{}", r.stderr);
    assert_eq!(env.head(), head);
    let replaced = env
        .ok([
            "policy",
            "add",
            s(&policy),
            "--on",
            "run",
            "--on",
            "admit",
            "--replace",
            "--json",
        ])
        .json();
    assert_eq!(
        replaced["policy"]["applies"],
        serde_json::json!(["admit", "run"])
    );
    let r = stage2(&env, &[], &[]);
    assert_eq!(r.report["policies"][0]["result"], "allowed", "{}", r.report);
    // A policy's messages are shown escaped: a terminal escape stays text.
    let loud = env.path("loud.rego");
    fs::write(
        &loud,
        "package cto.loud\nimport rego.v1\ndefault allow := false\ndeny contains \"\\u001b[2JFAKE PASS\" if true\n",
    )
    .unwrap();
    env.ok(["policy", "add", s(&loud), "--on", "run"]);
    for args in [&["run", "stage2"][..], &["run", "stage2", "--check"][..]] {
        let r = env.run(args.iter().copied());
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            !r.stdout.contains('\u{1b}') && r.stdout.contains("\\u{1b}[2JFAKE PASS"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn verify_with_a_policy_exits_1_naming_what_it_denied() {
    let env = Env::new();
    let repo = env.repo("src");
    env.admit_repo(&repo);
    let needs_build = env.path("needs-build.rego");
    fs::write(
        &needs_build,
        "package cto.needs_build\nimport rego.v1\ndefault allow := false\nallow if count(deny) == 0\ndeny contains msg if {\n  input.build == null\n  msg := sprintf(\"%s has no recorded build\", [input.candidate.name])\n}\n",
    )
    .unwrap();
    let bin = repo.bin();
    assert_eq!(env.run(["verify", s(&bin)]).code, 0);
    let r = env.run(["verify", s(&bin), "--policy", s(&needs_build)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("denied") && r.stdout.contains("ca has no recorded build"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("NOT VERIFIED"), "{}", r.stdout);
    let j = env
        .run(["verify", s(&bin), "--policy", s(&needs_build), "--json"])
        .json();
    assert_eq!(
        (j["admitted"].as_bool(), j["verified"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(j["policies"][0]["result"], "denied");
    // A policy in force, by name, that allows.
    let lax = env.path("lax.rego");
    fs::write(
        &lax,
        "package cto.lax\nimport rego.v1\ndefault allow := true\n",
    )
    .unwrap();
    env.ok(["policy", "add", s(&lax)]);
    assert_eq!(env.run(["verify", s(&bin), "--policy", "lax"]).code, 0);
    // A name that is neither in force nor a file is an error, not a denial.
    let r = env.run(["verify", s(&bin), "--policy", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--policy nope"), "{}", r.stderr);
}

#[test]
fn a_remote_that_requires_a_policy_holds_every_host_to_it() {
    let server = S3Server::start();
    let a = server.host("team");
    let policy = example("fake-lane-only.rego");
    a.ok(["policy", "add", s(&policy), "--on", "run"]);
    // Only a policy in force here can be required.
    let r = a.run(["policy", "require", "team"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("policy team is not in force here"),
        "{}",
        r.stderr
    );
    let req = a
        .ok(["policy", "require", "fake-lane-only", "--json"])
        .json();
    assert_eq!(req["required"][0]["name"], "fake-lane-only", "{req}");
    assert_eq!(req["required"][0]["on"], serde_json::json!(["run"]));
    let config: Value =
        serde_json::from_slice(&fs::read(server.file("team/config/policies.json")).unwrap())
            .unwrap();
    assert_eq!(config["required"], req["required"]);
    a.ok(["push"]);

    // Host B pulls the journal (with the policy) and the requirement: its runs decide.
    let b = server.host("team");
    b.ok(["pull"]);
    let r = stage2(&b, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["policies"][0]["result"], "allowed");
    // B takes the policy out of force: its runs are blocked before the provider starts,
    // and nothing it made since can be pushed.
    b.ok(["policy", "remove", "fake-lane-only"]);
    let listed = b.ok(["policy", "list"]).stdout;
    assert!(
        listed.contains("required by remote origin: fake-lane-only") && listed.contains("NOT MET"),
        "{listed}"
    );
    let r = stage2(&b, &[], &[]);
    assert_eq!(r.report["status"], "blocked", "{}", r.stderr);
    assert!(!provider_started(&r.dir));
    let why = r.report["reason"].as_str().unwrap();
    assert!(
        why.contains("remote origin requires policy fake-lane-only")
            && why.contains("not in force here"),
        "{why}"
    );
    let remote_head = a.ok(["pull", "--json"]).json()["head"].clone();
    let p = b.run(["push"]);
    assert_eq!(p.code, 4, "{}", p.stderr);
    assert!(
        p.stderr
            .contains("nothing pushed: remote origin requires policy fake-lane-only"),
        "{}",
        p.stderr
    );
    assert_eq!(
        a.ok(["pull", "--json"]).json()["head"],
        remote_head,
        "nothing was published"
    );
    // Put back in force (the same file, at the same point), B may push again.
    b.ok(["policy", "add", s(&policy), "--on", "run"]);
    b.ok(["push"]);

    // Nor can a host escape it by forgetting the remote for a while: a run it made with
    // the policy out of force is never published, whatever is in force when it pushes.
    let c = server.host("team");
    c.ok(["pull"]);
    let (url, endpoint): (String, String) = c
        .db()
        .query_row("SELECT url, endpoint FROM remotes", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    c.ok(["policy", "remove", "fake-lane-only"]);
    c.ok(["remote", "remove", "origin"]);
    let unpoliced = stage2(&c, &[], &[]);
    assert_eq!(unpoliced.code, 0, "{}", unpoliced.stderr);
    c.ok(["policy", "add", s(&policy), "--on", "run"]);
    c.ok(["remote", "add", "origin", &url, "--endpoint", &endpoint]);
    let p = c.run(["push"]);
    assert_eq!(p.code, 4, "{}", p.stderr);
    assert!(
        p.stderr.contains(&format!(
            "(run:{}) was recorded without policy fake-lane-only",
            unpoliced.report["run_id"].as_str().unwrap()
        )),
        "{}",
        p.stderr
    );

    // What a remote requires is hostile input: a malformed one is refused by pull,
    // naming the key, and changes nothing (read after the remote's events: A is up to
    // date first).
    a.ok(["pull"]);
    fs::write(
        server.file("team/config/policies.json"),
        r#"{"required": [], "\u001b[2JFAKE": 1}"#,
    )
    .unwrap();
    let head = a.head();
    let r = a.run(["pull"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("config/policies.json"), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\u{1b}') && r.stderr.contains("\\u{1b}[2JFAKE"),
        "{}",
        r.stderr
    );
    assert_eq!(a.head(), head);
    // A config naming a policy twice is refused too, naming the key.
    fs::write(
        server.file("team/config/policies.json"),
        serde_json::to_string(
            &serde_json::json!({"required": [req["required"][0], req["required"][0]]}),
        )
        .unwrap(),
    )
    .unwrap();
    let r = a.run(["pull"]);
    assert!(r.stderr.contains("required more than once"), "{}", r.stderr);
    // Cleared: no host is held to it any more, and pull says so.
    fs::remove_file(server.file("team/config/policies.json")).unwrap();
    let pulled = a.ok(["pull", "--json"]).json();
    assert!(
        pulled["requirement_changes"][0]
            .as_str()
            .unwrap()
            .starts_with("- policy fake-lane-only"),
        "{pulled}"
    );
    a.ok(["policy", "remove", "fake-lane-only"]);
    assert_eq!(stage2(&a, &[], &[]).code, 0);
    a.ok(["push"]);
}

#[test]
fn a_fixture_folder_cannot_pass_for_the_builtin_and_a_killed_blocked_run_keeps_its_decisions() {
    let env = Env::new();
    env.ok(["init"]);
    env.ok([
        "policy",
        "add",
        s(&example("fake-lane-only.rego")),
        "--on",
        "run",
    ]);
    // A fresh ledger: the check sees the admission the shipped fake's first run makes.
    assert_eq!(env.run(["run", "stage2", "--check"]).code, 0);
    let builtin_only = env.path("builtin-only.rego");
    fs::write(
        &builtin_only,
        "package cto.builtin_only\nimport rego.v1\ndefault allow := false\nallow if input.fixture.origin == \"builtin:r1-string-slugify\"\n",
    )
    .unwrap();
    env.ok(["policy", "add", s(&builtin_only), "--on", "run"]);
    assert_eq!(stage2(&env, &[], &[]).code, 0);
    // A folder named like the built-in one, reached through `..`: named by its
    // canonical path, so the policy refuses it.
    let fx = env.copy_of_builtin_fixture("builtin:r1-string-slugify");
    fs::create_dir(env.path("elsewhere")).unwrap();
    let mut c = env.cmd([
        "run",
        "stage2",
        "--json",
        "--fixture",
        "elsewhere/../builtin:r1-string-slugify",
    ]);
    c.current_dir(fx.parent().unwrap());
    let out = c.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "blocked", "{report}");
    assert_eq!(report["policies"][0]["policy"], "builtin-only", "{report}");
    assert_eq!(report["policies"][0]["result"], "denied");
    let seen = env.run([
        "policy",
        "eval",
        "builtin-only",
        "--input",
        &format!("run:{}", report["run_id"].as_str().unwrap()),
        "--json",
    ]);
    assert_eq!(
        seen.json()["input"]["fixture"]["origin"],
        fx.canonicalize().unwrap().to_str().unwrap()
    );

    // Killed after a gate blocked it, before it was recorded: `recover` records it as
    // blocked, with its decisions.
    let mut c = env.cmd(["run", "stage2", "--json"]);
    c.env("CTO_LEDGER_TEST_SANDBOX_ABI", "5")
        .env("CTO_LEDGER_TEST_CRASH_AT", "run-blocked");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), None, "killed");
    env.ok(["recover"]);
    let (status, decisions): (String, i64) = env
        .db()
        .query_row(
            "SELECT r.status, (SELECT count(*) FROM policy_decisions d WHERE d.subject = 'run' AND d.subject_id = r.id)
             FROM runs r ORDER BY r.seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), decisions), ("blocked", 2));
    env.ok(["audit"]);
}

#[test]
fn a_builds_own_edit_is_told_apart_from_allow_modified() {
    let env = Env::new();
    let repo = env.repo("src");
    let policy = env.path("clean.rego");
    fs::write(
        &policy,
        "package cto.clean\nimport rego.v1\ndefault allow := false\nallow if count(deny) == 0\ndeny contains msg if {\n  some m in input.allowed_modified\n  m.by != \"build\"\n  msg := sprintf(\"%s was accepted with --allow-modified\", [m.path])\n}\n",
    )
    .unwrap();
    env.ok(["policy", "add", s(&policy)]);
    // The build rewrites a tracked file (as Case's rewrites its package-assets.ts).
    assert!(env
        .build_in(
            &repo,
            "echo 'export const assets = 2;' > gen.ts && printf built > dist/ca"
        )
        .status
        .success());
    let a = env.admit_repo(&repo);
    let input_object = a["admission"]["policies"][0]["input_object"]
        .as_str()
        .unwrap()
        .to_string();
    let input: Value = serde_json::from_str(&env.ok(["cat", &input_object]).stdout).unwrap();
    validate(&input);
    assert_eq!(
        input["allowed_modified"],
        serde_json::json!([{"path": "gen.ts", "by": "build"}])
    );
    // The same file edited by hand afterwards is no build's edit: only --allow-modified
    // accepts it, and the policy refuses that.
    fs::write(repo.dir.join("gen.ts"), "export const assets = 3;\n").unwrap();
    let r = env.run([
        "admit",
        s(&repo.bin()),
        "--source-pin",
        &repo.pin(),
        "--allow-modified",
        "gen.ts",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("policy clean denied: gen.ts was accepted with --allow-modified"),
        "{}",
        r.stderr
    );
    // A build that only rewrites a hand edit does not make it its own.
    assert!(env
        .build_in(
            &repo,
            "echo '// generated' >> gen.ts && printf rebuilt > dist/ca"
        )
        .status
        .success());
    let r = env.run(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let last: String = env
        .db()
        .query_row(
            "SELECT input_object FROM policy_decisions ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let input: Value = serde_json::from_str(&env.ok(["cat", &last]).stdout).unwrap();
    assert_eq!(
        input["allowed_modified"],
        serde_json::json!([{"path": "gen.ts", "by": "build-over-edit"}]),
        "{}",
        r.stderr
    );
}

#[test]
fn a_remote_requiring_admit_policies_takes_the_default_job_and_push_says_what_changed() {
    let server = S3Server::start();
    let a = server.host("team");
    let lax = a.path("lax.rego");
    fs::write(
        &lax,
        "package cto.lax\nimport rego.v1\ndefault allow := true\n",
    )
    .unwrap();
    a.ok(["policy", "add", s(&lax), "--on", "admit", "--on", "run"]);
    a.ok(["policy", "require", "lax"]);
    // The shipped fake's first-run admission (fake lane only, no admit policy asked) does
    // not wedge the push; its run was decided by the run policy.
    let r = stage2(&a, &[], &[]);
    assert_eq!(r.report["policies"][0]["result"], "allowed", "{}", r.stderr);
    a.ok(["push"]);
    // Another host lifts the requirement: A's next push says so.
    let b = server.host("team");
    b.ok(["pull"]);
    b.ok(["policy", "require", "--none"]);
    let p = a.ok(["push", "--json"]).json();
    assert!(
        p["requirement_changes"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("- policy lax"),
        "{p}"
    );
}

#[test]
fn a_run_killed_after_it_started_is_recorded_as_started_whatever_its_report_says() {
    let env = Env::new();
    env.ok(["init"]);
    let harness = spawn_hanging_run(&env, &[]);
    let dir = wait_for_provider_in(&env.ledger.join("runs"));
    assert_eq!(sigkill_harness(harness, &dir), Vec::<u32>::new());
    // The report that named what ran is gone: the journal's `run_start` still says it.
    fs::remove_file(dir.join("report.json")).unwrap();
    env.ok(["recover"]);
    let (started, start): (i64, Option<String>) = env
        .db()
        .query_row(
            "SELECT provider_started, (SELECT digest FROM run_starts s WHERE s.id = r.id) FROM runs r",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(start.is_some());
    assert_eq!(started, 1);
}
