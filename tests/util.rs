use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cto-ledger");
pub(crate) const FAKE: &str = env!("CARGO_BIN_EXE_cto-fake-ca");

pub(crate) struct Env {
    pub tmp: tempfile::TempDir,
    pub ledger: PathBuf,
    /// Extra environment for every command (e.g. S3 credentials).
    pub vars: Vec<(String, String)>,
    /// Run every command as `nobody` (see [`Env::unprivileged`]).
    nobody: bool,
}

/// Whether the tests run as root (CI does).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `sha256:<hex>` of the file at `p`, as the ledger records digests.
pub(crate) fn sha256_of_file(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// Writes `bytes` to the file at `p` and puts its mtime back as it was: only its ctime
/// (and its bytes) tell the change.
pub(crate) fn rewrite_keeping_mtime(p: &Path, bytes: impl AsRef<[u8]>) {
    let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
    std::fs::write(p, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), mtime);
}

/// Runs `c` with room for 100 KB of new objects (`CTO_LEDGER_TEST_DISK_FULL_AFTER`): a
/// disk that would not hold a file of a few megabytes.
pub(crate) fn on_a_tight_disk(mut c: Command) -> Run {
    c.env("CTO_LEDGER_TEST_DISK_FULL_AFTER", "100000");
    finish(c.output().unwrap())
}

pub(crate) fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Env {
    pub(crate) fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("cto-ledger-test-")
            .tempdir()
            .unwrap();
        let ledger = tmp.path().join("ledger");
        Env {
            tmp,
            ledger,
            vars: Vec::new(),
            nobody: false,
        }
    }

    /// From now on every command runs as an ordinary user: as root (CI), the test's
    /// folder is given to `nobody` (uid 65534) and commands run under `setpriv`; as
    /// anyone else, nothing changes. A permission test then means the same everywhere.
    pub(crate) fn unprivileged(&mut self) {
        if !is_root() {
            return;
        }
        let st = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(self.tmp.path())
            .status()
            .unwrap();
        assert!(st.success(), "chown -R 65534 failed");
        self.nobody = true;
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(crate) fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = if self.nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("USER", "tester")
            .env("CTO_LEDGER_DIR", &self.ledger)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(self.tmp.path());
        c
    }

    pub(crate) fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        finish(self.cmd(args).output().unwrap())
    }

    /// Runs and requires exit 0.
    pub(crate) fn ok<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let r = self.run(&args);
        assert_eq!(
            r.code, 0,
            "cto-ledger {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r
    }

    /// (seq, hash) of the journal head.
    pub(crate) fn head(&self) -> (u64, String) {
        let v = self.ok(["checkpoint", "--json"]).json();
        (
            v["seq"].as_u64().unwrap(),
            v["hash"].as_str().unwrap().to_string(),
        )
    }

    pub(crate) fn last_kind(&self) -> String {
        let v = self.ok(["log", "--json"]).json();
        v.as_array().unwrap().last().unwrap()["kind"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(crate) fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.ledger.join("ledger.db")).unwrap()
    }

    /// What someone with write access to the database could do: change event `seq`
    /// (`from` replaced by `to`) and re-chain the journal after it, so the hash chain is
    /// consistent again and only a signed checkpoint can tell.
    pub(crate) fn rewrite_event(&self, seq: i64, from: &str, to: &str) {
        let db = self.db();
        let rows: Vec<(i64, String)> = db
            .prepare("SELECT seq, event FROM journal ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        db.execute_batch("DROP TRIGGER IF EXISTS journal_is_append_only_update")
            .unwrap();
        let mut prev = "0".repeat(64);
        for (n, event) in rows {
            let event = if n == seq {
                assert!(event.contains(from), "event {n} has no {from}: {event}");
                event.replace(from, to)
            } else {
                event
            };
            let mut h = <sha2::Sha256 as sha2::Digest>::new();
            sha2::Digest::update(&mut h, hex::decode(&prev).unwrap());
            sha2::Digest::update(&mut h, event.as_bytes());
            let hash = hex::encode(sha2::Digest::finalize(h));
            db.execute(
                "UPDATE journal SET event = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                rusqlite::params![n, event, prev, hash],
            )
            .unwrap();
            prev = hash;
        }
    }

    /// The built-in fixture copied to a directory of the test's own.
    pub(crate) fn copy_of_builtin_fixture(&self, name: &str) -> PathBuf {
        let fx = self.path(name);
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/r1-string-slugify");
        for e in walkdir::WalkDir::new(&base) {
            let e = e.unwrap();
            let dest = fx.join(e.path().strip_prefix(&base).unwrap());
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
            } else {
                std::fs::copy(e.path(), &dest).unwrap();
            }
        }
        fx
    }

    /// A git repository with one commit: `gen.ts` tracked, `dist/` ignored, and a
    /// "built" `dist/ca`. Returns its path.
    pub(crate) fn repo(&self, name: &str) -> Repo {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("dist")).unwrap();
        let r = Repo { dir };
        r.git(&["init", "-q"]);
        std::fs::write(r.dir.join("gen.ts"), "export const assets = 1;\n").unwrap();
        std::fs::write(r.dir.join("README"), "readme\n").unwrap();
        std::fs::write(r.dir.join(".gitignore"), "dist/\n").unwrap();
        r.git(&["add", "."]);
        r.git(&["commit", "-qm", "initial"]);
        std::fs::write(r.dir.join("dist/ca"), b"#!/bin/sh\necho built\n").unwrap();
        r
    }
}

impl Env {
    /// `build --output dist/ca -- sh -c SCRIPT` run in the repo: the command's output.
    pub(crate) fn build_in(&self, repo: &Repo, script: &str) -> std::process::Output {
        let mut c = self.cmd(["build", "--output", "dist/ca", "--", "sh", "-c", script]);
        c.current_dir(&repo.dir).output().unwrap()
    }

    /// The in-toto statements `attest REF` signs, decoded from their DSSE envelopes.
    pub(crate) fn attested(&self, r: &str) -> Vec<Value> {
        use base64::Engine as _;
        let file = self.path("attested.intoto.jsonl");
        self.ok(["attest", r, "-o", s(&file)]);
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(e["payload"].as_str().unwrap())
                    .unwrap();
                serde_json::from_slice(&raw).unwrap()
            })
            .collect()
    }

    /// `admit` of the repo's `dist/ca` at its head, as JSON.
    pub(crate) fn admit_repo(&self, repo: &Repo) -> Value {
        self.ok([
            "admit",
            s(&repo.bin()),
            "--source-pin",
            &repo.pin(),
            "--json",
        ])
        .json()
    }

    /// `run stage2 --json` of `provider` as an agent that solves through the scripted
    /// model (a provider that is not the shipped fake gets no answer key); its report.
    pub(crate) fn agent_run(&self, provider: &Path) -> Value {
        let mut c = self.cmd([
            "run",
            "stage2",
            "--provider-bin",
            s(provider),
            "--fake-behavior",
            "agent",
            "--json",
        ]);
        c.env("CTO_HARNESS_CASE_MODEL_PROVIDER", "scripted")
            .env("CTO_HARNESS_CASE_MODEL", "r1-string-slugify");
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

pub(crate) struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(crate) fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub(crate) fn pin(&self) -> String {
        self.head()[..7].to_string()
    }

    pub(crate) fn bin(&self) -> PathBuf {
        self.dir.join("dist/ca")
    }
}

impl Env {
    /// Appends a byte to (or, with `flip`, flips a byte of) the stored object of `file`.
    pub(crate) fn damage_stored_copy(&self, file: &Path, flip: bool) -> String {
        use std::os::unix::fs::PermissionsExt;
        let id = self.ok(["verify", s(file), "--json"]).json()["object"]
            .as_str()
            .unwrap()
            .to_string();
        let hex = id.strip_prefix("blake3:").unwrap();
        let at = stored(&self.ledger, hex);
        let mut bytes = std::fs::read(&at.file).unwrap();
        if flip {
            bytes[at.offset as usize + 3] ^= 0x20;
        } else {
            assert!(at.offset == 0, "a packed object cannot grow in place");
            bytes.push(b'!');
        }
        std::fs::set_permissions(&at.file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&at.file, bytes).unwrap();
        std::fs::set_permissions(&at.file, std::fs::Permissions::from_mode(0o444)).unwrap();
        id
    }
}

/// Regular files under `objects/` (loose objects, packs, temps).
pub(crate) fn store_files(ledger: &Path) -> usize {
    walkdir::WalkDir::new(ledger.join("objects"))
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count()
}

/// Where the store keeps an object's bytes: its own file, or a stretch of a pack.
pub(crate) struct Stored {
    pub(crate) file: PathBuf,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl Stored {
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let all = std::fs::read(&self.file).unwrap();
        all[self.offset as usize..(self.offset + self.len) as usize].to_vec()
    }
}

/// Finds object `hex` in the local store at `ledger`, reading pack indexes as documented
/// in docs/ledger.md (footer: index offset, count, magic; entries: id, offset, length).
pub(crate) fn stored(ledger: &Path, hex: &str) -> Stored {
    let loose = ledger.join("objects").join(&hex[..2]).join(&hex[2..]);
    if let Ok(m) = std::fs::metadata(&loose) {
        return Stored {
            file: loose,
            offset: 0,
            len: m.len(),
        };
    }
    let want: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for e in std::fs::read_dir(ledger.join("objects/packs")).unwrap() {
        let file = e.unwrap().path();
        let b = std::fs::read(&file).unwrap();
        let n = b.len();
        let le = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        assert_eq!(&b[n - 8..], b"CTOPACK1");
        let (index, count) = (le(n - 24) as usize, le(n - 16) as usize);
        for i in 0..count {
            let e = index + i * 48;
            if b[e..e + 32] == want[..] {
                return Stored {
                    file,
                    offset: le(e + 32),
                    len: le(e + 40),
                };
            }
        }
    }
    panic!("object {hex} is in no file of {}", ledger.display())
}

/// Sends a signal to a process (no `kill` binary needed on the machine).
pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid > 0"),
        sig,
    )
    .expect("signal sent");
}

/// Makes a FIFO at `p` (with the system's mkfifo).
pub(crate) fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A real S3-compatible server (`s3s-fs`, installed by `.ci/run`) on 127.0.0.1, serving
/// one bucket from a temp directory. Killed when dropped.
pub(crate) struct S3Server {
    pub root: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

pub(crate) const BUCKET: &str = "ledger-bucket";
pub(crate) const S3_KEY: &str = "test-access-key";
pub(crate) const S3_SECRET: &str = "test-secret-key-0123456789";

fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CTO_LEDGER_TEST_S3S_FS") {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("s3s-fs is not installed: the remote tests need a real S3-compatible server. \
                    Run `bash .ci/run` (it installs it), or `cargo install s3s-fs --version 0.14.1 --features binary --locked`")
        })
}

impl S3Server {
    pub(crate) fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("cto-ledger-s3-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = S3Server {
            root,
            port,
            child: None,
        };
        s.restart();
        s
    }

    /// Starts (again) on the same port and directory.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.root.path().join("s3s-fs.log"))
            .unwrap();
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s3s-fs did not start on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps `key` of the bucket on disk.
    pub(crate) fn file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// An Env whose commands carry the server's credentials, with remote `origin` added.
    pub(crate) fn host(&self, prefix: &str) -> Env {
        self.host_with(prefix, S3_KEY, S3_SECRET)
    }

    /// As `host`, with the credentials given.
    pub(crate) fn host_with(&self, prefix: &str, key: &str, secret: &str) -> Env {
        let mut env = Env::new();
        env.vars.push(("AWS_ACCESS_KEY_ID".into(), key.into()));
        env.vars
            .push(("AWS_SECRET_ACCESS_KEY".into(), secret.into()));
        env.ok([
            "remote",
            "add",
            "origin",
            &format!("s3://{BUCKET}/{prefix}"),
            "--endpoint",
            &self.endpoint(),
        ]);
        env
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Panics listing every way `doc` does not follow the JSON Schema `schema` (its text).
pub(crate) fn assert_follows_schema(schema: &str, doc: &Value) {
    let schema: Value = serde_json::from_str(schema).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not follow {}:\n{}\n{doc:#}",
        doc.get("schema")
            .or(doc.get("kind"))
            .unwrap_or(&Value::Null),
        schema["$id"],
        errors.join("\n")
    );
}
