//! Every bad input: exit 2, a message naming the input, and the ledger unchanged
//! (or moved by exactly one recorded refusal).

use std::fs;

use crate::util::*;

/// Runs `args`, requires exit 2 with a message naming `needle`, and requires the
/// journal to have moved by exactly `events` (0, or 1 for a recorded refusal).
fn refused(env: &Env, args: &[&str], needle: &str, events: u64) {
    let before = env.head();
    let r = env.run(args);
    assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "{args:?}: stderr does not name `{needle}`:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:"),
        "{args:?}: no hint:\n{}",
        r.stderr
    );
    let after = env.head();
    assert_eq!(
        after.0,
        before.0 + events,
        "{args:?} moved the journal by the wrong amount"
    );
    if events == 0 {
        assert_eq!(after, before);
    } else {
        assert_eq!(env.last_kind(), "refusal");
    }
}

fn refused_without_change(env: &Env, args: &[&str], needle: &str) {
    refused(env, args, needle, 0)
}

fn refused_with_record(env: &Env, args: &[&str], needle: &str) {
    refused(env, args, needle, 1)
}

#[test]
fn admission_inputs_that_cannot_be_used() {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["init"]);
    let bin = s(&repo.bin()).to_string();
    let pin = repo.pin();
    refused_without_change(
        &env,
        &["admit", "no/such/file", "--source-pin", &pin],
        "no/such/file",
    );
    refused_without_change(
        &env,
        &["admit", s(&repo.dir), "--source-pin", &pin],
        "is a directory",
    );
    refused_without_change(&env, &["admit", &bin, "--source-pin", "zzzzzzz"], "zzzzzzz");
    refused_without_change(&env, &["admit", &bin, "--source-pin", "7959ac"], "7959ac");
    refused_without_change(
        &env,
        &["admit", &bin, "--source-pin", &pin, "--name", "blake3:abc"],
        "blake3:abc",
    );
    refused_without_change(
        &env,
        &[
            "admit",
            &bin,
            "--source-pin",
            &pin,
            "--source",
            "/no/such/dir",
        ],
        "/no/such/dir",
    );

    refused_with_record(&env, &["admit", &bin, "--source-pin", "0000000"], "0000000");
    refused_with_record(
        &env,
        &[
            "admit",
            &bin,
            "--source-pin",
            &pin,
            "--allow-modified",
            "README",
        ],
        "README",
    );
    let outside = env.path("outside.bin");
    fs::write(&outside, b"not in a clone").unwrap();
    refused_with_record(
        &env,
        &["admit", s(&outside), "--source-pin", &pin],
        "not inside a git clone",
    );
    // --source naming a directory that is not a clone.
    let plain = env.path("plain");
    fs::create_dir(&plain).unwrap();
    refused_with_record(
        &env,
        &["admit", &bin, "--source-pin", &pin, "--source", s(&plain)],
        "not a git clone",
    );
}

#[test]
fn admission_name_that_reads_as_a_ref_is_refused() {
    // `bld_x` used to be admitted, and then `show bld_x` looked for a build: the
    // admission could never be found by its name.
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["init"]);
    let bin = s(&repo.bin()).to_string();
    let pin = repo.pin();
    for name in [
        "bld_x",
        "adm_1",
        "mod_a",
        "src_b",
        "ref_c",
        "rev_d",
        "deadbeef",
        "7959ac917",
        "run:x",
        "commit:abc",
        "sha256:ab",
        "p/m",
    ] {
        refused_without_change(
            &env,
            &["admit", &bin, "--source-pin", &pin, "--name", name],
            name,
        );
    }
    // A name that reads as nothing else is admitted and found by that name.
    env.ok(["admit", &bin, "--source-pin", &pin, "--name", "build-x"]);
    let shown = env.ok(["show", "build-x", "--json"]).json();
    assert_eq!(shown["admission"]["name"], "build-x");
}

/// As an ordinary user (`nobody` under `setpriv` when the tests run as root, since root
/// reads files whatever their mode).
#[test]
fn unreadable_file_is_refused() {
    let mut env = Env::new();
    let repo = env.repo("case");
    let pin = repo.pin();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(repo.bin(), fs::Permissions::from_mode(0o000)).unwrap();
    env.unprivileged();
    env.ok(["init"]);
    refused_without_change(
        &env,
        &["admit", s(&repo.bin()), "--source-pin", &pin],
        "cannot be read",
    );
}

#[test]
fn refs_that_match_nothing() {
    let env = Env::new();
    env.ok(["init"]);
    refused_without_change(&env, &["show", "blake3:ffffffff"], "blake3:ffffffff");
    refused_without_change(&env, &["cat", "sha256:0123456789"], "sha256:0123456789");
    refused_without_change(&env, &["show", "run:nope"], "run:nope");
    refused_without_change(
        &env,
        &["revoke", "nothing-here", "--reason", "x"],
        "nothing-here",
    );
    let r = env.run(["verify", "abcdef0123"]);
    assert_eq!(
        r.code, 2,
        "a short prefix that matches nothing is bad input: {}",
        r.stderr
    );
}

#[test]
fn corrupt_or_foreign_ledger_db_is_refused_and_left_alone() {
    let env = Env::new();
    fs::create_dir_all(&env.ledger).unwrap();
    let db = env.ledger.join("ledger.db");
    let garbage = b"this is not a database, it is a grocery list: eggs, milk, bread....................................".repeat(50);
    fs::write(&db, &garbage).unwrap();
    for args in [vec!["log"], vec!["init"], vec!["admit", "--model", "a/b"]] {
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("not a SQLite database") && r.stderr.contains("ledger.db"),
            "{}",
            r.stderr
        );
        assert_eq!(
            fs::read(&db).unwrap(),
            garbage,
            "{args:?} modified the file"
        );
    }
}

#[test]
fn ledger_from_a_newer_version_is_refused_not_modified() {
    let env = Env::new();
    env.ok(["init"]);
    env.db().pragma_update(None, "user_version", 99).unwrap();
    let db = env.ledger.join("ledger.db");
    let before = fs::read(&db).unwrap();
    for args in [vec!["log"], vec!["admit", "--model", "a/b"]] {
        let r = env.run(&args);
        assert_eq!(r.code, 2);
        assert!(
            r.stderr.contains("newer cto-ledger") && r.stderr.contains("99"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(fs::read(&db).unwrap(), before);
}

#[test]
fn restore_refuses_a_non_empty_directory() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    let tree = env.ok(["ingest", s(&src), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = env.path("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep"), "mine").unwrap();
    refused_without_change(&env, &["restore", &tree, s(&dest)], "not empty");
    assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "mine");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.run(["admit"]).code, 2);
    assert_eq!(env.run(["no-such-command"]).code, 2);
    assert_eq!(env.run(["run", "stage2", "--timeout", "-1"]).code, 2);
    assert_eq!(
        env.run(["run", "stage2", "--fixture", "/no/such/fixture"])
            .code,
        2
    );
    assert_eq!(env.run(["audit", "--checkpoint", "garbage"]).code, 2);
    // A fake behaviour on the real lane would be ignored by the provider, silently.
    env.ok(["init"]);
    refused_without_change(
        &env,
        &[
            "run",
            "stage2",
            "--provider",
            FAKE,
            "--fake-behavior",
            "agent",
        ],
        "--fake-behavior agent is for the fake lane",
    );
}
