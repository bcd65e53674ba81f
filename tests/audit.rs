//! `audit` passes on a healthy ledger and names each kind of damage.

use std::fs;

use crate::util::*;

/// A ledger with a source, an admission, a refusal, a model admission and a run.
fn populated() -> (Env, Repo) {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    let _ = env.run(["admit", s(&repo.bin()), "--source-pin", "0000000"]);
    env.ok(["admit", "--model", "anthropic/claude-sonnet-4-6"]);
    env.ok(["run", "stage2"]);
    (env, repo)
}

fn audit(env: &Env, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["audit", "--json"];
    args.extend_from_slice(extra);
    let r = env.run(&args);
    (r.code, r.json())
}

fn findings(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(&v["findings"]).unwrap()
}

#[test]
fn healthy_ledger_passes() {
    let (env, _) = populated();
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 0, "{}", findings(&v));
    assert!(v["objects_checked"].as_u64().unwrap() > 10);
    assert_eq!(v["runs_checked"], 1);
    let human = env.run(["audit"]);
    assert!(human.stdout.contains("audit passed"));
}

#[test]
fn flipped_byte_in_an_object_is_named() {
    let (env, repo) = populated();
    let id = env.damage_stored_copy(&repo.bin(), true);
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 1);
    let f = findings(&v);
    assert!(f.contains(&id) && f.contains("corrupt"), "{f}");
    // `cat` refuses to hand out the damaged bytes.
    let r = env.run(["cat", &id]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn journal_row_edited_behind_the_triggers_back_is_named() {
    let (env, _) = populated();
    let db = env.db();
    db.execute_batch("DROP TRIGGER journal_is_append_only_update")
        .unwrap();
    db.execute(
        "UPDATE journal SET event = replace(event, '0000000', '7777777') WHERE kind = 'refusal'",
        [],
    )
    .unwrap();
    let seq: i64 = db
        .query_row("SELECT seq FROM journal WHERE kind = 'refusal'", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(db);
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 1);
    let f = findings(&v);
    assert!(
        f.contains(&format!("event {seq}")) && f.contains("altered"),
        "{f}"
    );
}

#[test]
fn journal_triggers_refuse_update_and_delete() {
    let (env, _) = populated();
    let db = env.db();
    let u = db.execute("UPDATE journal SET kind = 'x' WHERE seq = 1", []);
    assert!(u.unwrap_err().to_string().contains("append-only"));
    let d = db.execute("DELETE FROM journal WHERE seq = 1", []);
    assert!(d.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn deleted_projection_row_is_named() {
    let (env, _) = populated();
    let db = env.db();
    db.execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM admissions;")
        .unwrap();
    drop(db);
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 1);
    let f = findings(&v);
    assert!(f.contains("\"admissions\"") && f.contains("missing"), "{f}");
}

#[test]
fn forged_projection_row_is_named() {
    let (env, _) = populated();
    let db = env.db();
    db.execute("UPDATE admissions SET sha256 = 'sha256:' || substr('0000000000000000000000000000000000000000000000000000000000000000', 1, 64)", []).unwrap();
    drop(db);
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 1);
    assert!(
        findings(&v).contains("differs from the journal"),
        "{}",
        findings(&v)
    );
}

#[test]
fn truncated_journal_is_caught_against_an_earlier_checkpoint() {
    let (env, _) = populated();
    let cp = env.ok(["checkpoint"]).stdout.trim().to_string();
    let (code, _) = audit(&env, &["--checkpoint", &cp]);
    assert_eq!(code, 0);
    env.ok(["admit", "--model", "openai/gpt-5"]);
    let (code, _) = audit(&env, &["--checkpoint", &cp]);
    assert_eq!(code, 0, "a ledger that grew still extends the checkpoint");
    let db = env.db();
    db.execute_batch("DROP TRIGGER journal_is_append_only_delete")
        .unwrap();
    let seq: i64 = cp.split(':').next().unwrap().parse().unwrap();
    db.execute("DELETE FROM journal WHERE seq >= ?1", [seq - 1])
        .unwrap();
    drop(db);
    let (code, v) = audit(&env, &["--checkpoint", &cp]);
    assert_eq!(code, 1);
    assert!(findings(&v).contains("truncated"), "{}", findings(&v));
}

#[test]
fn rewritten_history_is_caught_against_a_checkpoint() {
    let (env, _) = populated();
    let cp = env.ok(["checkpoint"]).stdout.trim().to_string();
    let (_, hash) = cp.split_once(':').unwrap();
    let forged = format!(
        "{}:{}",
        cp.split(':').next().unwrap(),
        hash.replace(&hash[..1], if &hash[..1] == "a" { "b" } else { "a" })
    );
    let (code, v) = audit(&env, &["--checkpoint", &forged]);
    assert_eq!(code, 1);
    assert!(findings(&v).contains("rewritten"), "{}", findings(&v));
}

#[test]
fn reindex_restores_identical_show_and_log_output() {
    let (env, repo) = populated();
    let show_before = env.ok(["show", "ca", "--json"]).stdout;
    let log_before = env.ok(["log"]).stdout;
    let runs_before = env.ok(["runs", "--json"]).stdout;
    let obj_before = env.ok(["show", s(&repo.bin()), "--json"]).stdout;
    let db = env.db();
    db.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM run_artifacts; DELETE FROM runs; DELETE FROM revocations; DELETE FROM model_admissions;
         DELETE FROM refusals; DELETE FROM admission_modified; DELETE FROM admissions; DELETE FROM source_changes;
         DELETE FROM sources; DELETE FROM ingests; DELETE FROM objects;",
    )
    .unwrap();
    drop(db);
    assert_eq!(
        env.run(["show", "ca"]).code,
        2,
        "projections are really gone"
    );
    env.ok(["reindex"]);
    assert_eq!(env.ok(["show", "ca", "--json"]).stdout, show_before);
    assert_eq!(env.ok(["log"]).stdout, log_before);
    assert_eq!(env.ok(["runs", "--json"]).stdout, runs_before);
    assert_eq!(
        env.ok(["show", s(&repo.bin()), "--json"]).stdout,
        obj_before
    );
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn stray_file_in_the_store_is_reported() {
    let (env, _) = populated();
    fs::write(env.ledger.join("objects/zz"), b"junk").unwrap();
    let (code, v) = audit(&env, &[]);
    assert_eq!(code, 1);
    assert!(findings(&v).contains("objects/zz"), "{}", findings(&v));
}

/// A run's recorded tree gone from the store is a finding, and the audit goes on to list
/// everything else it finds (as `git fsck` goes on past a missing object), rather than
/// stopping at the first run it cannot compare.
#[test]
fn a_missing_run_tree_is_a_finding_and_the_audit_goes_on() {
    let env = Env::new();
    env.ok(["run", "stage2"]);
    env.ok(["run", "stage2"]);
    for p in fs::read_dir(env.ledger.join("objects/packs")).unwrap() {
        fs::remove_file(p.unwrap().path()).unwrap();
    }
    let r = env.run(["audit", "--json"]);
    assert_eq!(
        r.code, 1,
        "findings, not an error: {}{}",
        r.stdout, r.stderr
    );
    let findings = r.json()["findings"].as_array().unwrap().clone();
    let says = |what: &str| {
        findings
            .iter()
            .filter(|f| f["message"].as_str().unwrap().contains(what))
            .count()
    };
    assert_eq!(
        says("cannot be compared with its recorded tree"),
        2,
        "{findings:?}"
    );
    assert!(says("missing from the store") > 0, "{findings:?}");
}
