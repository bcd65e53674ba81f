//! Ledgers written by earlier releases keep working: their journal replays into today's
//! projections, audits clean (every event still re-encodes to its exact bytes) and keeps
//! its head hash.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

fn fixture() -> PathBuf {
    fixture_of("ledger-v0.1")
}

fn fixture_of(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A ledger home holding the fixture's journal and objects, at today's schema.
fn old_ledger(env: &Env) {
    ledger_from(env, &fixture())
}

/// A ledger home holding the journal and (loose) objects of the fixture at `dir`.
fn ledger_from(env: &Env, dir: &Path) {
    env.ok(["reindex"]); // creates an empty ledger at the current schema
    let objects = dir.join("objects");
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
    let journal = fs::read_to_string(dir.join("journal.jsonl")).unwrap();
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

/// The loose stores of release 0.1 and of the release before packs (written by that
/// release's binary) are read as they are; `repack` moves their small objects into packs,
/// and a kill at its worst moment (packs durable, loose copies not yet removed) leaves
/// every object readable and an audit that passes.
#[test]
fn loose_stores_of_earlier_releases_are_read_as_they_are_and_repacked_safely() {
    for (name, events, objects) in [("ledger-v0.1", 15, 74), ("ledger-v0.2", 3, 47)] {
        let env = Env::new();
        ledger_from(&env, &fixture_of(name));
        env.ok(["reindex"]);
        let audit = |env: &Env| {
            let a = env.run(["audit", "--json"]);
            assert_eq!(a.code, 0, "{name}: {}", a.stdout);
            let v = a.json();
            assert_eq!(v["events"], events, "{name}");
            assert_eq!(v["objects_checked"], objects, "{name}");
        };
        audit(&env);
        let loose = store_files(&env.ledger);
        let mut c = env.cmd(["repack"]);
        let killed = c
            .env("CTO_LEDGER_TEST_CRASH_AT", "repack-packed")
            .status()
            .unwrap();
        assert_eq!(killed.code(), None, "{name}: repack was not killed");
        audit(&env);
        assert!(
            store_files(&env.ledger) > loose,
            "{name}: no pack was written"
        );
        let r = env.ok(["repack", "--json"]).json();
        assert!(r["moved"].as_u64().unwrap() > 0, "{name}: {r}");
        assert!(r["damaged"].as_array().unwrap().is_empty(), "{name}: {r}");
        audit(&env);
        let after = store_files(&env.ledger);
        assert!(
            after < loose / 4,
            "{name}: {loose} files before, {after} after"
        );
        // Nothing loose is left to move.
        assert_eq!(env.ok(["repack", "--json"]).json()["moved"], 0);
    }
}
