//! Defects found by probing the CLI as an attacker and a careless user would. Each test
//! failed on the release before the fix (run against that binary) and passes after.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stage2::{sigkill_harness, spawn_hanging_run, wait_for_provider_in};
use crate::util::*;

/// Waits for a command that must not hang; kills it and fails the test if it does.
fn bounded(env: &Env, args: &[&str]) -> Run {
    let mut child: Child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cto-ledger {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Ingests a directory; its tree's id.
fn ingest_tree(env: &Env, dir: &Path) -> String {
    env.ok(["ingest", s(dir), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Temp files left in the store (a refused input must leave none).
fn store_temps(env: &Env) -> usize {
    walkdir::WalkDir::new(env.ledger.join("objects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".obj-"))
        .count()
}

#[test]
fn restore_refuses_links_that_escape_through_other_links_of_the_tree() {
    let env = Env::new();
    let evil = env.path("evil");
    fs::create_dir_all(evil.join("a")).unwrap();
    symlink("..", evil.join("a/up")).unwrap();
    // Enough `../` to reach / from wherever the tree is restored.
    let climb = "a/up/".repeat(4) + &"../".repeat(12) + "etc/passwd";
    symlink(&climb, evil.join("esc")).unwrap();
    let tree = ingest_tree(&env, &evil);
    let out = env.path("out");
    let r = env.run(["restore", &tree, s(&out)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("esc") && r.stderr.contains("outside"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "a refused restore created its target folder");

    // `parent -> a/up/..` climbs out too.
    let evil2 = env.path("evil2");
    fs::create_dir_all(evil2.join("a")).unwrap();
    symlink("..", evil2.join("a/up")).unwrap();
    symlink("a/up/..", evil2.join("parent")).unwrap();
    let tree2 = ingest_tree(&env, &evil2);
    assert_eq!(env.run(["restore", &tree2, s(&out)]).code, 2);
    assert!(!out.exists());

    // A tree whose links stay inside (through each other) restores.
    let fine = env.path("fine");
    fs::create_dir_all(fine.join("a/b")).unwrap();
    fs::write(fine.join("a/b/f"), "x").unwrap();
    symlink("..", fine.join("a/b/up")).unwrap();
    symlink("a/b/up/b/f", fine.join("via")).unwrap();
    let tree3 = ingest_tree(&env, &fine);
    env.ok(["restore", &tree3, s(&out)]);
    assert_eq!(fs::read_to_string(out.join("via")).unwrap(), "x");
}

#[test]
fn restore_that_fails_midway_leaves_no_target_folder() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), "first").unwrap();
    fs::write(src.join("b"), "second").unwrap();
    let tree = ingest_tree(&env, &src);
    // Flip a byte of b's stored copy: the restore fails when it reaches b.
    let b = env.ok(["ingest", s(&src.join("b")), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .trim_start_matches("blake3:")
        .to_string();
    let at = stored(&env.ledger, &b);
    let mut bytes = fs::read(&at.file).unwrap();
    bytes[at.offset as usize] ^= 1;
    fs::set_permissions(
        &at.file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    fs::write(&at.file, bytes).unwrap();
    let out = env.path("out");
    let r = env.run(["restore", &tree, s(&out)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!out.exists(), "the failed restore left {}", out.display());
}

#[test]
fn absurd_timeouts_are_refused_before_a_run_folder_exists() {
    let env = Env::new();
    env.ok(["init"]);
    let before = env.head();
    let r = env.run(["run", "stage2", "--timeout", "1e20", "--json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.json()["exit_code"], 2);
    let mut c = env.cmd(["run", "stage2"]);
    c.env("CTO_HARNESS_CASE_TIMEOUT_SECONDS", "1e30");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1000000000000000000000000000000"));
    assert!(
        !env.ledger.join("runs").exists(),
        "a run folder was created"
    );
    assert_eq!(env.head(), before);
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn pipes_and_devices_are_refused_not_read() {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["init"]);
    let fifo = env.path("fifo");
    mkfifo(&fifo);
    let pin = repo.pin();
    for path in [s(&fifo), "/dev/zero"] {
        let what = if path == "/dev/zero" {
            "character device"
        } else {
            "FIFO"
        };
        for args in [
            vec!["show", path],
            vec!["verify", path],
            vec!["trace", path],
            vec!["ingest", path],
            vec!["admit", path, "--source-pin", &pin],
        ] {
            let r = bounded(&env, &args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert!(r.stderr.contains(what), "{args:?}: {}", r.stderr);
            assert!(!r.stderr.contains("symlink"), "{args:?}: {}", r.stderr);
        }
    }
    assert_eq!(store_temps(&env), 0);
    assert_eq!(env.head().0, 1, "nothing was recorded");
}

#[test]
fn edits_hidden_by_git_index_flags_are_modifications() {
    for flag in ["--assume-unchanged", "--skip-worktree"] {
        let env = Env::new();
        let repo = env.repo("case");
        env.ok(["init"]);
        repo.git(&["update-index", flag, "gen.ts"]);
        fs::write(
            repo.dir.join("gen.ts"),
            "export const assets = 'hidden edit';\n",
        )
        .unwrap();
        assert_eq!(
            repo.git(&["status", "--porcelain", "--untracked-files=no"]),
            "",
            "git itself sees nothing"
        );
        let r = env.run(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
        assert_eq!(r.code, 2, "{flag}: {}", r.stdout);
        assert!(
            r.stderr.contains("gen.ts (modified)"),
            "{flag}: {}",
            r.stderr
        );
        assert_eq!(env.last_kind(), "refusal");
        let src = env.ok(["source", "add", s(&repo.dir), "--json"]).json();
        assert_eq!(src["source"]["index_flags"][0]["path"], "gen.ts");
        assert_eq!(
            src["source"]["index_flags"][0]["flag"],
            flag.trim_start_matches("--")
        );
    }
}

#[test]
fn killed_harness_with_its_own_runs_dir_is_found_and_recovered() {
    let env = Env::new();
    let runs = env.path("elsewhere/runs");
    let child = spawn_hanging_run(&env, &["--runs-dir", s(&runs)]);
    let dir = wait_for_provider_in(&runs);
    assert_eq!(sigkill_harness(child, &dir), Vec::<u32>::new());
    let r = env.run(["audit", "--json"]);
    assert_eq!(r.code, 1, "the folder outside the ledger home went unseen");
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(r.stdout.contains(&name), "{}", r.stdout);
    let rec = env.ok(["recover", "--json"]).json();
    assert_eq!(rec["recovered"][0], name.as_str());
    let report: Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "interrupted");
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn sql_lets_sqlite_decide_what_is_read_only() {
    let env = Env::new();
    env.ok(["init"]);
    let before = env.head();
    for q in [
        "SELECT*FROM journal",
        "select(1)",
        "VALUES(1)",
        "/* c */ SELECT 1",
        "\n-- why\nSELECT count(*) FROM runs",
        "WITH x AS (SELECT 1 AS n) SELECT n FROM x",
        "SELECT name FROM pragma_table_info('runs')",
    ] {
        let r = env.run(["sql", q, "--json"]);
        assert_eq!(r.code, 0, "{q:?} was refused: {}", r.stderr);
    }
    let attached = env.path("attached.db");
    let attach = format!("ATTACH '{}' AS x", s(&attached));
    for q in [
        "",
        "   ",
        "DELETE FROM journal",
        "INSERT INTO runs (id) VALUES ('x')",
        attach.as_str(),
        "PRAGMA user_version = 99",
        "SELECT 1; SELECT 2",
        "BEGIN",
    ] {
        let r = env.run(["sql", q]);
        assert_eq!(r.code, 2, "{q:?} was accepted: {}", r.stdout);
        assert!(r.stderr.contains("hint:"), "{q:?}: {}", r.stderr);
        assert!(!r.stderr.contains("`` statements"), "{q:?}: {}", r.stderr);
    }
    assert!(!attached.exists());
    assert_eq!(env.head(), before);
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn json_is_printed_for_argument_errors_and_by_every_command() {
    let env = Env::new();
    env.ok(["init"]);
    for args in [
        vec!["--json", "show"],
        vec!["--json", "bogus"],
        vec!["--json", "log", "--limit", "-1"],
        vec!["--json", "graph", "x", "--format", "bogus"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{args:?}");
        let doc: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {:?}", r.stdout));
        assert_eq!(doc["exit_code"], 2);
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
    let man = env.ok(["--json", "man"]).json();
    assert!(man["page"].as_str().unwrap().contains(".TH"));
    let comp = env.ok(["completions", "bash", "--json"]).json();
    assert!(comp["script"].as_str().unwrap().contains("cto-ledger"));
    // Without --json, help and argument errors stay text.
    let r = env.run(["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Usage"));
    assert!(env.run(["bogus"]).stdout.is_empty());
}

#[test]
fn typos_in_filters_are_refused_with_the_valid_values() {
    let env = Env::new();
    env.ok(["init"]);
    let r = env.run(["log", "--kind", "bogus"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("model_admission") && r.stderr.contains("bogus"),
        "{}",
        r.stderr
    );
    let r = env.run(["runs", "--status", "bogus"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("provider_timeout"), "{}", r.stderr);
    assert_eq!(
        env.ok(["log", "--kind", "init", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn fixture_names_that_break_tables_and_paths_are_refused_up_front() {
    let env = Env::new();
    for bad in ["two words", "new\nline", &"x".repeat(300), ".hidden"] {
        let _ = fs::remove_dir_all(env.path("fx"));
        let fx = env.copy_of_builtin_fixture("fx");
        let mut manifest: Value =
            serde_json::from_slice(&fs::read(fx.join("fixture.json")).unwrap()).unwrap();
        manifest["name"] = Value::String(bad.to_string());
        fs::write(
            fx.join("fixture.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let r = env.run(["run", "stage2", "--fixture", s(&fx)]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("plain name"), "{bad:?}: {}", r.stderr);
        assert!(
            !env.ledger.join("runs").exists(),
            "{bad:?}: a run folder was made"
        );
    }
}

#[test]
fn parallel_first_runs_admit_the_shipped_fake_once() {
    let env = Env::new();
    env.ok(["init"]);
    let children: Vec<Child> = (0..6)
        .map(|_| {
            env.cmd(["run", "stage2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let n = env
        .ok([
            "sql",
            "SELECT count(*) AS n FROM admissions WHERE name = 'fake-ca'",
            "--json",
        ])
        .json();
    assert_eq!(n["rows"][0][0], 1, "{n}");
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn verify_names_a_local_source_and_git_bookkeeping_is_not_admitted() {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    let v = env.ok(["verify", s(&repo.bin())]).stdout;
    assert!(
        v.contains(&format!(
            "source {}",
            repo.dir.canonicalize().unwrap().display()
        )),
        "{v}"
    );
    let before = env.head();
    let r = env.run([
        "admit",
        s(&repo.dir.join(".git/HEAD")),
        "--source-pin",
        &repo.pin(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("git directory"), "{}", r.stderr);
    assert_eq!(env.head(), before);
}

/// `ingest DIR --json` paused once its walk has listed `dir` (`CTO_LEDGER_TEST_WALKED`),
/// `change` made to the folder in that pause, `hooks` set.
fn ingest_changed_after_walk(env: &Env, dir: &Path, hooks: &[&str], change: impl FnOnce()) -> Run {
    let flag = env.path("walked");
    let mut c = env.cmd(["ingest", s(dir), "--json"]);
    c.env("CTO_LEDGER_TEST_WALKED", &flag);
    for h in hooks {
        c.env(h, "1");
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(Instant::now() < deadline, "the walk never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    change();
    fs::remove_file(&flag).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether any file of the store holds `needle` (objects are kept as their bytes).
fn store_holds(env: &Env, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(env.ledger.join("objects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| {
            let b = fs::read(e.path()).unwrap_or_default();
            b.windows(needle.len()).any(|w| w == needle)
        })
}

#[test]
fn a_folder_or_file_swapped_between_the_walk_and_the_read_is_refused_not_followed() {
    // A provider racing the harness's ingest of its workspace: the walk lists `inner/`,
    // then `inner` becomes a symlink to a folder outside (bytes the provider could not
    // read itself), or a listed file is replaced by a rename inside the tree.
    const OUTSIDE: &[u8] = b"bytes from outside the folder, never to be stored";
    for hooks in [&[][..], &["CTO_LEDGER_TEST_NO_OPENAT2"][..]] {
        let env = Env::new();
        let (src, outside) = (env.path("src"), env.path("outside"));
        fs::create_dir_all(src.join("inner/deeper")).unwrap();
        fs::create_dir_all(outside.join("deeper")).unwrap();
        for (dir, body) in [(&src.join("inner"), &b"inside"[..]), (&outside, OUTSIDE)] {
            fs::write(dir.join("secret"), body).unwrap();
            fs::write(dir.join("deeper/secret"), body).unwrap();
        }
        fs::write(src.join("a"), "file a").unwrap();
        fs::write(src.join("b"), "file b").unwrap();
        let r = ingest_changed_after_walk(&env, &src, hooks, || {
            fs::rename(src.join("inner"), env.path("moved")).unwrap();
            symlink(&outside, src.join("inner")).unwrap();
        });
        assert_eq!(r.code, 2, "{hooks:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("was replaced while it was being ingested"),
            "{}",
            r.stderr
        );
        assert!(
            !store_holds(&env, OUTSIDE),
            "{hooks:?}: outside bytes were stored"
        );
        assert_eq!(
            env.ok(["log", "--json"]).json().as_array().map(Vec::len),
            Some(0)
        );

        fs::remove_file(src.join("inner")).unwrap();
        fs::rename(env.path("moved"), src.join("inner")).unwrap();
        let r = ingest_changed_after_walk(&env, &src, hooks, || {
            fs::rename(src.join("b"), src.join("a")).unwrap();
            fs::write(src.join("b"), "file b").unwrap();
        });
        assert_eq!(r.code, 2, "{hooks:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains(&format!("{} was replaced", src.join("a").display())),
            "{}",
            r.stderr
        );
        // What the next ingest records is what a fresh ledger reads.
        assert_eq!(
            ingest_tree(&env, &src),
            ingest_tree(&Env::new(), &src),
            "{hooks:?}"
        );
    }
}
