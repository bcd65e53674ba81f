//! The log as C2SP tlog-tiles: `checkpoint --sign --tiles DIR` writes what any tlog-tiles
//! client reads, checked here by Go's own `golang.org/x/mod/sumdb/{note,tlog}` (Debian's
//! golang-golang-x-mod-dev; `.ci/run` installs it), and the tiles kept in the ledger are
//! audited against the journal.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

/// tests/verifiers/tlog built once per test process with Debian's Go and x/mod.
fn tlogcheck() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/tlogcheck");
        let st = Command::new("go")
            .args(["build", "-o", out.to_str().unwrap(), "."])
            .current_dir(root.join("tests/verifiers/tlog"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", root.join("target/go-cache"))
            .env("GOFLAGS", "-mod=mod")
            .status()
            .unwrap_or_else(|e| {
                panic!("go is not installed ({e}): `bash .ci/run` installs Debian's golang-go and golang-golang-x-mod-dev")
            });
        assert!(st.success(), "building tests/verifiers/tlog failed (is golang-golang-x-mod-dev installed?)");
        out
    })
}

/// A ledger of `n` events (one ingest each) and a signing key.
fn ledger_of(env: &Env, n: usize) {
    let f = env.path("f.txt");
    for i in 0..n {
        fs::write(&f, i.to_string()).unwrap();
        env.ok(["ingest", s(&f)]);
    }
}

fn check(dir: &Path, vkey: &str, indexes: &[&str]) -> (bool, String) {
    let out = Command::new(tlogcheck())
        .arg(dir)
        .arg(vkey)
        .args(indexes)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn go_reads_the_tiles_verifies_the_note_and_proves_entries_from_them_alone() {
    let env = Env::new();
    // Two full level-0 tiles and a partial one; a partial level-1 tile.
    ledger_of(&env, 514);
    env.ok(["key", "generate"]);
    let tiles = env.path("tiles");
    env.ok(["checkpoint", "--sign", "--tiles", s(&tiles)]);
    let vkey = env.ok(["key", "export", "--format", "note"]).stdout;
    let vkey = vkey.trim();
    for p in [
        "checkpoint",
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/3",
        "tile/1/000.p/2",
        "tile/entries/002.p/3",
    ] {
        assert!(tiles.join(p).is_file(), "{p} missing");
    }
    let (ok, out) = check(&tiles, vkey, &["0", "255", "256", "400", "514"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("tree hash from the tiles is the checkpoint's root"),
        "{out}"
    );
    assert_eq!(out.matches("included").count(), 5, "{out}");

    // Go's reader refuses a tile that does not hash to the signed root, an entry that is
    // not the leaf, and a checkpoint signed by another key.
    let t = tiles.join("tile/0/001");
    let good = fs::read(&t).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    fs::write(&t, &bad).unwrap();
    let (ok, out) = check(&tiles, vkey, &["300"]);
    assert!(!ok && out.contains("FAIL"), "{out}");
    fs::write(&t, &good).unwrap();
    let e = tiles.join("tile/entries/001");
    let good = fs::read(&e).unwrap();
    let mut bad = good.clone();
    bad[2 + 34 * 10] ^= 1;
    fs::write(&e, &bad).unwrap();
    let (ok, out) = check(&tiles, vkey, &["266"]);
    assert!(!ok && out.contains("FAIL record 266"), "{out}");
    fs::write(&e, &good).unwrap();
    let other = Env::new();
    other.ok(["init"]);
    other.ok(["key", "generate"]);
    let wrong = other.ok(["key", "export", "--format", "note"]).stdout;
    let (ok, out) = check(&tiles, wrong.trim(), &["1"]);
    assert!(!ok && out.contains("note.Open"), "{out}");
}

#[test]
fn audit_finds_a_damaged_tile_hash_and_reindex_mends_it() {
    let env = Env::new();
    ledger_of(&env, 300);
    env.ok(["key", "generate"]);
    env.ok(["checkpoint", "--sign"]);
    let good = env.ok(["prove", "150"]).stdout;
    assert_eq!(env.run(["audit"]).code, 0);
    env.db()
        .execute(
            "UPDATE tlog_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0",
            [],
        )
        .unwrap();
    let r = env.run(["audit"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("tlog_nodes") && r.stdout.contains("reindex"),
        "{}",
        r.stdout
    );
    env.ok(["reindex"]);
    assert_eq!(env.run(["audit"]).code, 0);
    // The same proof as before the damage: the tiles are the journal's again.
    assert_eq!(env.ok(["prove", "150"]).stdout, good);
}

#[test]
fn push_makes_the_bucket_a_tlog_tiles_log_that_go_reads_alone() {
    let server = S3Server::start();
    let a = server.host("tiled");
    ledger_of(&a, 300);
    a.ok(["key", "generate"]);
    let vkey = a.ok(["key", "export", "--format", "note"]).stdout;
    let pushed = a.ok(["push", "--json"]).json();
    let n = pushed["checkpoint"].as_u64().unwrap();
    // Straight from the server's files: the bucket's prefix is the log.
    let log = server.file("tiled");
    let (ok, out) = check(&log, vkey.trim(), &["0", "255", &(n - 1).to_string()]);
    assert!(ok, "{out}");
    // More events and another push: the tiles grow (new partial ones beside the old),
    // the checkpoint is the larger tree's, and Go still proves every range.
    ledger_of(&a, 250);
    // A hostile writer plants the next partial tile and a `checkpoint` claiming the
    // largest tree there is: push replaces both (a path names fixed bytes; `checkpoint`
    // stays only if it is a larger tree of this journal).
    let next = a.head().0;
    let planted = log.join(format!("tile/0/002.p/{}", next - 512));
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, vec![7u8; 32 * (next as usize - 512)]).unwrap();
    let real = fs::read_to_string(log.join("checkpoint")).unwrap();
    let mut forged: Vec<&str> = real.lines().collect();
    forged[1] = "18446744073709551615";
    fs::write(log.join("checkpoint"), forged.join("\n") + "\n").unwrap();
    let pushed = a.ok(["push", "--json"]).json();
    let m = pushed["checkpoint"].as_u64().unwrap();
    assert!(m > n);
    assert!(
        log.join("tile/0/001").is_file() && log.join(format!("tile/0/002.p/{}", m - 512)).is_file()
    );
    let (ok, out) = check(&log, vkey.trim(), &["1", "300", &(m - 1).to_string()]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("size {m}")), "{out}");
}
