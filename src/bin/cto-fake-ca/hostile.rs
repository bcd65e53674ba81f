//! Providers that go after their own judge, for the harness's self-check and its tests.
//! None of them solves the task (except where said): a harness that judges right fails
//! them all.
//!
//! - `shadow`: writes `unittest.py` (prints a passing run, exits 0) and `sitecustomize.py`
//! - `shadow-package`: writes a package `test_strings/` (claiming the fixture's test
//!   file as its `__file__`) whose tests all pass, so the fixture's would never run
//! - `edit-test`: rewrites the fixture's test file as one empty test
//! - `no-tests`: rewrites the fixture's test file as none at all, whose import writes one
//!   byte that is not UTF-8
//! - `delete-test`: removes the fixture's test file
//! - `git-worktree`: solves, adds a file, then `git config core.worktree /` (to hide both)
//! - `gitdir`: solves, then replaces `.git` with `gitdir: <CTO_FAKE_CA_ESCAPE_GITDIR>`
//! - `fork-chain`: a chain of processes that each `setsid`, fork the next and exit; the
//!   last one beats a heart in `$HOME/fork-chain-heartbeat` forever
//! - `fifo`: solves, then leaves a FIFO in the workspace
//! - `swap-runner`: makes the fixture's test script (`run-tests.sh`) a link to
//!   `CTO_FAKE_CA_ESCAPE_RUNNER` (default `/bin/true`)
//! - `path-shadow`: leaves executables `sh` and `python3` in its workspace that print a
//!   passing run and exit 0 (found first by a command run there with `.` or an empty
//!   entry on its PATH), and a `GNUmakefile` whose `test` passes (read by make before a
//!   `Makefile`)
//! - `pytest-config`: leaves a `pytest.ini` whose `addopts` only collect the tests (pytest
//!   then exits 0 having run none) and adds the same to a `pyproject.toml`
//! - `odd-names`: solves, then leaves two names that differ only in a byte that is not
//!   UTF-8, and files under `.git` folders of its own (`home/.git`, `sub/.git`)
//! - `python-version`: solves, then leaves a `.python-version` naming an interpreter of
//!   its choosing (a version manager's shim reads it where the tests run)
//! - `deep`: solves, then nests 2,000 folders in its workspace and home
//! - `model-flood`: sends its model server 24 requests of 1 MiB
//! - `long-path`: makes, under its Case data folder, a file at a path longer than
//!   PATH_MAX (which no walk by path reaches), then waits
//! - `flood`: prints 50 MB to stdout and 1 MB to stderr
//! - `fill`: writes files into its workspace until it is stopped, one in a folder it
//!   leaves unwritable

use std::env;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use super::{die, global_pid, note_pid, sleep_forever, solve};

/// The fixture's test file (the built-in fixture's).
const TEST_FILE: &str = "test_strings.py";

pub(crate) fn behave(behavior: &str, repo: &Path) -> bool {
    match behavior {
        "shadow" => shadow(repo),
        "pytest-config" => pytest_config(repo),
        "path-shadow" => path_shadow(repo),
        "shadow-package" => shadow_package(repo),
        "edit-test" => write(
            &repo.join(TEST_FILE),
            "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_nothing(self):\n        pass\n",
        ),
        "no-tests" => write(
            &repo.join(TEST_FILE),
            "import sys\nsys.stderr.buffer.write(b'\\xff\\n')\n",
        ),
        "delete-test" => {
            fs::remove_file(repo.join(TEST_FILE)).unwrap_or_else(|e| die(&format!("cannot remove the test: {e}")));
        }
        "git-worktree" => {
            solve(repo);
            write(&repo.join("added-by-provider.txt"), "hidden?\n");
            git(repo, &["config", "core.worktree", "/"]);
        }
        "gitdir" => {
            solve(repo);
            let target = env::var("CTO_FAKE_CA_ESCAPE_GITDIR").unwrap_or_else(|_| "/".into());
            let dot_git = repo.join(".git");
            fs::remove_dir_all(&dot_git).unwrap_or_else(|e| die(&format!("cannot remove .git: {e}")));
            write(&dot_git, &format!("gitdir: {target}\n"));
        }
        "fork-chain" => start_fork_chain(),
        "fifo" => {
            solve(repo);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                repo.join("p"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap_or_else(|e| die(&format!("cannot make a FIFO: {e}")));
        }
        "swap-runner" => {
            let target = env::var("CTO_FAKE_CA_ESCAPE_RUNNER").unwrap_or_else(|_| "/bin/true".into());
            let p = repo.join("run-tests.sh");
            let _ = fs::remove_file(&p);
            std::os::unix::fs::symlink(&target, &p)
                .unwrap_or_else(|e| die(&format!("cannot link run-tests.sh: {e}")));
        }
        "odd-names" => {
            solve(repo);
            use std::os::unix::ffi::OsStrExt;
            for (name, body) in [(&b"x\xff"[..], "a"), (b"x\xfe", "b")] {
                write(&repo.join(std::ffi::OsStr::from_bytes(name)), body);
            }
            for dir in [repo.join("sub/.git"), Path::new(&env::var_os("HOME").unwrap_or_default()).join(".git")] {
                fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("cannot make {}: {e}", dir.display())));
                write(&dir.join("kept.txt"), "evidence\n");
            }
        }
        "python-version" => {
            solve(repo);
            write(&repo.join(".python-version"), "provider-chosen\n");
            // asdf reads HOME's: a version manager's choice the provider could make there.
            let home = env::var_os("HOME").unwrap_or_default();
            write(&Path::new(&home).join(".tool-versions"), "python provider-chosen\n");
        }
        "model-flood" => super::agent::flood_model(),
        "long-path" => long_path(),
        "deep" => {
            solve(repo);
            let home = env::var_os("HOME").unwrap_or_default();
            for root in [repo.to_path_buf(), Path::new(&home).to_path_buf()] {
                let mut p = root.join("d");
                for _ in 1..2000 {
                    p.push("d");
                }
                fs::create_dir_all(&p).unwrap_or_else(|e| die(&format!("cannot nest folders: {e}")));
            }
        }
        "flood" => flood(),
        "fill" => fill(repo),
        _ => return false,
    }
    true
}

fn write(p: &Path, text: &str) {
    fs::write(p, text).unwrap_or_else(|e| die(&format!("cannot write {}: {e}", p.display())));
}

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        die(&format!("git {} failed", args.join(" ")));
    }
}

/// A pytest configuration that only collects the tests, in both files pytest reads.
fn pytest_config(repo: &Path) {
    let only_collect = "addopts = \"--collect-only -q\"\n";
    write(
        &repo.join("pytest.ini"),
        &format!("[pytest]\n{only_collect}"),
    );
    write(
        &repo.join("pyproject.toml"),
        &format!("[project]\nname = \"strings\"\n\n[tool.pytest.ini_options]\n{only_collect}"),
    );
}

/// Programs a command run in the workspace would find first with `.` or an empty PATH
/// entry, and a makefile make reads before `Makefile`.
fn path_shadow(repo: &Path) {
    write(
        &repo.join("GNUmakefile"),
        "test:\n\t@echo 'Ran 3 tests in 0.001s' >&2; echo OK >&2\n",
    );
    for name in ["sh", "python3"] {
        let p = repo.join(name);
        write(
            &p,
            "#!/bin/sh\necho 'Ran 3 tests in 0.001s' >&2\necho OK >&2\nexit 0\n",
        );
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| die(&format!("cannot make {} executable: {e}", p.display())));
    }
}

/// A `unittest` that reports a pass without running anything, and start-up code.
fn shadow(repo: &Path) {
    write(
        &repo.join("unittest.py"),
        "import sys\nprint('test_slugify (test_strings.T) ... ok', file=sys.stderr)\nprint('\\n----------------------------------------------------------------------\\nRan 3 tests in 0.001s\\n\\nOK', file=sys.stderr)\nsys.exit(0)\n",
    );
    write(
        &repo.join("sitecustomize.py"),
        "import os\nos.environ['SHADOWED'] = '1'\n",
    );
}

fn long_path() -> ! {
    let data = env::var_os("CASE_DATA_DIR").unwrap_or_else(|| die("CASE_DATA_DIR is not set"));
    std::env::set_current_dir(&data)
        .unwrap_or_else(|e| die(&format!("cannot enter the Case data folder: {e}")));
    let name = "n".repeat(250);
    for _ in 0..20 {
        fs::create_dir(&name).unwrap_or_else(|e| die(&format!("cannot make a folder: {e}")));
        std::env::set_current_dir(&name)
            .unwrap_or_else(|e| die(&format!("cannot enter a folder: {e}")));
    }
    write(Path::new("hidden.bin"), &"h".repeat(1 << 20));
    sleep_forever()
}

/// A package named as the fixture's test module, found before it by Python's finder.
fn shadow_package(repo: &Path) {
    let dir = repo.join("test_strings");
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| die(&format!("cannot make {}: {e}", dir.display())));
    write(
        &dir.join("__init__.py"),
        "import os, unittest\n__file__ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'test_strings.py')\n\n\nclass SlugifyTest(unittest.TestCase):\n    def test_ascii_words(self):\n        pass\n\n    def test_digits_are_kept(self):\n        pass\n",
    );
}

/// Each link `setsid`s, starts the next and exits at once; the last one never ends.
pub(crate) fn fork_chain(left: u32) {
    note_pid(global_pid());
    let _ = rustix::process::setsid();
    if left == 0 {
        let beat = env::var_os("HOME").map(|h| Path::new(&h).join("fork-chain-heartbeat"));
        loop {
            if let Some(b) = &beat {
                let _ = fs::write(
                    b,
                    format!("{} {:?}\n", global_pid(), std::time::SystemTime::now()),
                );
            }
            sleep(Duration::from_millis(100));
        }
    }
    let me = env::current_exe().unwrap_or_else(|e| die(&format!("cannot find myself: {e}")));
    let _ = Command::new(me)
        .arg("--fork-chain")
        .arg((left - 1).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// The chain's first link, from the provider itself: it gives the chain time to reach
/// its end (and beat) before the provider exits, as a real daemon would.
fn start_fork_chain() {
    let me = env::current_exe().unwrap_or_else(|e| die(&format!("cannot find myself: {e}")));
    let _ = Command::new(me)
        .args(["--fork-chain", "12"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    sleep(Duration::from_millis(800));
}

fn flood() {
    let line = [b'x'; 1023];
    let mut out = std::io::stdout().lock();
    for _ in 0..(50 << 10) {
        let _ = out.write_all(&line);
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    for _ in 0..(1 << 10) {
        let _ = err.write_all(&line);
        let _ = err.write_all(b"\n");
    }
}

/// Writes 1 MiB files into the workspace until it is stopped.
fn fill(repo: &Path) -> ! {
    use std::os::unix::fs::PermissionsExt;
    let block = vec![b'f'; 1 << 20];
    // One folder it leaves unwritable, which the harness must still be able to clear.
    let locked = repo.join("locked");
    fs::create_dir_all(&locked)
        .unwrap_or_else(|e| die(&format!("cannot make {}: {e}", locked.display())));
    fs::write(locked.join("kept.bin"), &block)
        .unwrap_or_else(|e| die(&format!("cannot fill: {e}")));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o500))
        .unwrap_or_else(|e| die(&format!("cannot lock: {e}")));
    for i in 0.. {
        if fs::write(repo.join(format!("fill-{i}.bin")), &block).is_err() {
            break;
        }
    }
    sleep_forever()
}
