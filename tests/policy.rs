//! Rego policies at admission, through the real binary: decisions recorded as evidence,
//! refusals with the policy's messages, bounds on what a policy may cost, and the
//! shipped examples' own tests.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const NEEDS_BUILD: &str = r#"package cto.needs_build
import rego.v1
default allow := false
allow if count(deny) == 0
deny contains msg if {
    input.build == null
    msg := sprintf("%s has no recorded build", [input.candidate.name])
}
"#;

/// Panics unless `input` follows schema/policy-input.schema.json.
pub(crate) fn validate(input: &Value) {
    assert_follows_schema(include_str!("../schema/policy-input.schema.json"), input);
}

fn decisions(env: &Env) -> Vec<(String, String, String, String)> {
    let db = env.db();
    let mut st = db
        .prepare("SELECT subject, policy, result, messages FROM policy_decisions ORDER BY seq, ord")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_policy_refuses_with_its_messages_records_each_decision_and_removal_is_an_event() {
    let env = Env::new();
    let repo = env.repo("src");
    let file = env.path("needs-build.rego");
    fs::write(&file, NEEDS_BUILD).unwrap();
    let added = env.ok(["policy", "add", s(&file), "--json"]).json();
    assert_eq!(added["policy"]["name"], "needs-build", "{added}");
    assert_eq!(added["policy"]["package"], "data.cto.needs_build");
    // Adding the same file again records nothing.
    let head = env.head();
    assert_eq!(
        env.ok(["policy", "add", s(&file), "--json"]).json()["already"],
        true
    );
    assert_eq!(env.head(), head);
    // Another file under the same name does not quietly take its place.
    let lax = env.path("lax.rego");
    fs::write(
        &lax,
        "package cto.lax\nimport rego.v1\ndefault allow := true\n",
    )
    .unwrap();
    let r = env.run(["policy", "add", s(&lax), "--name", "needs-build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("already in force with another file"),
        "{}",
        r.stderr
    );
    assert_eq!(env.head(), head);

    // No recorded build: refused, with the policy's message, and the refusal records
    // the decision and the input it was made over.
    let r = env.run(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("policy needs-build denied: ca has no recorded build"),
        "{}",
        r.stderr
    );
    assert_eq!(env.last_kind(), "refusal");
    let d = decisions(&env);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].0.as_str(), d[0].2.as_str()), ("refusal", "denied"));
    let refusal: String = env
        .db()
        .query_row(
            "SELECT id FROM refusals WHERE reason = 'policy_denied'",
            [],
            |r| r.get(0),
        )
        .unwrap();

    // `policy eval` shows the input the policy saw, which follows the schema.
    let e = env.run([
        "policy",
        "eval",
        "needs-build",
        "--input",
        &format!("refusal:{refusal}"),
        "--json",
    ]);
    assert_eq!(e.code, 1, "{}", e.stderr);
    let e = e.json();
    assert_eq!(e["allow"], false);
    assert_eq!(e["input"]["candidate"]["name"], "ca");
    assert_eq!(e["input"]["build"], Value::Null);
    validate(&e["input"]);

    // Built by a recorded build: allowed, and the admission records the decision.
    assert!(env
        .build_in(&repo, "printf built > dist/ca")
        .status
        .success());
    let a = env.admit_repo(&repo);
    let policies = &a["admission"]["policies"];
    assert_eq!(policies[0]["policy"], "needs-build", "{a}");
    assert_eq!(policies[0]["result"], "allowed");
    let input_object = policies[0]["input_object"].as_str().unwrap().to_string();
    let input: Value =
        serde_json::from_slice(&env.ok(["cat", &input_object]).stdout.into_bytes()).unwrap();
    validate(&input);
    assert!(
        input["build"]["id"].as_str().unwrap().starts_with("bld_"),
        "{input}"
    );
    assert_eq!(decisions(&env).last().unwrap().0, "admission");

    // Removal is a later event; an admission after it evaluates nothing.
    env.ok(["policy", "remove", "needs-build"]);
    assert_eq!(env.last_kind(), "policy");
    assert_eq!(
        env.ok(["policy", "list", "--json"]).json(),
        serde_json::json!([])
    );
    fs::write(repo.dir.join("dist/ca"), "other bytes\n").unwrap();
    let before = decisions(&env).len();
    let a = env.admit_repo(&repo);
    assert!(a["admission"].get("policies").is_none(), "{a}");
    assert_eq!(decisions(&env).len(), before);
    env.ok(["audit"]);
}

#[test]
fn a_malformed_policy_is_refused_and_one_that_never_ends_is_bounded_and_named() {
    let env = Env::new();
    let repo = env.repo("src");
    env.ok(["init"]);
    let head = env.head();
    let bad = env.path("bad.rego");
    fs::write(&bad, "package cto.bad\nallow if {\n").unwrap();
    let r = env.run(["policy", "add", s(&bad)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not a policy cto-ledger can use"),
        "{}",
        r.stderr
    );
    let no_allow = env.path("no-allow.rego");
    fs::write(
        &no_allow,
        "package cto.x\nimport rego.v1\ndeny contains \"no\" if true\n",
    )
    .unwrap();
    let r = env.run(["policy", "add", s(&no_allow)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("declares no `allow` rule"),
        "{}",
        r.stderr
    );
    assert_eq!(env.head(), head, "nothing was recorded");
    // A link is not followed (its target would be read, and echoed in a parse error).
    std::os::unix::fs::symlink("/etc/passwd", env.path("link.rego")).unwrap();
    let r = env.run(["policy", "add", s(&env.path("link.rego"))]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("symbolic links are not followed") && !r.stderr.contains("root:"),
        "{}",
        r.stderr
    );

    // One that asks for more memory than there is, one that computes for ever, one that
    // allows: the first two could not decide (each named), and the admission is refused.
    let huge = env.path("huge.rego");
    fs::write(&huge, "package cto.huge\nimport rego.v1\ndefault allow := false\nallow if count(numbers.range(1, 100000000000)) > 0\n").unwrap();
    let slow = env.path("slow.rego");
    fs::write(&slow, "package cto.slow\nimport rego.v1\ndefault allow := false\nallow if count([x | some x in numbers.range(1, 5000); some y in numbers.range(1, 5000); x == y]) > 0\n").unwrap();
    let fine = env.path("fine.rego");
    fs::write(
        &fine,
        "package cto.fine\nimport rego.v1\ndefault allow := true\n",
    )
    .unwrap();
    for f in [&huge, &slow, &fine] {
        env.ok(["policy", "add", s(f)]);
    }
    let t = Instant::now();
    let r = env.run(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    assert!(
        // Each engine has 10 s once asked; a gross bound (not a timing target) so that
        // one computing for ever fails here instead of hanging the suite.
        t.elapsed() < Duration::from_secs(300),
        "bounded: {:?}",
        t.elapsed()
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("policy huge could not decide"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("policy slow could not decide"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("time limit"), "{}", r.stderr);
    assert!(!r.stderr.contains("policy fine"), "{}", r.stderr);
    let d = decisions(&env);
    let results: Vec<(&str, &str)> = d.iter().map(|x| (x.1.as_str(), x.2.as_str())).collect();
    assert_eq!(
        results,
        [("fine", "allowed"), ("huge", "failed"), ("slow", "failed")]
    );
    env.ok(["audit"]);
}

#[test]
fn the_shipped_example_policies_pass_their_tests_and_a_failing_test_fails() {
    let env = Env::new();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/policies");
    let r = env.run(["policy", "test", s(&docs), "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let tests = r.json();
    assert!(tests.as_array().unwrap().len() >= 10, "{tests}");
    assert!(tests
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["passed"] == true));
    // A test that does not hold fails the run.
    let dir = env.path("failing");
    fs::create_dir_all(&dir).unwrap();
    for f in [
        "team.rego",
        "reproduced-and-signed.rego",
        "examples_test.rego",
    ] {
        fs::copy(docs.join(f), dir.join(f)).unwrap();
    }
    fs::write(
        dir.join("wrong_test.rego"),
        "package cto.wrong_test\nimport rego.v1\nimport data.cto.team\ntest_admits_anything if team.allow with input as {\"candidate\": {\"name\": \"evil\"}}\n",
    )
    .unwrap();
    let r = env.run(["policy", "test", s(&dir)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);
    assert!(r.stdout.contains("test_admits_anything"), "{}", r.stdout);
}
