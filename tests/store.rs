//! Ingest and restore: trees round-trip exactly, and hostile trees are refused.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::util::*;

/// Everything about a tree a restore must reproduce: names (as bytes), kinds,
/// executable bits, contents and link targets.
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name().min_depth(1) {
        let e = e.unwrap();
        let rel = hex::encode(e.path().strip_prefix(root).unwrap().as_os_str().as_bytes());
        let m = fs::symlink_metadata(e.path()).unwrap();
        let what = if m.file_type().is_symlink() {
            format!(
                "link {}",
                hex::encode(fs::read_link(e.path()).unwrap().as_os_str().as_bytes())
            )
        } else if m.is_dir() {
            "dir".to_string()
        } else {
            format!(
                "file exec={} {}",
                m.permissions().mode() & 0o100 != 0,
                hex::encode(fs::read(e.path()).unwrap())
            )
        };
        out.push(format!("{rel} {what}"));
    }
    out
}

#[test]
fn directory_round_trips_exactly() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("nested/empty/deeper")).unwrap();
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("empty-file"), b"").unwrap();
    fs::write(
        src.join(OsStr::from_bytes(b"caf\xe9-latin1")),
        b"non-utf8 name",
    )
    .unwrap();
    fs::write(src.join("nested/data.bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    symlink("../bin/tool", src.join("nested/link-to-tool")).unwrap();
    symlink("does-not-exist", src.join("dangling")).unwrap();

    let v = env
        .ok(["ingest", s(&src), "--kind", "source", "--json"])
        .json();
    let tree = v["items"][0]["object"].as_str().unwrap().to_string();
    assert_eq!(v["items"][0]["kind"], "tree");
    let dest = env.path("restored");
    env.ok(["restore", &tree, s(&dest)]);
    assert_eq!(describe(&src), describe(&dest));

    // Ingesting the same tree again yields the same id and no new objects.
    let again = env.ok(["ingest", s(&src), "--json"]).json();
    assert_eq!(again["items"][0]["object"], tree.as_str());
    assert_eq!(again["new_objects"], 0);
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn objects_are_read_only_and_the_home_private() {
    let env = Env::new();
    let f = env.path("f.txt");
    fs::write(&f, b"hello").unwrap();
    let id = env.ok(["ingest", s(&f), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = id.strip_prefix("blake3:").unwrap();
    let mode = fs::metadata(stored(&env.ledger, hex).file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
    assert_eq!(
        fs::metadata(&env.ledger).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(hex, blake3::hash(b"hello").to_hex().as_str());
    assert_eq!(env.ok(["cat", &id]).stdout, "hello");
}

#[test]
fn restore_refuses_links_that_escape_and_writes_nothing() {
    for target in ["../../outside", "/etc/passwd", "a/../../.."] {
        let env = Env::new();
        let src = env.path("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a-first"), b"x").unwrap();
        symlink(target, src.join("sub/evil")).unwrap();
        let tree = env.ok(["ingest", s(&src), "--json"]).json()["items"][0]["object"]
            .as_str()
            .unwrap()
            .to_string();
        let dest = env.path("dest");
        let r = env.run(["restore", &tree, s(&dest)]);
        assert_eq!(r.code, 2, "{target}: {}", r.stderr);
        assert!(r.stderr.contains("outside"), "{}", r.stderr);
        let written: Vec<_> = fs::read_dir(&dest).map(|d| d.collect()).unwrap_or_default();
        assert!(written.is_empty(), "{target}: restore wrote {written:?}");
    }
}

#[test]
fn crafted_tree_with_dot_dot_name_is_refused() {
    let env = Env::new();
    let f = env.path("payload");
    fs::write(&f, b"owned").unwrap();
    let blob = env.ok(["ingest", s(&f), "--json"]).json()["items"][0].clone();
    // A hand-made manifest naming `..`: valid JSON, canonical, but an escape.
    let manifest = format!(
        r#"{{"entries":[{{"kind":"file","name":"..","object":"{}","sha256":"{}","size":5}}],"format":"cto-ledger-tree-v1"}}"#,
        blob["object"].as_str().unwrap(),
        blob["sha256"].as_str().unwrap()
    );
    let mf = env.path("evil-tree.json");
    fs::write(&mf, manifest).unwrap();
    let tree = env.ok(["ingest", s(&mf), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = env.path("dest/inner");
    let r = env.run(["restore", &tree, s(&dest)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a valid tree"), "{}", r.stderr);
    assert!(!env.path("dest/payload").exists() && !env.path("dest/..").join("payload").exists());
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    let env = Env::new();
    assert!(env
        .ok(["completions", "bash"])
        .stdout
        .contains("cto-ledger"));
    let man = env.ok(["man"]).stdout;
    assert!(man.contains(".TH") && man.contains("admit"));
}

#[test]
fn unchanged_files_are_not_reread_and_changed_ones_are_caught_even_with_a_forged_mtime() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("a")).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("a/f{i}")), format!("file {i}")).unwrap();
    }
    // The cache does not trust files changed within 2 s of being recorded (racy git).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = env.ok(["ingest", s(&src), "--json"]).json();
    assert_eq!(first["items"][0]["unchanged"], 0);
    let again = env.ok(["ingest", s(&src), "--json"]).json();
    assert_eq!(again["items"][0]["unchanged"], 20, "{again}");
    assert_eq!(again["items"][0]["object"], first["items"][0]["object"]);

    // Same size, new content, mtime set back to what it was: ctime still moves.
    let f = src.join("a/f7");
    rewrite_keeping_mtime(&f, "FILE 7");
    let changed = env.ok(["ingest", s(&src), "--json"]).json();
    assert_ne!(
        changed["items"][0]["object"], first["items"][0]["object"],
        "the change was missed"
    );
    let other = Env::new();
    let truth = other.ok(["ingest", s(&src), "--json"]).json();
    assert_eq!(changed["items"][0]["object"], truth["items"][0]["object"]);
    assert_eq!(env.run(["audit"]).code, 0);
}

#[test]
fn unchanged_directories_reuse_their_trees_and_any_change_inside_reaches_the_root() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("a/b/c")).unwrap();
    fs::create_dir_all(src.join("d")).unwrap();
    for (i, dir) in ["a", "a/b", "a/b/c", "d"].iter().enumerate() {
        for j in 0..3 {
            fs::write(src.join(dir).join(format!("f{j}")), format!("{i}.{j}")).unwrap();
        }
    }
    std::os::unix::fs::symlink("f0", src.join("a/b/link")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let root = |e: &Env| e.ok(["ingest", s(&src), "--json"]).json()["items"][0]["object"].clone();
    let first = root(&env);
    let again = env.ok(["ingest", s(&src), "--json"]).json();
    assert_eq!(again["items"][0]["object"], first);
    assert_eq!(
        again["new_objects"], 0,
        "an unchanged tree stores nothing: {again}"
    );

    type Change<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let changes: Vec<Change> = vec![
        (
            "a new file deep down",
            Box::new(|| fs::write(src.join("a/b/c/new"), "n").unwrap()),
        ),
        (
            "a file removed",
            Box::new(|| fs::remove_file(src.join("d/f1")).unwrap()),
        ),
        (
            "an executable bit",
            Box::new(|| {
                fs::set_permissions(src.join("a/f2"), fs::Permissions::from_mode(0o755)).unwrap()
            }),
        ),
        (
            "a symlink retargeted",
            Box::new(|| {
                fs::remove_file(src.join("a/b/link")).unwrap();
                std::os::unix::fs::symlink("f1", src.join("a/b/link")).unwrap();
            }),
        ),
        (
            "a directory renamed",
            Box::new(|| fs::rename(src.join("a/b/c"), src.join("a/b/e")).unwrap()),
        ),
        (
            "an empty directory added",
            Box::new(|| fs::create_dir(src.join("d/empty")).unwrap()),
        ),
        (
            "a file replaced by a directory of its name",
            Box::new(|| {
                fs::remove_file(src.join("d/f2")).unwrap();
                fs::create_dir(src.join("d/f2")).unwrap();
            }),
        ),
        (
            "a directory replaced by a file of its name",
            Box::new(|| {
                fs::remove_dir(src.join("d/empty")).unwrap();
                fs::write(src.join("d/empty"), "").unwrap();
            }),
        ),
        (
            "a symlink replaced by a file",
            Box::new(|| {
                fs::remove_file(src.join("a/b/link")).unwrap();
                fs::write(src.join("a/b/link"), "f1").unwrap();
            }),
        ),
    ];
    let mut seen = vec![first];
    for (what, change) in changes {
        change();
        let now = root(&env);
        assert!(!seen.contains(&now), "{what}: the root did not change");
        assert_eq!(
            now,
            root(&Env::new()),
            "{what}: differs from a fresh ingest"
        );
        seen.push(now);
    }
    assert_eq!(env.run(["audit"]).code, 0);
}

/// The directory cache is this host's bookkeeping: a record cut short or of another
/// layout vouches for nothing (every file is read again, the tree is what a fresh ingest
/// makes), and an ingest of a folder inside one ingested before uses its records.
#[test]
fn a_damaged_directory_record_vouches_for_nothing_and_a_subfolder_uses_its_records() {
    let env = Env::new();
    let src = env.path("src");
    for dir in ["a/b", "c"] {
        fs::create_dir_all(src.join(dir)).unwrap();
        for j in 0..4 {
            fs::write(src.join(dir).join(format!("f{j}")), format!("{dir}.{j}")).unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = env.ok(["ingest", s(&src), "--json"]).json();
    let sub = env.ok(["ingest", s(&src.join("a")), "--json"]).json();
    assert_eq!(sub["items"][0]["unchanged"], 4, "{sub}");
    assert_eq!(
        sub["items"][0]["object"],
        Env::new()
            .ok(["ingest", s(&src.join("a")), "--json"])
            .json()["items"][0]["object"]
    );
    // One byte of a record changed at `at`: still a record that parses, naming a tree or
    // file that is not there, unless the checksum catches it.
    let flip = |at: &str| {
        format!(
            "CAST(substr(record, 1, {at} - 1) || CASE WHEN substr(record, {at}, 1) = x'00' \
             THEN x'01' ELSE x'00' END || substr(record, {at} + 1) AS BLOB)"
        )
    };
    for (what, damage) in [
        (
            "cut short",
            "substr(record, 1, length(record) - 1)".to_string(),
        ),
        (
            "another layout",
            "CAST(x'03' || substr(record, 2) AS BLOB)".into(),
        ),
        ("trailing bytes", "CAST(record || x'00' AS BLOB)".into()),
        ("a byte of its tree's id", flip("40")),
        ("a byte of its tree's SHA-256", flip("70")),
        ("a byte of its last entry", flip("length(record) - 4")),
    ] {
        let rows = env
            .db()
            .execute(&format!("UPDATE dir_cache SET record = {damage}"), [])
            .unwrap();
        assert_eq!(rows, 4, "{what}: one record per directory");
        let again = env.ok(["ingest", s(&src), "--json"]).json();
        assert_eq!(again["items"][0]["unchanged"], 0, "{what}: {again}");
        assert_eq!(
            again["items"][0]["object"], first["items"][0]["object"],
            "{what}"
        );
        // The ingest wrote fresh records: the next one reads nothing.
        let fresh = env.ok(["ingest", s(&src), "--json"]).json();
        assert_eq!(fresh["items"][0]["unchanged"], 8, "{what}: {fresh}");
        assert_eq!(env.run(["audit"]).code, 0, "{what}");
    }
}

#[test]
fn files_hash_to_the_reference_digests_at_every_chunk_boundary() {
    // Below one 1 MiB chunk a file is hashed in one go; above, SHA-256 and BLAKE3 run on
    // their own threads fed chunk by chunk. Both paths must agree with the references.
    use sha2::Digest as _;
    let env = Env::new();
    const MIB: usize = 1 << 20;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for size in [
        0,
        1,
        MIB - 1,
        MIB,
        MIB + 1,
        3 * MIB,
        3 * MIB + 17,
        5 * MIB + 3,
    ] {
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let f = env.path(&format!("f{size}"));
        fs::write(&f, &bytes).unwrap();
        let v = env.ok(["ingest", s(&f), "--json"]).json();
        let item = &v["items"][0];
        let blake = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        let sha = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        assert_eq!(item["object"], blake.as_str(), "size {size}");
        assert_eq!(item["sha256"], sha.as_str(), "size {size}");
        assert_eq!(item["size"], size as u64);
        let out = env.cmd(["cat", &blake]).output().unwrap();
        assert!(
            out.status.success() && out.stdout == bytes,
            "size {size}: cat differs"
        );
    }
}

/// A file rewritten with the bytes it had (a rebuilt artifact: new mtime, same content) is
/// recognised by one read against what the stat cache last recorded for it and not copied
/// again (the ingest passes on a disk that would not hold it); other bytes of the same size
/// are stored.
#[test]
fn a_rewritten_file_with_the_same_bytes_is_not_copied_again() {
    let env = Env::new();
    let dir = env.path("dist");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = |salt: u32| -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 11) as u8)
            .collect()
    };
    let file = dir.join("app.bin");
    std::fs::write(&file, bytes(1)).unwrap();
    let first = env.ok(["ingest", s(&dir), "--json"]).json()["items"][0]["object"].clone();
    let tight = |env: &Env| on_a_tight_disk(env.cmd(["ingest", s(&dir), "--json"]));
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, bytes(1)).unwrap();
    let again = tight(&env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["items"][0]["object"], first);

    std::fs::write(&file, bytes(2)).unwrap();
    assert_eq!(tight(&env).code, 4, "other bytes are written: disk full");
    let changed = env.ok(["ingest", s(&dir), "--json"]).json()["items"][0]["object"].clone();
    assert_ne!(changed, first);
    let back = env.path("back");
    env.ok(["restore", changed.as_str().unwrap(), s(&back)]);
    assert_eq!(std::fs::read(back.join("app.bin")).unwrap(), bytes(2));
}
