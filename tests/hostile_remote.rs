//! A remote written by an attacker: entries forged straight into the s3s-fs bucket,
//! chained correctly (the attacker can compute hashes; only signatures are out of
//! reach), objects that lie about their size or kind, keys too large to hold, and a
//! server that trickles. Each must be refused before it counts, with exit 3 naming the
//! key, and leave the puller's ledger as it was.

use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::Digest as _;

use crate::util::{s, Env, S3Server};

/// Writes straight into the bucket under one prefix, as someone with write access to
/// it (and none to any host's signing key) can.
struct Forger<'a> {
    server: &'a S3Server,
    prefix: &'static str,
}

impl Forger<'_> {
    fn file(&self, key: &str) -> PathBuf {
        self.server.file(&format!("{}/{key}", self.prefix))
    }

    fn key(seq: u64) -> String {
        format!("journal/{seq:020}")
    }

    /// The last entry: its seq and hash.
    fn last(&self) -> (u64, String) {
        let mut names: Vec<String> = std::fs::read_dir(self.file("journal"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let e: Value = serde_json::from_slice(
            &std::fs::read(self.file(&format!("journal/{}", names.last().unwrap()))).unwrap(),
        )
        .unwrap();
        (
            e["seq"].as_u64().unwrap(),
            e["hash"].as_str().unwrap().to_string(),
        )
    }

    /// The event of entry `seq`.
    fn event(&self, seq: u64) -> Value {
        let e: Value =
            serde_json::from_slice(&std::fs::read(self.file(&Self::key(seq))).unwrap()).unwrap();
        serde_json::from_str(e["event"].as_str().unwrap()).unwrap()
    }

    /// Appends `event` after the last entry, renumbered and chained as a real one is;
    /// returns its key.
    fn append(&self, mut event: Value) -> String {
        let (seq, prev) = self.last();
        event["seq"] = (seq + 1).into();
        let text = String::from_utf8(serde_jcs::to_vec(&event).unwrap()).unwrap();
        let mut h = sha2::Sha256::new();
        h.update(hex::decode(&prev).unwrap());
        h.update(text.as_bytes());
        let entry = json!({"event": text, "hash": hex::encode(h.finalize()), "prev_hash": prev, "seq": seq + 1});
        let key = Self::key(seq + 1);
        std::fs::write(self.file(&key), serde_jcs::to_vec(&entry).unwrap()).unwrap();
        key
    }

    /// Puts `bytes` where the object they hash to belongs; returns its record.
    fn object(&self, bytes: &[u8], kind: &str) -> Value {
        let hex = blake3::hash(bytes).to_hex().to_string();
        let path = self.file(&format!("objects/{}/{}", &hex[..2], &hex[2..]));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        json!({
            "id": format!("blake3:{hex}"),
            "kind": kind,
            "sha256": format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
            "size": bytes.len(),
        })
    }
}

/// A server, host A that ingested one file and pushed, and a forger of that remote.
fn pushed(server: &S3Server) -> (Env, Forger<'_>) {
    let a = server.host("t");
    let f = a.path("first.txt");
    std::fs::write(&f, "first\n").unwrap();
    a.ok(["ingest", s(&f)]);
    a.ok(["push"]);
    (
        a,
        Forger {
            server,
            prefix: "t",
        },
    )
}

/// Host B, which pulled everything honest there was; the forger writes after that.
fn puller(server: &S3Server) -> Env {
    let b = server.host("t");
    b.ok(["pull"]);
    b
}

/// An ingest event naming `items` with `objects` recorded, in the form host A writes.
fn ingest(forger: &Forger, items: Value, objects: Value) -> Value {
    let mut e = forger.event(1);
    assert_eq!(e["kind"], "ingest", "{e}");
    e["items"] = items;
    e["objects"] = objects;
    e
}

/// The pull was refused, as an integrity failure naming `key`, and nothing changed.
fn refused(b: &Env, key: &str, why: &str) -> String {
    let before = b.head();
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(key), "{}", r.stderr);
    assert!(r.stderr.contains(why), "{}", r.stderr);
    assert_eq!(b.head(), before, "the refused pull changed the ledger");
    r.stderr
}

/// `audit --remote --full` reports `why` about `key`.
fn audit_finds(b: &Env, key: &str, why: &str) {
    let r = b.run(["audit", "--remote", "origin", "--full"]);
    assert_eq!(
        r.code, 1,
        "audit passed a remote no host can pull:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.contains(key) && l.contains(why)),
        "{}",
        r.stdout
    );
}

#[test]
fn an_event_naming_an_object_no_event_records_is_refused_naming_key_and_object() {
    let server = S3Server::start();
    let (_a, forger) = pushed(&server);
    let b = puller(&server);
    let ghost = format!("blake3:{}", "ab".repeat(32));
    let key = forger.append(ingest(
        &forger,
        json!([{"kind": "blob", "object": ghost, "path": "/ghost"}]),
        json!([]),
    ));
    let err = refused(&b, &key, "neither it nor an event before it records");
    assert!(err.contains(&ghost), "{err}");
    audit_finds(&b, &key, "neither it nor an event before it records");
    // Every later command on every host meets the same clear refusal, not a SQL error.
    let c = server.host("t");
    let r = c.run(["push"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stderr.contains("FOREIGN KEY"), "{}", r.stderr);
}

#[test]
fn an_object_recorded_as_a_tree_that_is_not_one_is_refused_and_audit_finds_it() {
    let server = S3Server::start();
    let (_a, forger) = pushed(&server);
    let b = puller(&server);
    let o = forger.object(b"hello tree\n", "tree");
    let key = forger.append(ingest(
        &forger,
        json!([{"kind": "tree", "object": o["id"], "path": "/fake-dir"}]),
        json!([o]),
    ));
    refused(&b, &key, "but its bytes are not a tree");
    let hex = o["id"]
        .as_str()
        .unwrap()
        .strip_prefix("blake3:")
        .unwrap()
        .to_string();
    audit_finds(
        &b,
        &format!("objects/{}/{}", &hex[..2], &hex[2..]),
        "recorded as a tree, but its bytes are not one",
    );

    // A local ledger whose row says tree for a blob (a damaged or hand-edited table) is
    // a finding of the local audit too.
    let f = b.path("blob.txt");
    std::fs::write(&f, "a blob\n").unwrap();
    let id = b.ok(["ingest", s(&f), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    b.db()
        .execute("UPDATE objects SET kind = 'tree' WHERE id = ?1", [&id])
        .unwrap();
    let r = b.run(["audit"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.contains(&id) && l.contains("recorded as a tree, but its bytes are not one")),
        "{}",
        r.stdout
    );
}

#[test]
fn a_tree_whose_entries_no_event_records_is_refused() {
    let server = S3Server::start();
    let (a, forger) = pushed(&server);
    // A real tree, from a real ingest of a folder on A, re-recorded by a forged event
    // that omits the records of the files inside it.
    let dir = a.path("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside.txt"), "inside\n").unwrap();
    let out = a.ok(["ingest", s(&dir), "--json"]).json();
    let tree = out["items"][0]["object"].as_str().unwrap().to_string();
    let bytes = crate::util::stored(&a.ledger, tree.strip_prefix("blake3:").unwrap()).bytes();
    let b = puller(&server);
    let o = forger.object(&bytes, "tree");
    let key = forger.append(ingest(
        &forger,
        json!([{"kind": "tree", "object": o["id"], "path": "/dir"}]),
        json!([o]),
    ));
    refused(&b, &key, "entry `inside.txt` names object");
}

#[test]
fn a_known_object_recorded_again_as_another_kind_is_refused() {
    let server = S3Server::start();
    let (_a, forger) = pushed(&server);
    let b = puller(&server);
    let mut rec = forger.event(1)["objects"][0].clone();
    rec["kind"] = "tree".into();
    let key = forger.append(ingest(&forger, json!([]), json!([rec])));
    refused(&b, &key, "but this ledger recorded it as a blob");
}

#[test]
fn an_object_longer_than_its_record_is_refused_after_reading_one_byte_past_it() {
    let server = S3Server::start();
    let (_a, forger) = pushed(&server);
    let rec = forger.event(1)["objects"][0].clone();
    let hex = rec["id"]
        .as_str()
        .unwrap()
        .strip_prefix("blake3:")
        .unwrap()
        .to_string();
    // 1 GiB (sparse on the server's disk): a puller that read it all would take
    // seconds and a gigabyte of staging before it could say no. The object is kept as a
    // key of its own: its pack is gone (a pack that large is refused unread).
    std::fs::remove_dir_all(forger.file("packs")).unwrap();
    let loose = forger.file(&format!("objects/{}/{}", &hex[..2], &hex[2..]));
    std::fs::create_dir_all(loose.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&loose).unwrap();
    f.set_len(1 << 30).unwrap();
    let b = server.host("t");
    let r = peak_rss(&b, &["pull"]);
    assert_eq!(r.0, 3, "{}", r.2);
    assert!(
        r.2.contains("longer than the 6 bytes recorded for it"),
        "{}",
        r.2
    );
    assert!(r.2.contains("journal/00000000000000000001"), "{}", r.2);
    let staged = walk_bytes(&b.ledger);
    assert!(
        staged < 1 << 20,
        "the refused pull left {staged} bytes in the ledger home"
    );
}

/// The exit code, stdout, stderr and peak resident memory (KiB) of one command.
fn peak_rss(env: &Env, args: &[&str]) -> (i32, String, String, u64) {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], capture_output=True)\n\
                  sys.stdout.buffer.write(r.stdout)\n\
                  sys.stderr.buffer.write(r.stderr)\n\
                  sys.stderr.write('\\nPEAK_RSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(r.returncode)";
    // The command exactly as `env` would run it (its cleared environment included),
    // as the child of a Python that asks the kernel for its children's peak RSS.
    let cmd = env.cmd(args);
    let mut py = std::process::Command::new("python3");
    py.arg("-c")
        .arg(script)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .current_dir(cmd.get_current_dir().unwrap());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            py.env(k, v);
        }
    }
    let out = py.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS_KIB="))
        .unwrap()
        .parse()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        rss,
    )
}

fn walk_bytes(p: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with("ledger.db")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_one_gib_journal_key_is_refused_unread_by_pull_and_status() {
    let server = S3Server::start();
    let (_a, forger) = pushed(&server);
    let b = puller(&server);
    let key = Forger::key(2);
    let f = std::fs::File::create(forger.file(&key)).unwrap();
    f.set_len(1 << 30).unwrap();
    let (code, _, stderr, rss) = peak_rss(&b, &["pull"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&key) && stderr.contains("holds 1073741824 bytes"),
        "{stderr}"
    );
    assert!(
        rss < 100 << 10,
        "pull peaked at {rss} KiB against a 1 GiB journal key"
    );
    let (code, stdout, stderr, rss) = peak_rss(&b, &["remote", "status"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stdout.contains("remote fails verification") && stdout.contains(&key),
        "{stdout}"
    );
    assert!(
        rss < 100 << 10,
        "remote status peaked at {rss} KiB against a 1 GiB journal key"
    );
}

#[test]
fn remote_status_verifies_the_head_it_reports_and_tells_integrity_from_reachability() {
    let mut server = S3Server::start();
    let (a, forger) = pushed(&server);
    let b = server.host("t");
    let st = b.run(["remote", "status", "--json"]);
    assert_eq!(st.code, 0, "{}", st.stderr);
    assert_eq!(st.json()[0]["behind"], 1);
    assert_eq!(st.json()[0]["remote_head"]["seq"], 1);
    // A gap: entry 3 with no entry 2. `pull` refuses it, and so must status.
    let f = a.path("second.txt");
    std::fs::write(&f, "second\n").unwrap();
    a.ok(["ingest", s(&f)]);
    a.ok(["push"]);
    std::fs::rename(forger.file(&Forger::key(2)), forger.file(&Forger::key(3))).unwrap();
    let st = b.run(["remote", "status"]);
    assert_eq!(st.code, 3, "{}{}", st.stdout, st.stderr);
    assert!(
        st.stdout.contains("remote fails verification"),
        "{}",
        st.stdout
    );
    assert!(!st.stdout.contains("not reachable"), "{}", st.stdout);
    assert_eq!(b.run(["pull"]).code, 3);
    server.kill();
    let st = b.run(["remote", "status"]);
    assert_eq!(st.code, 4, "{}{}", st.stdout, st.stderr);
    assert!(st.stdout.contains("remote not reachable"), "{}", st.stdout);
}

#[test]
fn garbage_under_checkpoints_never_blocks_push_or_pull_and_audit_names_it() {
    let server = S3Server::start();
    let a = server.host("t");
    a.ok(["key", "generate"]);
    let f = a.path("x.txt");
    std::fs::write(&f, "x\n").unwrap();
    a.ok(["ingest", s(&f)]);
    a.ok(["push"]);
    let forger = Forger {
        server: &server,
        prefix: "t",
    };
    std::fs::write(forger.file("checkpoints/garbage"), "not a note").unwrap();
    std::fs::write(
        forger.file("checkpoints/00000000000000000001-0123456789abcdef"),
        "example.com/log\n1\nAAAA\n\n— nobody AAAA\n",
    )
    .unwrap();
    let b = server.host("t");
    let r = b.run(["pull"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("passed over 2 key(s) under checkpoints/"),
        "{}",
        r.stdout
    );
    std::fs::write(&f, "y\n").unwrap();
    a.ok(["ingest", s(&f)]);
    let r = a.run(["push"]);
    assert_eq!(r.code, 0, "one garbage key blocked push: {}", r.stderr);
    let r = b.run(["audit", "--remote", "origin"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    for key in [
        "checkpoints/garbage",
        "checkpoints/00000000000000000001-0123456789abcdef",
    ] {
        assert!(r.stdout.contains(key), "{key}:\n{}", r.stdout);
    }
}

#[test]
fn a_checkpoint_key_the_client_cannot_name_blocks_neither_push_nor_pull() {
    let server = S3Server::start();
    let (a, forger) = pushed(&server);
    std::fs::create_dir_all(forger.file("checkpoints")).unwrap();
    std::fs::write(forger.file("checkpoints/\u{1b}[2J\u{1b}[HFAKE OK"), "x").unwrap();
    let b = server.host("t");
    let r = b.run(["pull"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = a.path("second.txt");
    std::fs::write(&f, "second\n").unwrap();
    a.ok(["ingest", s(&f)]);
    let r = a.run(["push"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = b.run(["audit", "--remote", "origin"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("checkpoints/: could not be listed") && !r.stdout.contains('\u{1b}'),
        "{}",
        r.stdout
    );
}

#[test]
fn a_pull_refused_after_committing_some_batches_says_how_many_and_where_it_stopped() {
    let server = S3Server::start();
    let (a, forger) = pushed(&server);
    for i in 0..3 {
        let f = a.path(&format!("more-{i}.txt"));
        std::fs::write(&f, format!("{i}\n")).unwrap();
        a.ok(["ingest", s(&f)]);
    }
    a.ok(["push"]);
    let ghost = format!("blake3:{}", "cd".repeat(32));
    let key = forger.append(ingest(
        &forger,
        json!([{"kind": "blob", "object": ghost, "path": "/ghost"}]),
        json!([]),
    ));
    let mut b = server.host("t");
    b.vars
        .push(("CTO_LEDGER_TEST_PULL_BATCH".into(), "2".into()));
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&key), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("had already committed 4 event(s) from the remote, through event 4"),
        "{}",
        r.stderr
    );
    assert_eq!(b.head().0, 4);
    assert!(b.ok(["audit"]).stdout.contains("audit passed"));
}

#[test]
fn a_remote_that_trickles_fails_after_the_stall_window_naming_endpoint_bucket_and_key() {
    let server = Trickle::start();
    let mut b = Env::new();
    b.vars.push(("AWS_ACCESS_KEY_ID".into(), "k".into()));
    b.vars.push(("AWS_SECRET_ACCESS_KEY".into(), "s".into()));
    b.vars
        .push(("CTO_LEDGER_REMOTE_STALL_SECONDS".into(), "2".into()));
    b.ok([
        "remote",
        "add",
        "origin",
        "s3://slow-bucket/p",
        "--endpoint",
        &server.endpoint(),
    ]);
    let started = std::time::Instant::now();
    let r = b.run(["pull"]);
    let took = started.elapsed();
    assert_eq!(r.code, 4, "{}", r.stderr);
    for part in [
        "stalled",
        "slow-bucket",
        "p/journal/00000000000000000001",
        &server.endpoint(),
    ] {
        assert!(r.stderr.contains(part), "{part}: {}", r.stderr);
    }
    // Not a timing assertion on this machine's speed: the server sends a byte a second
    // for ten minutes, so anything short of that is the stall rule at work.
    assert!(took.as_secs() < 300, "pull took {took:?}");
    let b2 = &mut b;
    b2.vars
        .retain(|(k, _)| k != "CTO_LEDGER_REMOTE_STALL_SECONDS");
    b2.vars
        .push(("CTO_LEDGER_REMOTE_STALL_SECONDS".into(), "soon".into()));
    let r = b2.run(["pull"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("CTO_LEDGER_REMOTE_STALL_SECONDS=soon"),
        "{}",
        r.stderr
    );
}

/// An S3 endpoint that lists one journal key and then sends its body a byte a second.
struct Trickle {
    child: std::process::Child,
    port: u16,
}

impl Trickle {
    fn start() -> Trickle {
        let script = r#"
import http.server, socketserver, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if "list-type=2" in self.path:
            body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>slow-bucket</Name>'
                    b'<Prefix>p/journal/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>'
                    b'<Contents><Key>p/journal/00000000000000000001</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>'
                    b'<ETag>"x"</ETag><Size>600</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>')
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", "600")
        self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
        self.send_header("ETag", '"x"')
        self.end_headers()
        for _ in range(600):
            try:
                self.wfile.write(b"{")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        Trickle {
            child,
            port: line.trim().parse().unwrap(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packs of a remote prefix as the server holds them: (pack path, its index bytes).
fn packs_on(server: &S3Server, prefix: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = server.file(&format!("{prefix}/packs"));
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .map(|p| {
            let idx = std::fs::read(p.with_extension("idx")).unwrap();
            (p, idx)
        })
        .collect();
    out.sort();
    out
}

/// 48-byte index entries: (id, offset, length).
fn entries(idx: &[u8]) -> Vec<([u8; 32], u64, u64)> {
    idx.chunks_exact(48)
        .map(|e| {
            (
                e[..32].try_into().unwrap(),
                u64::from_le_bytes(e[32..40].try_into().unwrap()),
                u64::from_le_bytes(e[40..48].try_into().unwrap()),
            )
        })
        .collect()
}

fn small_tree(env: &Env, n: usize) -> PathBuf {
    let dir = env.path("tree");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("f{i}")),
            format!("small file {i}\n").repeat(1 + i % 7),
        )
        .unwrap();
    }
    dir
}

/// A remote that scatters a tree's small objects over eight 64 MiB packs (sparse on the
/// server's disk) costs the puller ranged GETs of exactly those objects, never a whole
/// pack per object: once that took 87 s and 731 MB for 401 objects of 687 KB.
#[test]
fn objects_scattered_over_large_packs_cost_their_own_bytes_not_the_packs() {
    let server = S3Server::start();
    let a = server.host("t");
    let tree = small_tree(&a, 400);
    a.ok(["ingest", s(&tree)]);
    a.ok(["push"]);
    let honest = packs_on(&server, "t");
    assert_eq!(honest.len(), 1);
    let (pack, idx) = &honest[0];
    let bytes = std::fs::read(pack).unwrap();
    let all = entries(idx);
    std::fs::remove_dir_all(server.file("t/packs")).unwrap();
    std::fs::create_dir(server.file("t/packs")).unwrap();
    for k in 0..8u8 {
        let mut out = b"CTOPACK1".to_vec();
        let mut ix = Vec::new();
        for (id, off, n) in all.iter().skip(k as usize).step_by(8) {
            ix.extend_from_slice(id);
            ix.extend_from_slice(&(out.len() as u64).to_le_bytes());
            ix.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&bytes[*off as usize..(off + n) as usize]);
        }
        let name = format!("{:064x}", k);
        let p = server.file(&format!("t/packs/{name}.pack"));
        std::fs::write(&p, &out).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        std::fs::write(server.file(&format!("t/packs/{name}.idx")), &ix).unwrap();
    }
    let b = server.host("t");
    let start = std::time::Instant::now();
    let (code, _, stderr, rss) = peak_rss(&b, &["pull"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(rss < 150 * 1024, "pull peaked at {rss} KiB");
    assert!(
        // Far above any machine's time to read a few small packs, far below reading
        // the padding: a gross bound, not a timing target.
        start.elapsed() < std::time::Duration::from_secs(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(b.run(["audit"]).code, 0);
}

/// A forged index that maps an object to other bytes does not hide the genuine pack:
/// pull takes the copy that hashes to the id, and the remote's audit names the forgery.
#[test]
fn a_forged_index_beside_the_genuine_one_hides_nothing() {
    let server = S3Server::start();
    let a = server.host("t");
    let tree = small_tree(&a, 50);
    a.ok(["ingest", s(&tree)]);
    a.ok(["push"]);
    let (_, idx) = &packs_on(&server, "t")[0];
    let victim = entries(idx)[0].0;
    let junk = b"CTOPACK1 these are not the bytes you are looking for".to_vec();
    let mut ix = victim.to_vec();
    ix.extend_from_slice(&8u64.to_le_bytes());
    ix.extend_from_slice(&((junk.len() - 8) as u64).to_le_bytes());
    let forged = "0".repeat(64);
    std::fs::write(server.file(&format!("t/packs/{forged}.pack")), &junk).unwrap();
    std::fs::write(server.file(&format!("t/packs/{forged}.idx")), &ix).unwrap();
    let b = server.host("t");
    b.ok(["pull"]);
    assert_eq!(b.run(["audit"]).code, 0);
    let audit = a.run(["audit", "--remote", "--full"]);
    assert_eq!(audit.code, 1, "{}", audit.stdout);
    assert!(audit.stdout.contains(&forged), "{}", audit.stdout);
}
