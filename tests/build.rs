//! `cto-ledger build`: complete build records, builds that dirty their own source,
//! failed builds, and reproducibility checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// A clone whose `build.sh` (committed) writes `dist/app` and rewrites the tracked
/// `src/generated/package-assets.ts`, as Case's `bun run build:binary` does.
fn generating_repo(env: &Env, script_body: &str) -> Repo {
    let repo = env.repo("app");
    fs::create_dir_all(repo.dir.join("src/generated")).unwrap();
    fs::write(
        repo.dir.join("src/generated/package-assets.ts"),
        "export const assets = {};\n",
    )
    .unwrap();
    let script = repo.dir.join("build.sh");
    fs::write(
        &script,
        format!("#!/bin/sh\nset -e\nmkdir -p dist\n{script_body}\necho built\n"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    repo.git(&["add", "."]);
    repo.git(&["commit", "-qm", "build script"]);
    repo
}

fn build(env: &Env, repo: &Repo, args: &[&str]) -> Run {
    let mut c = env.cmd(["build", "--json"]);
    c.args(args).current_dir(&repo.dir);
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const GENERATING: &str = "echo 'export const assets = {\"ca\": 1};' > src/generated/package-assets.ts\ncat src/generated/package-assets.ts > dist/app";

#[test]
fn build_that_rewrites_a_tracked_file_is_admissible_with_its_provenance() {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let r = build(
        &env,
        &repo,
        &[
            "--name",
            "app",
            "--output",
            "dist/app",
            "--tool",
            "sh",
            "--",
            "./build.sh",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("built"),
        "the build's output is streamed to the terminal"
    );
    let b = r.json()["build"].clone();
    assert_eq!(b["status"], "succeeded");
    assert_eq!(b["name"], "app");
    assert_eq!(b["commit"], repo.head());
    assert_eq!(b["argv"], serde_json::json!(["./build.sh"]));
    let m = &b["modified"][0];
    assert_eq!(m["path"], "src/generated/package-assets.ts");
    assert!(
        m["old_object"].as_str().unwrap().starts_with("blake3:")
            && m["new_object"].as_str().unwrap().starts_with("blake3:")
    );
    assert_ne!(m["old_object"], m["new_object"]);
    assert_eq!(
        env.ok(["cat", m["old_object"].as_str().unwrap()]).stdout,
        "export const assets = {};\n"
    );
    assert_eq!(b["outputs"][0]["ignored"], true);
    assert!(b["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "sh"));
    let build_id = b["id"].as_str().unwrap().to_string();

    // Admission accepts the build's own modification without --allow-modified, and says why.
    let a = env
        .ok([
            "admit",
            s(&repo.dir.join("dist/app")),
            "--source-pin",
            &repo.pin(),
            "--json",
        ])
        .json();
    assert_eq!(a["admission"]["build"], build_id.as_str());
    let decisions = a["admission"]["decisions"].to_string();
    assert!(
        decisions.contains("written by build") && decisions.contains("package-assets.ts"),
        "{decisions}"
    );
    let shown = env.ok(["show", "app", "--json"]).json();
    assert_eq!(shown["admission"]["build"]["id"], build_id.as_str());
    assert_eq!(
        shown["admission"]["build"]["modified"][0]["path"],
        "src/generated/package-assets.ts"
    );

    // A hand edit to another tracked file is not explained by any build: refused, and named.
    fs::write(repo.dir.join("README"), "edited by hand\n").unwrap();
    let r = env.run([
        "admit",
        s(&repo.dir.join("dist/app")),
        "--source-pin",
        &repo.pin(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("README") && !r.stderr.contains("package-assets"),
        "{}",
        r.stderr
    );
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn a_rebuild_of_the_same_bytes_is_admissible_by_the_first_builds_edit_and_readmitting_is_idempotent(
) {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let args = ["--name", "app", "--output", "dist/app", "--", "./build.sh"];
    let first = build(&env, &repo, &args).json()["build"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The second build finds package-assets.ts already rewritten: it records no edit,
    // and it is the newest build of these bytes.
    let second = build(&env, &repo, &args).json()["build"].clone();
    assert_eq!(second["modified"], serde_json::json!([]), "{second}");
    let admit = || {
        env.run([
            "admit",
            s(&repo.dir.join("dist/app")),
            "--source-pin",
            &repo.pin(),
            "--json",
        ])
    };
    let r = admit();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = r.json();
    assert_eq!(a["admission"]["build"], first.as_str(), "{a}");
    assert_eq!(a["already"], false);
    // The same bytes, name and pin again: nothing new is recorded.
    let head = env.head();
    let again = admit();
    assert_eq!(again.code, 0, "{}", again.stderr);
    let b = again.json();
    assert_eq!(b["already"], true, "{b}");
    assert_eq!(b["admission"]["id"], a["admission"]["id"]);
    assert_eq!(env.head(), head);
    let text = env.ok([
        "admit",
        s(&repo.dir.join("dist/app")),
        "--source-pin",
        &repo.pin(),
    ]);
    assert!(
        text.stdout.starts_with("already admitted"),
        "{}",
        text.stdout
    );
    // Under another name it is a new admission.
    let other = env
        .ok([
            "admit",
            s(&repo.dir.join("dist/app")),
            "--source-pin",
            &repo.pin(),
            "--name",
            "app2",
            "--json",
        ])
        .json();
    assert_eq!(other["already"], false);

    // The generated file edited after the builds: each refusal names the build that
    // wrote it, what it holds now, and the fix.
    fs::write(
        repo.dir.join("src/generated/package-assets.ts"),
        "tampered\n",
    )
    .unwrap();
    let r = env.run([
        "admit",
        s(&repo.dir.join("dist/app")),
        "--source-pin",
        &repo.pin(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "build {first} wrote src/generated/package-assets.ts"
        )) && r.stderr.contains("git checkout --")
            && r.stderr.contains("cto-ledger build"),
        "{}",
        r.stderr
    );
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn deterministic_build_reproduces() {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    let out = b["build"]["outputs"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.run(["build", "--check", &out, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = r.json();
    assert_eq!(c["build"]["check"]["result"], "reproduces");
    assert_eq!(c["build"]["check"]["of"], b["build"]["id"]);
    assert_eq!(c["build"]["check"]["outputs"][0]["result"], "same");
    // The rebuild's clone speaks for the source: its URL, not a local scratch path.
    assert_eq!(c["build"]["url"], b["build"]["url"], "{c}");
    let commit = b["build"]["commit"].as_str().unwrap();
    let urls = env
        .ok(["show", &format!("commit:{commit}"), "--json"])
        .json();
    for s in urls["commit"]["sources"].as_array().unwrap() {
        assert_eq!(s["url"], b["build"]["url"], "{urls}");
    }
    let shown = env
        .ok(["show", b["build"]["id"].as_str().unwrap(), "--json"])
        .json();
    assert_eq!(shown["build"]["checks"][0]["check_result"], "reproduces");
    // The original clone was not touched by the check.
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "M src/generated/package-assets.ts"
    );
}

/// A finished check's scratch clone is deleted without the check waiting for it, as an
/// ordinary user and where the rebuild left a folder read-only; trash that a stopped
/// deletion left behind goes with the next check.
#[test]
fn a_checks_scratch_clone_is_deleted_after_it_even_read_only() {
    let mut env = Env::new();
    let script =
        "mkdir -p cache/ro\necho x > cache/ro/f\nchmod 0555 cache/ro\necho same > dist/app";
    let repo = generating_repo(&env, script);
    fs::create_dir_all(env.ledger.join("trash-stopped/a")).unwrap();
    fs::write(env.ledger.join("trash-stopped/a/f"), "left").unwrap();
    env.unprivileged();
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    let id = b["build"]["id"].as_str().unwrap();
    let c = env.ok(["build", "--check", id, "--json"]).json();
    assert_eq!(c["build"]["check"]["result"], "reproduces", "{c}");
    let left = || -> Vec<String> {
        fs::read_dir(&env.ledger)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("trash-") || n.starts_with("build-check-"))
            .collect()
    };
    let start = std::time::Instant::now();
    while !left().is_empty() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(left(), Vec::<String>::new());
    env.ok(["audit"]);
}

#[test]
fn build_that_embeds_the_time_diverges_and_names_the_output() {
    let env = Env::new();
    let repo = generating_repo(&env, "date +%s%N > dist/app");
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    let id = b["build"]["id"].as_str().unwrap().to_string();
    let r = env.run(["build", "--check", &id, "--json"]);
    assert_eq!(r.code, 1);
    let c = r.json();
    assert_eq!(c["build"]["check"]["result"], "diverges");
    assert_eq!(c["build"]["check"]["outputs"][0]["path"], "dist/app");
    assert_eq!(c["build"]["check"]["outputs"][0]["result"], "differs");
    assert!(c["build"]["reason"].as_str().unwrap().contains("dist/app"));
}

/// `admit BIN --source-pin <HEAD> --require-reproducible`.
fn admit_reproducible(env: &Env, bin: &std::path::Path, repo: &Repo) -> Run {
    env.run([
        "admit",
        s(bin),
        "--source-pin",
        &repo.pin(),
        "--require-reproducible",
    ])
}

#[test]
fn a_build_that_embeds_its_path_reproduces_at_the_same_path_and_passes_the_policy() {
    let env = Env::new();
    let repo = generating_repo(&env, "pwd > dist/app");
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    let bin = repo.dir.join("dist/app");
    let embedded = fs::read_to_string(&bin).unwrap();
    assert_eq!(
        embedded.trim(),
        repo.dir.canonicalize().unwrap().to_str().unwrap()
    );
    // Never checked: admitted, and the admission says so; the policy refuses it.
    let r = admit_reproducible(&env, &bin, &repo);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("never checked"), "{}", r.stderr);
    let id = b["build"]["id"].as_str().unwrap().to_string();
    let c = env.ok(["build", "--check", &id, "--json"]).json();
    assert_eq!(c["build"]["check"]["result"], "reproduces", "{c}");
    assert_eq!(c["build"]["check"]["same_path"], true);
    // The rebuild ran where the original did; the user's clone was not touched.
    assert_eq!(c["build"]["cwd"], b["build"]["cwd"]);
    assert_eq!(fs::read_to_string(&bin).unwrap(), embedded);
    let a = env
        .ok([
            "admit",
            s(&bin),
            "--source-pin",
            &repo.pin(),
            "--require-reproducible",
            "--json",
        ])
        .json();
    assert_eq!(a["reproducibility"]["result"], "reproduces");
    assert_eq!(a["reproducibility"]["check"], c["build"]["id"]);
}

#[test]
fn a_build_that_writes_the_time_diverges_at_the_right_offset_and_fails_the_policy() {
    let env = Env::new();
    let repo = generating_repo(
        &env,
        "printf 'built at ' > dist/app\ndate +%s%N >> dist/app",
    );
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    let id = b["build"]["id"].as_str().unwrap().to_string();
    let r = env.run(["build", "--check", &id, "--json"]);
    assert_eq!(r.code, 1);
    let c = r.json();
    let d = &c["differences"][0];
    assert_eq!(d["path"], "dist/app");
    // "built at " is 9 bytes; the nanosecond clock is 19 digits after it.
    let first = d["first_difference_offset"].as_u64().unwrap();
    assert!((9..28).contains(&first), "{d}");
    assert_eq!(d["original_size"], d["rebuilt_size"]);
    assert!(
        d["hints"][0].as_str().unwrap().contains("time stamp"),
        "{d}"
    );
    // Another check is another clock reading: the text says where, in its own words.
    let t = env.run(["build", "--check", &id]).stdout;
    assert!(
        t.contains("first difference at byte")
            && t.contains("hint: bytes 9..28 look like a printed time stamp"),
        "{t}"
    );
    // Admitted without the policy (saying it diverges); refused and recorded with it.
    let bin = repo.dir.join("dist/app");
    let a = env
        .ok(["admit", s(&bin), "--source-pin", &repo.pin(), "--json"])
        .json();
    assert_eq!(a["reproducibility"]["result"], "diverges");
    let r = admit_reproducible(&env, &bin, &repo);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("diverges") && r.stderr.contains("build --check"),
        "{}",
        r.stderr
    );
    assert_eq!(env.last_kind(), "refusal");
}

#[test]
fn a_rebuild_that_fails_says_how_with_its_last_lines_and_the_clean_checkout_hint() {
    let env = Env::new();
    // The recorded build used an untracked node_modules the clean checkout lacks.
    let repo = generating_repo(
        &env,
        "test -d node_modules || { echo 'error: Cannot find module node_modules/photon' >&2; exit 3; }\ncp node_modules/x dist/app",
    );
    fs::create_dir_all(repo.dir.join("node_modules")).unwrap();
    fs::write(repo.dir.join("node_modules/x"), "dep\n").unwrap();
    let b = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]).json();
    assert_eq!(b["build"]["status"], "succeeded", "{b}");
    let id = b["build"]["id"].as_str().unwrap().to_string();
    let r = env.run(["build", "--check", &id]);
    assert_eq!(r.code, 1);
    for want in [
        "FAILED",
        "the rebuild exited with status 3",
        "error: Cannot find module node_modules/photon",
        "clean checkout",
    ] {
        assert!(
            r.stdout.contains(want),
            "missing `{want}` in:\n{}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("Some("), "{}", r.stdout);
}

#[test]
fn tools_are_what_the_build_ran_with_digests_and_export_as_resolved_dependencies() {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let b = build(
        &env,
        &repo,
        &["--output", "dist/app", "--tool", "sh", "--", "./build.sh"],
    )
    .json();
    let tools = b["build"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build.sh", "sh"], "only what ran: {tools:?}");
    for t in tools {
        let path = t["path"].as_str().unwrap();
        let sha = t["sha256"].as_str().unwrap();
        assert_eq!(sha, sha256_of_file(std::path::Path::new(path)));
    }
    // A check (run from elsewhere) records the same tools: `./build.sh` is resolved where
    // the rebuild runs, not where cto-ledger was started.
    let id = b["build"]["id"].as_str().unwrap();
    let c = env.ok(["build", "--check", id, "--json"]).json();
    let digests = |ts: &Value| -> Vec<(String, String)> {
        ts.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().into(),
                    t["sha256"].as_str().unwrap_or("none").into(),
                )
            })
            .collect()
    };
    assert_eq!(digests(&c["build"]["tools"]), digests(&b["build"]["tools"]));
    let bin = repo.dir.join("dist/app");
    let e = env.ok(["export", s(&bin), "--format", "in-toto"]).json();
    let deps = e["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let tool_deps: Vec<&Value> = deps
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("tool:"))
        .collect();
    assert_eq!(tool_deps.len(), 2, "{deps:?}");
    assert!(tool_deps
        .iter()
        .all(|d| d["uri"].as_str().unwrap().starts_with("file:///")
            && d["digest"]["sha256"].as_str().unwrap().len() == 64));
}

/// A tool's SHA-256 is read once and then vouched for by its stat (device, inode, size,
/// mtime, ctime, mode), as `ingest` trusts the stat cache: a toolchain of 100 MB is not
/// hashed for every build, and a tool rewritten since is hashed again even with its mtime
/// put back (ctime gives it away: no program can set it).
#[test]
fn a_tools_digest_is_read_once_and_never_trusted_after_a_rewrite() {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let tool = env.path("toolchain/mytool");
    fs::create_dir_all(tool.parent().unwrap()).unwrap();
    fs::write(&tool, "#!/bin/sh\necho mytool 1.0\n").unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    let recorded = |b: &Value| -> String {
        let tools = b["build"]["tools"].as_array().unwrap();
        let t = tools.iter().find(|t| t["name"] == "mytool").unwrap();
        t["sha256"].as_str().unwrap().into()
    };
    let rows = || -> i64 {
        env.db()
            .query_row(
                "SELECT count(*) FROM stat_cache WHERE path = ?1 AND stored = 0",
                [tool.to_str().unwrap().as_bytes()],
                |r| r.get(0),
            )
            .unwrap()
    };
    // Rows are trusted only for files last changed more than 2 s before they were recorded.
    std::thread::sleep(Duration::from_millis(2100));
    let args = [
        "--output",
        "dist/app",
        "--tool",
        s(&tool),
        "--",
        "./build.sh",
    ];
    let first = build(&env, &repo, &args).json();
    assert_eq!(recorded(&first), sha256_of_file(&tool));
    assert_eq!(rows(), 1, "the digest is kept for the next build");
    let second = build(&env, &repo, &args).json();
    assert_eq!(recorded(&second), sha256_of_file(&tool));

    // The same size, the mtime put back: only ctime and the bytes differ.
    rewrite_keeping_mtime(&tool, "#!/bin/sh\necho mytool 2.0\n");
    let third = build(&env, &repo, &args).json();
    assert_eq!(recorded(&third), sha256_of_file(&tool));
    assert_ne!(recorded(&third), recorded(&first));
}

/// A rebuild that writes the bytes of the output's last build copies nothing into the
/// store (it passes with a disk that would not hold the output); other bytes of the same
/// size are stored, and a damaged stored copy is never relied on.
#[test]
fn a_rebuild_with_the_same_output_copies_nothing_and_other_bytes_are_stored() {
    let env = Env::new();
    let seed = env.path("seed.bin");
    let bytes = |salt: u32| -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 13) as u8)
            .collect()
    };
    fs::write(&seed, bytes(1)).unwrap();
    let repo = generating_repo(&env, &format!("cat {} > dist/app", s(&seed)));
    let args = ["--output", "dist/app", "--", "./build.sh"];
    let out_of = |b: &Value| {
        b["build"]["outputs"][0]["object"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = out_of(&build(&env, &repo, &args).json());
    // 100 KB of room: the logs and snapshots fit, a 3 MB output does not.
    let tight = |env: &Env| {
        let mut c = env.cmd(["build", "--json"]);
        c.args(args).current_dir(&repo.dir);
        on_a_tight_disk(c)
    };
    let again = tight(&env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(out_of(&again.json()), first);

    // Its stored copy damaged: a rebuild of the same bytes stores a good one, never
    // relying on that copy.
    let hex = first.strip_prefix("blake3:").unwrap();
    let stored = env.ledger.join("objects").join(&hex[..2]).join(&hex[2..]);
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o644)).unwrap();
    let mut damaged = fs::read(&stored).unwrap();
    damaged[1_000_000] ^= 0xff;
    fs::write(&stored, damaged).unwrap();
    fs::set_permissions(&stored, fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(out_of(&build(&env, &repo, &args).json()), first);
    let cat = env.cmd(["cat", &first]).output().unwrap();
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert_eq!(cat.stdout, bytes(1));

    // The same size, other bytes: they must be written, so the tight disk refuses them.
    fs::write(&seed, bytes(2)).unwrap();
    assert_eq!(tight(&env).code, 4, "disk full");
    let changed = out_of(&build(&env, &repo, &args).json());
    assert_ne!(changed, first);
    let cat = env.cmd(["cat", &changed]).output().unwrap();
    assert_eq!(cat.stdout, bytes(2));
}

/// The tool recorded is the one exec ran: a file on PATH that cannot be executed is
/// skipped as `execvp` skips it, and a relative PATH entry is a folder of where the
/// command runs (the clone's root), not of where cto-ledger was started.
#[test]
fn the_recorded_tool_is_the_one_that_ran() {
    let env = Env::new();
    let repo = generating_repo(&env, GENERATING);
    let script = |p: &std::path::Path, body: &str, mode: u32| {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    };
    let recorded = |r: &Run| -> (String, String) {
        let t = &r.json()["build"]["tools"][0];
        (
            t["path"].as_str().unwrap().into(),
            t["sha256"].as_str().unwrap().into(),
        )
    };
    let path = std::env::var("PATH").unwrap();

    let (decoy, real) = (env.path("decoys/mybuild"), env.path("real/mybuild"));
    script(&decoy, "echo decoy", 0o644);
    script(&real, "exec ./build.sh", 0o755);
    let on_path = format!(
        "{}:{}:{path}",
        decoy.parent().unwrap().display(),
        real.parent().unwrap().display()
    );
    let mut c = env.cmd(["build", "--json", "--output", "dist/app", "--", "mybuild"]);
    c.current_dir(&repo.dir).env("PATH", &on_path);
    let r = finish(c.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let real = real.canonicalize().unwrap();
    assert_eq!(recorded(&r), (s(&real).to_string(), sha256_of_file(&real)));

    let (ran, decoy) = (
        repo.dir.join("tools/rbuild"),
        repo.dir.join("sub/tools/rbuild"),
    );
    script(&ran, "exec ./build.sh", 0o755);
    script(&decoy, "echo decoy", 0o755);
    let mut c = env.cmd(["build", "--json", "--output", "../dist/app", "--", "rbuild"]);
    c.current_dir(repo.dir.join("sub"))
        .env("PATH", format!("tools:{path}"));
    let r = finish(c.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ran = ran.canonicalize().unwrap();
    assert_eq!(recorded(&r), (s(&ran).to_string(), sha256_of_file(&ran)));
}

fn assert_failed_with_logs(env: &Env, r: &Run, reason: &str) -> Value {
    assert_eq!(r.code, 1, "{}", r.stderr);
    let b = r.json()["build"].clone();
    assert_eq!(b["status"], "failed");
    assert!(
        b["reason"].as_str().unwrap().contains(reason),
        "{}",
        b["reason"]
    );
    assert_eq!(b["outputs"], serde_json::json!([]));
    let shown = env.ok(["show", b["id"].as_str().unwrap(), "--json"]).json();
    assert_eq!(shown["build"]["status"], "failed");
    assert!(shown["build"]["stderr_object"]
        .as_str()
        .unwrap()
        .starts_with("blake3:"));
    b
}

#[test]
fn failed_builds_are_recorded_with_logs_and_nothing_admissible() {
    let env = Env::new();
    let repo = generating_repo(
        &env,
        "echo partial > dist/app\necho 'compiler exploded' >&2\nexit 3",
    );
    let r = build(&env, &repo, &["--output", "dist/app", "--", "./build.sh"]);
    let b = assert_failed_with_logs(&env, &r, "status 3");
    assert!(env
        .ok(["cat", b["stderr"].as_str().unwrap()])
        .stdout
        .contains("compiler exploded"));
    // The partial output exists on disk, but no build vouches for it.
    let a = env.ok([
        "admit",
        s(&repo.dir.join("dist/app")),
        "--source-pin",
        &repo.pin(),
        "--json",
    ]);
    assert!(a.json()["admission"]["build"].is_null());

    let r = build(&env, &repo, &["--output", "dist/never", "--", "true"]);
    assert_failed_with_logs(&env, &r, "dist/never was not produced");
    let r = build(
        &env,
        &repo,
        &["--output", "dist/app", "--", "no-such-compiler", "--flag"],
    );
    assert_failed_with_logs(&env, &r, "command not found: no-such-compiler");
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn directory_and_outside_outputs_are_recorded() {
    let env = Env::new();
    let outside = env.path("outside-artifact");
    let repo = generating_repo(
        &env,
        &format!(
            "mkdir -p dist/bundle\necho a > dist/bundle/a\necho b > {}",
            outside.display()
        ),
    );
    let r = build(
        &env,
        &repo,
        &[
            "--output",
            "dist/bundle",
            "--output",
            s(&outside),
            "--",
            "./build.sh",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let outs = r.json()["build"]["outputs"].clone();
    let bundle = outs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str().unwrap().ends_with("dist/bundle"))
        .unwrap();
    assert_eq!(bundle["kind"], "tree");
    let o = outs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == s(&outside))
        .unwrap();
    assert_eq!(o["inside_source"], false);
}

#[test]
fn an_output_given_as_dotdot_is_recorded_outside_and_a_check_never_writes_it() {
    let env = Env::new();
    // The clone's parent is the test's folder: `../x` from the clone is `<tmp>/x`.
    let repo = generating_repo(
        &env,
        "echo built-$(cat /proc/sys/kernel/random/uuid) > ../x\necho a > dist/a",
    );
    let r = build(
        &env,
        &repo,
        &[
            "--output",
            "../x",
            "--output",
            "dist/../dist/a",
            "--",
            "./build.sh",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = r.json();
    let outs = b["build"]["outputs"].as_array().unwrap();
    let x = outs
        .iter()
        .find(|o| o["path"] == s(&env.path("x")))
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(x["inside_source"], false, "{x}");
    assert_eq!(x["ignored"], false, "{x}");
    let a = outs
        .iter()
        .find(|o| o["path"] == s(&repo.dir.join("dist/a")))
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(a["inside_source"], true, "{a}");

    let mine = fs::read(env.path("x")).unwrap();
    let id = b["build"]["id"].as_str().unwrap();
    let r = env.run(["build", "--check", id, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let c = r.json();
    assert_eq!(c["build"]["check"]["result"], "reproduces", "{c}");
    let checked: Vec<(String, String)> = c["build"]["check"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["path"].as_str().unwrap().to_string(),
                o["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        checked.contains(&(s(&env.path("x")).to_string(), "not_checked".to_string())),
        "{checked:?}"
    );
    assert!(
        checked.contains(&("dist/a".to_string(), "same".to_string())),
        "{checked:?}"
    );
    assert_eq!(
        fs::read(env.path("x")).unwrap(),
        mine,
        "the check's rebuild overwrote ../x outside the clone"
    );

    // With the outside output gone there is nothing to cover it with: refused, unrun.
    fs::remove_file(env.path("x")).unwrap();
    let r = env.run(["build", "--check", id]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("which is not there now"), "{}", r.stderr);
    assert!(!env.path("x").exists(), "the refused check wrote ../x");
}

#[test]
fn build_outside_a_clone_is_bad_input() {
    let env = Env::new();
    let plain = env.path("plain");
    fs::create_dir_all(&plain).unwrap();
    let mut c = env.cmd(["build", "--output", "x", "--", "true"]);
    let out = c.current_dir(&plain).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a git clone"));
    let r = env.run(["build", "--check", "bld_0000"]);
    assert_eq!(r.code, 2);
}

#[test]
fn interrupted_build_is_recorded_and_its_process_group_killed() {
    let env = Env::new();
    let repo = generating_repo(&env, "sleep 30 & echo $! > dist/sleeper.pid\nwait");
    let mut c = env.cmd([
        "build",
        "--json",
        "--output",
        "dist/app",
        "--",
        "./build.sh",
    ]);
    let child = c
        .current_dir(&repo.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = repo.dir.join("dist/sleeper.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::read_to_string(&pid_file)
        .map(|s| s.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sleeper: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(child.id(), rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["build"]["status"], "interrupted");
    let stat = fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
        "the build's child survived: {stat}"
    );
    assert_eq!(env.run(["audit"]).code, 0);
}
