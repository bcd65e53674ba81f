//! Crash safety, many writers, full disks and objects that are not what they claim.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Names in `objects/` that are object files (not the temp folder).
fn object_files(ledger: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(ledger.join("objects")) else {
        return out;
    };
    for fan in rd.flatten().filter(|e| e.file_name() != "tmp") {
        for o in fs::read_dir(fan.path()).unwrap().flatten() {
            out.push(format!(
                "{}{}",
                fan.file_name().to_string_lossy(),
                o.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

fn tmp_files(ledger: &Path) -> usize {
    fs::read_dir(ledger.join("objects/tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn disk_full_fails_clearly_changes_nothing_and_a_retry_succeeds() {
    let env = Env::new();
    env.ok(["init"]);
    let big = env.path("big.bin");
    fs::write(&big, vec![7u8; 300_000]).unwrap();
    let before = (env.head(), object_files(&env.ledger));
    let mut c = env.cmd(["ingest", s(&big)]);
    let out = c
        .env("CTO_LEDGER_TEST_DISK_FULL_AFTER", "1000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("big.bin") && stderr.contains("free disk space"),
        "{stderr}"
    );
    assert_eq!(
        (env.head(), object_files(&env.ledger)),
        before,
        "a failed write changed the ledger or store"
    );
    assert_eq!(
        tmp_files(&env.ledger),
        0,
        "the partial object was not cleaned up"
    );
    env.ok(["ingest", s(&big)]);
    assert_eq!(env.run(["audit"]).code, 0);
}

/// A real filesystem that fills up: a small tmpfs mounted by the test (needs root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
    fn resize(&self, size: &str) {
        assert!(Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), s(&self.0)])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_filesystem_fails_clearly_and_a_retry_after_freeing_space_succeeds() {
    let env = Env::new();
    let Some(fs_) = Tmpfs::mount(&env.path("small-disk"), "1m") else {
        eprintln!(
            "skipped: cannot mount a tmpfs here (not root?); the injected variant still runs"
        );
        return;
    };
    let ledger = fs_.0.join("ledger");
    let run = |args: &[&str]| {
        let out = env
            .cmd(args)
            .env("CTO_LEDGER_DIR", &ledger)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["init"]).0, 0);
    let before = run(&["checkpoint"]).1;
    let big = env.path("big.bin");
    fs::write(
        &big,
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761u32) >> 24) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (code, _, stderr) = run(&["ingest", s(&big)]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(run(&["checkpoint"]).1, before);
    assert_eq!(tmp_files(&ledger), 0);
    fs_.resize("16m");
    let (code, _, stderr) = run(&["ingest", s(&big)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run(&["audit"]).0, 0);
}

/// Fills the filesystem at `dir` to its last byte (a file that grows until ENOSPC).
fn fill(dir: &Path) -> PathBuf {
    let f = dir.join("filler");
    let mut out = fs::File::create(&f).unwrap();
    let block = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut out, &block).is_ok() {}
    // Whatever is left is smaller than a block: take it byte by byte.
    while std::io::Write::write_all(&mut out, &[0]).is_ok() {}
    f
}

#[test]
fn on_a_full_disk_reads_still_work_and_writes_fail_with_exit_4_naming_the_disk() {
    let mut env = Env::new();
    let Some(disk) = Tmpfs::mount(&env.path("full-disk"), "48m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    };
    env.ledger = disk.0.join("ledger");
    env.ok(["key", "generate"]);
    let f = env.path("a.txt");
    fs::write(&f, "a\n").unwrap();
    env.ok(["ingest", s(&f)]);
    env.ok(["run", "stage2"]);
    let events = env.head().0;
    let filler = fill(&disk.0);

    // Read-only commands: SQLite needs the `-shm` file every writer now leaves behind.
    for args in [
        &["log"][..],
        &["audit"],
        &["show", s(&f)],
        &["checkpoint"],
        &["runs"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 0, "{args:?} on a full disk: {}", r.stderr);
    }
    let mount = disk.0.display().to_string();
    let g = env.path("b.txt");
    fs::write(&g, "b\n").unwrap();
    for args in [
        &["ingest", s(&g)][..],
        &["checkpoint", "--sign"],
        &["admit", "--model", "x/y"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 4, "{args:?} on a full disk: {}", r.stderr);
        assert!(
            r.stderr.contains("no space: the disk holding")
                && r.stderr.contains(&format!("mounted at {mount}")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("usage or bad input"), "{}", r.stderr);
    }
    // A Stage 2 run may or may not get its record in before the disk says no; what it
    // says must be true either way.
    let r = env.run(["run", "stage2"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("nothing was committed"), "{}", r.stderr);
    let now = env.head().0;
    assert_eq!(
        now > events,
        r.stderr.contains("was still recorded, as event"),
        "{}",
        r.stderr
    );
    let audit = env.run(["audit"]);
    assert!(audit.code <= 1, "{}{}", audit.stdout, audit.stderr);
    assert!(
        !audit.stdout.contains("corrupt") && !audit.stdout.contains("chain"),
        "{}",
        audit.stdout
    );

    fs::remove_file(filler).unwrap();
    env.ok(["ingest", s(&g)]);
    env.ok(["checkpoint", "--sign"]);
    // The run the full disk stopped is left for `recover`, then the ledger is whole.
    env.run(["recover"]);
    assert!(env.ok(["audit"]).stdout.contains("audit passed"));
}

/// A Stage 2 run killed after its gates hashed the offered provider, before anything was
/// recorded, leaves nothing that vouches for bytes the store may not hold: a later
/// `ingest` of the provider's folder stores the provider, and the tree restores whole.
#[test]
fn a_killed_runs_offered_provider_is_stored_by_a_later_ingest() {
    let env = Env::new();
    let dir = env.path("offered");
    fs::create_dir_all(&dir).unwrap();
    let prov = dir.join("prov");
    fs::write(&prov, "#!/bin/sh\necho not admitted\n").unwrap();
    fs::set_permissions(&prov, fs::Permissions::from_mode(0o755)).unwrap();
    // Old enough for a digest cache to trust it (2 s), as a built provider would be.
    std::thread::sleep(Duration::from_millis(2100));
    let mut c = env.cmd(["run", "stage2", "--provider", s(&prov)]);
    c.env("CTO_LEDGER_TEST_CRASH_AT", "run-blocked");
    assert_eq!(c.output().unwrap().status.code(), None, "killed");
    let tree = env.ok(["ingest", s(&dir), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let back = env.path("back");
    env.ok(["restore", &tree, s(&back)]);
    assert_eq!(
        fs::read(back.join("prov")).unwrap(),
        fs::read(&prov).unwrap()
    );
    env.ok(["recover"]);
    env.ok(["audit"]);
}

#[test]
fn eight_writers_at_once_keep_one_unbroken_chain() {
    let env = Env::new();
    env.ok(["init"]);
    let per_writer: usize = std::env::var("CTO_LEDGER_WRITER_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let start = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let dir = env.path(&format!("writer{w}"));
            fs::create_dir_all(&dir).unwrap();
            let cmds: Vec<Command> = (0..per_writer)
                .map(|i| {
                    let mut c = if i % 2 == 0 {
                        let f = dir.join(format!("f{i}"));
                        fs::write(&f, format!("writer {w} op {i}")).unwrap();
                        env.cmd(["ingest", s(&f)])
                    } else {
                        env.cmd(["admit", "--model", &format!("writer{w}/model-{i}")])
                    };
                    c.stdout(Stdio::null()).stderr(Stdio::piped());
                    c
                })
                .collect();
            std::thread::spawn(move || {
                let mut ok = 0;
                let mut locked = 0;
                for mut c in cmds {
                    let out = c.output().unwrap();
                    if out.status.success() {
                        ok += 1;
                    }
                    if String::from_utf8_lossy(&out.stderr).contains("locked") {
                        locked += 1;
                    }
                }
                (ok, locked)
            })
        })
        .collect();
    let (mut ok, mut locked) = (0, 0);
    for t in writers {
        let (o, l) = t.join().unwrap();
        ok += o;
        locked += l;
    }
    eprintln!(
        "8 writers x {per_writer} operations: {ok} succeeded, {locked} saw a lock, {:?}",
        start.elapsed()
    );
    assert_eq!(locked, 0);
    assert_eq!(ok, 8 * per_writer);
    let events = env.ok(["log", "--json"]).json();
    assert_eq!(
        events.as_array().unwrap().len(),
        1 + ok,
        "one init event plus one per operation"
    );
    assert_eq!(env.run(["audit"]).code, 0);
}

/// xorshift64*: a seeded schedule, so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One of the writing commands, picked by the schedule.
fn random_command(rng: &mut Rng, i: usize, tree: &Path, repo: &Repo) -> Vec<String> {
    match rng.below(5) {
        0 => vec!["ingest".into(), s(tree).into()],
        1 => vec![
            "admit".into(),
            s(&repo.bin()).into(),
            "--source-pin".into(),
            repo.pin(),
        ],
        2 => vec![
            "run".into(),
            "stage2".into(),
            "--fake-behavior".into(),
            if rng.below(2) == 0 {
                "solve"
            } else {
                "hang-grandchild"
            }
            .into(),
            "--timeout".into(),
            "3".into(),
        ],
        3 => vec![
            "build".into(),
            "--source".into(),
            s(&repo.dir).into(),
            "--output".into(),
            "dist/ca".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            "sleep 0.1; date > dist/ca".into(),
        ],
        _ => vec!["admit".into(), "--model".into(), format!("p/m{i}")],
    }
}

#[test]
fn killed_at_random_moments_loses_nothing_committed() {
    let seed: u64 = std::env::var("CTO_LEDGER_STRESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe);
    let kills: usize = std::env::var("CTO_LEDGER_STRESS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut rng = Rng(seed);
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["init"]);
    // A tree big enough that ingest takes a while.
    let tree = env.path("tree");
    for d in 0..20 {
        fs::create_dir_all(tree.join(format!("pkg{d}"))).unwrap();
        for f in 0..40 {
            fs::write(
                tree.join(format!("pkg{d}/file{f}.js")),
                format!("module.exports = {d} * {f};\n").repeat(50),
            )
            .unwrap();
        }
    }
    let (mut made, mut audits, mut completed) = (0, 0, 0);
    let mut committed_heads = Vec::new();
    for i in 0..kills {
        // Change the tree a little so every ingest writes new objects.
        fs::write(
            tree.join(format!("pkg{}/changed.js", i % 20)),
            format!("// {i}\n"),
        )
        .unwrap();
        let args = random_command(&mut rng, i, &tree, &repo);
        let mut child = env
            .cmd(&args)
            .current_dir(&repo.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        match child.try_wait().unwrap() {
            Some(_) => completed += 1,
            None => {
                child.kill().unwrap();
                made += 1;
            }
        }
        child.wait().unwrap();
        committed_heads.push(env.ok(["checkpoint"]).stdout.trim().to_string());
        if i % 6 == 5 {
            env.ok(["recover"]);
            let r = env.run(["audit", "--json"]);
            assert_eq!(
                r.code, 0,
                "audit failed after kill {i} (seed {seed}): {}",
                r.stdout
            );
            audits += 1;
        }
    }
    env.ok(["recover"]);
    // Every head ever observed is still part of the history (nothing committed was lost).
    for cp in &committed_heads {
        let r = env.run(["audit", "--checkpoint", cp]);
        assert_eq!(
            r.code, 0,
            "checkpoint {cp} no longer holds (seed {seed}): {}",
            r.stdout
        );
    }
    audits += committed_heads.len();
    // Every run folder has a report.json.
    for d in fs::read_dir(env.ledger.join("runs"))
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        assert!(
            d.path().join("report.json").exists(),
            "{} has no report.json",
            d.path().display()
        );
    }
    eprintln!(
        "stress (seed {seed:#x}): {made} kills, {completed} finished first, {audits} audits passed"
    );
}

#[test]
fn a_symlink_in_place_of_the_object_store_is_refused() {
    let env = Env::new();
    env.ok(["init"]);
    let elsewhere = env.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::remove_dir_all(env.ledger.join("objects")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.ledger.join("objects")).unwrap();
    let f = env.path("f");
    fs::write(&f, "x").unwrap();
    let r = env.run(["ingest", s(&f)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("objects") && r.stderr.contains("symlink"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was written through the link"
    );
}

#[test]
fn a_writable_object_is_reported() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "x").unwrap();
    let id = env.ok(["ingest", s(&f), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = id.strip_prefix("blake3:").unwrap();
    fs::set_permissions(
        stored(&env.ledger, hex).file,
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let r = env.run(["audit"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("writable"), "{}", r.stdout);
}

#[test]
fn temp_files_left_by_killed_commands_are_never_objects_and_recover_removes_old_ones() {
    let env = Env::new();
    env.ok(["init"]);
    let fresh = env.ledger.join("objects/ab/.obj-left-by-a-kill");
    let old = env.ledger.join("objects/tmp/.obj-older");
    for p in [&fresh, &old] {
        fs::write(p, b"half an object").unwrap();
    }
    let hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hours_ago)
        .unwrap();
    let r = env.run(["audit", "--json"]);
    assert_eq!(r.code, 0, "temp files are not findings: {}", r.stdout);
    assert!(
        r.json()["notes"].to_string().contains("2 temporary file"),
        "{}",
        r.stdout
    );
    // Any writing command removes old temps from objects/tmp; `recover` also sweeps the fan-out folders.
    let old_in_fan = env.ledger.join("objects/cd/.obj-also-old");
    fs::write(&old_in_fan, b"x").unwrap();
    fs::File::options()
        .write(true)
        .open(&old_in_fan)
        .unwrap()
        .set_modified(hours_ago)
        .unwrap();
    assert_eq!(env.ok(["recover", "--json"]).json()["removed_temps"], 1);
    assert!(!old_in_fan.exists());
    assert!(
        !old.exists() && fresh.exists(),
        "only temps untouched for an hour are removed"
    );
}

/// A file another command renamed into place but never synced (it was killed first) is
/// not durable because it is there: a command that relies on it instead of storing its
/// own copy flushes it before its commit names it.
#[test]
fn an_object_a_killed_command_left_unsynced_is_flushed_by_the_next_that_relies_on_it() {
    let mut env = Env::new();
    env.ok(["init"]);
    let tree = env.path("tree");
    fs::create_dir_all(&tree).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    fs::write(tree.join("big.bin"), &big).unwrap();
    env.vars
        .push(("CTO_LEDGER_TEST_POWER_CUT".into(), "1".into()));
    let mut c = env.cmd(["ingest", s(&tree)]);
    c.env("CTO_LEDGER_TEST_SYNC_DELAY_MS", "20000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut killed = c.spawn().unwrap();
    let loose = || {
        object_files(&env.ledger)
            .iter()
            .any(|f| !f.starts_with("packs"))
    };
    let t0 = Instant::now();
    while !loose() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(loose(), "the ingest stored its object");
    killed.kill().unwrap();
    killed.wait().unwrap();
    env.ok(["ingest", s(&tree)]);
    env.vars.clear();
    let audit = env.run(["audit", "--json"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
}

/// A power cut right after each journal commit loses every object written but not yet
/// synced (`CTO_LEDGER_TEST_POWER_CUT`). Every command that stores objects and commits
/// must sync first, so nothing the journal names is ever lost: a scripted model's
/// admission (its script), a first run's admission of the shipped fake and the run's
/// evidence, two runs at once, an ingest (packed and loose objects), a clone and an
/// admission.
#[test]
fn a_power_cut_after_any_commit_loses_no_object_the_journal_names() {
    let mut env = Env::new();
    env.vars
        .push(("CTO_LEDGER_TEST_POWER_CUT".into(), "1".into()));
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    env.ok(["run", "stage2"]);
    // Two processes storing and relying on each other's packs at once.
    env.ok(["run", "stage2", "--repeat", "2", "--jobs", "2"]);
    let tree = env.path("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/new.txt"), "never stored before\n").unwrap();
    // Past the pack size: a loose object file of its own.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(tree.join("sub/big.bin"), big).unwrap();
    env.ok(["ingest", s(&tree)]);
    let repo = env.repo("prov");
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    env.vars.clear();
    let audit = env.run(["audit", "--json"]);
    assert_eq!(
        audit.code, 0,
        "the journal names objects a power cut lost:\n{}",
        audit.stdout
    );
}
