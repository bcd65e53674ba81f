//! Ledgers written by earlier releases keep working: their journal replays into today's
//! projections, audits clean (every event still re-encodes to its exact bytes) and keeps
//! its head hash.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-v0.1")
}

/// A ledger home holding the fixture's journal and objects, at today's schema.
fn old_ledger(env: &Env) {
    env.ok(["reindex"]); // creates an empty ledger at the current schema
    let objects = fixture().join("objects");
    for fan in fs::read_dir(&objects).unwrap() {
        let fan = fan.unwrap().path();
        let to = env.ledger.join("objects").join(fan.file_name().unwrap());
        fs::create_dir_all(&to).unwrap();
        for obj in fs::read_dir(&fan).unwrap() {
            let obj = obj.unwrap().path();
            let dest = to.join(obj.file_name().unwrap());
            fs::copy(&obj, &dest).unwrap();
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    let db = env.db();
    let journal = fs::read_to_string(fixture().join("journal.jsonl")).unwrap();
    for line in journal.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        db.execute(
            "INSERT INTO journal (seq, kind, time, event, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                r["seq"].as_i64().unwrap(),
                r["kind"].as_str().unwrap(),
                r["time"].as_str().unwrap(),
                r["event"].as_str().unwrap(),
                r["prev_hash"].as_str().unwrap(),
                r["hash"].as_str().unwrap()
            ],
        )
        .unwrap();
    }
}

#[test]
fn journal_of_release_0_1_replays_audits_and_keeps_its_head() {
    let env = Env::new();
    old_ledger(&env);
    let r = env.ok(["reindex", "--json"]).json();
    assert_eq!(r["events_replayed"], 15, "{r}");

    // The audit re-decodes and re-encodes every event (canonical form), re-chains the
    // journal, compares every projection with a fresh replay and re-hashes every object.
    let a = env.run(["audit", "--json"]);
    let audit = a.json();
    assert_eq!(a.code, 0, "{audit:#}");
    assert_eq!(audit["events"], 15);
    assert_eq!(audit["objects_checked"], 74);
    assert_eq!(audit["runs_checked"], 2);

    let want = fs::read_to_string(fixture().join("checkpoint")).unwrap();
    let cp = env.ok(["checkpoint"]).stdout;
    assert_eq!(cp.trim(), want.trim(), "the head hash changed");

    // Typed reads understand every old row: the run's lineage reaches the commit through
    // the admission and its build; the admitted bytes verify; the revoked model shows.
    let runs = env.ok(["runs", "--json"]).json();
    let passed = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "passed")
        .expect("a passed run");
    let trace = env
        .ok(["trace", &format!("run:{}", passed["id"].as_str().unwrap())])
        .stdout;
    for want in [
        "provider: admission adm_",
        "built_by: build bld_",
        "reproduces",
        "commit: commit 34d1b9d5",
    ] {
        assert!(trace.contains(want), "trace lacks {want}:\n{trace}");
    }
    let adm = env.ok(["show", "ca", "--json"]).json();
    let sha = adm["admission"]["sha256"].as_str().unwrap().to_string();
    let v = env.run(["verify", &sha]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    let m = env.ok(["show", "other/model-2", "--json"]).json();
    assert_eq!(
        m["model_admission"]["revocation"]["reason"],
        "fixture: revoked on purpose"
    );
    let impact = env.ok(["impact", "ca"]).stdout;
    assert!(
        impact.contains(&format!("used_by: run:{}", passed["id"].as_str().unwrap())),
        "{impact}"
    );
}

#[test]
fn altered_old_event_is_found_by_audit() {
    // The same fixture with one event's bytes changed: the test above could not pass on
    // a ledger that does not check what it replays.
    let env = Env::new();
    old_ledger(&env);
    let db = env.db();
    db.execute_batch(
        "DROP TRIGGER journal_is_append_only_update;
         UPDATE journal SET event = replace(event, 'fixture: revoked on purpose', 'fixture: revoked on a whim') WHERE seq = 13;",
    )
    .unwrap();
    let a = env.run(["audit"]);
    assert_eq!(a.code, 1, "{}", a.stdout);
    assert!(a.stdout.contains("event 13"), "{}", a.stdout);
}
