//! The store's packs: small objects many to a file, every read verified, `gc` and the
//! grace period, one copy of each provider (tests/stage2.rs checks the link).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::util::*;

pub(crate) fn many_files(root: &Path, n: usize) {
    for i in 0..n {
        let d = root.join(format!("pkg{:03}", i / 50));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}.js")),
            format!("module.exports = {i};\n").repeat(1 + i % 40),
        )
        .unwrap();
    }
}

fn object_of(env: &Env, file: &Path) -> String {
    env.ok(["ingest", s(file), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn thousands_of_small_objects_are_a_few_files_each_read_verified() {
    let env = Env::new();
    let tree = env.path("tree");
    many_files(&tree, 2000);
    let big = tree.join("big.bin");
    fs::write(&big, vec![9u8; 400_000]).unwrap();
    let v = env.ok(["ingest", s(&tree), "--json"]).json();
    let new = v["new_objects"].as_u64().unwrap();
    assert!(new > 2000, "{v}");
    // 2,001 files and 41 folders: one pack, one loose object (too big for a pack).
    let files = store_files(&env.ledger);
    assert!(files <= 3, "{files} files in the store");
    let a = env.run(["audit", "--json"]);
    assert_eq!(a.code, 0, "{}", a.stdout);
    assert_eq!(a.json()["objects_checked"].as_u64().unwrap(), new);

    // One damaged object in a pack is named, its neighbours still read.
    let damaged = object_of(&env, &tree.join("pkg000/f3.js"));
    let at = stored(&env.ledger, damaged.trim_start_matches("blake3:"));
    assert!(at.file.starts_with(env.ledger.join("objects/packs")));
    let mut bytes = fs::read(&at.file).unwrap();
    bytes[at.offset as usize + 3] ^= 0x20;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&at.file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&at.file, bytes).unwrap();
    fs::set_permissions(&at.file, fs::Permissions::from_mode(0o444)).unwrap();
    let neighbour = object_of(&env, &tree.join("pkg000/f4.js"));
    assert_eq!(
        env.ok(["cat", &neighbour]).stdout,
        "module.exports = 4;\n".repeat(5)
    );
    let cat = env.run(["cat", &damaged]);
    assert_eq!(cat.code, 3, "{}", cat.stderr);
    let a = env.run(["audit", "--json"]);
    assert_eq!(a.code, 1);
    let findings = a.json()["findings"].to_string();
    assert!(findings.contains(&damaged), "{findings}");
    assert!(!findings.contains(&neighbour), "{findings}");
    let restored = env.path("restored");
    let r = env.run([
        "restore",
        v["items"][0]["object"].as_str().unwrap(),
        s(&restored),
    ]);
    assert_eq!(
        r.code, 3,
        "a restore through a damaged object must fail: {}",
        r.stderr
    );
}

#[test]
fn a_pack_cut_short_or_with_a_lying_index_is_named_and_never_read_as_objects() {
    let env = Env::new();
    let tree = env.path("tree");
    many_files(&tree, 300);
    env.ok(["ingest", s(&tree)]);
    let pack = fs::read_dir(env.ledger.join("objects/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let bytes = fs::read(&pack).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    // The index says the first object runs past the object area.
    let mut lying = bytes.clone();
    let n = lying.len();
    let at = u64::from_le_bytes(lying[n - 24..n - 16].try_into().unwrap()) as usize;
    lying[at + 40..at + 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    for (what, b) in [
        ("lying index", lying),
        ("cut short", bytes[..n - 30].to_vec()),
    ] {
        fs::write(&pack, &b).unwrap();
        fs::set_permissions(&pack, fs::Permissions::from_mode(0o444)).unwrap();
        let a = env.run(["audit", "--json"]);
        assert_eq!(a.code, 1, "{what}: {}", a.stdout);
        let findings = a.json()["findings"].to_string();
        assert!(findings.contains("damaged pack"), "{what}: {findings}");
        assert!(findings.contains("missing"), "{what}: {findings}");
        fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::write(&pack, &bytes).unwrap();
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(env.run(["audit"]).code, 0);
}

/// Sets a file's modification time `ago` in the past.
fn age(path: &Path, ago: Duration) {
    fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

#[test]
fn gc_removes_only_what_no_event_names_once_the_grace_period_is_over() {
    let env = Env::new();
    let tree = env.path("tree");
    many_files(&tree, 200);
    let kept = env.ok(["ingest", s(&tree), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    // Objects no event names: a small one and a big one from another ledger's store,
    // and another ledger's whole pack, as an interrupted command would leave them.
    let other = Env::new();
    let small = other.path("small.txt");
    fs::write(&small, "named by nothing here\n").unwrap();
    let big = other.path("big.bin");
    fs::write(&big, vec![3u8; 300_000]).unwrap();
    fs::create_dir(other.path("t")).unwrap();
    for i in 0..50 {
        fs::write(
            other.path(&format!("t/{i}")),
            format!("only in the other ledger {i}\n"),
        )
        .unwrap();
    }
    other.ok(["ingest", s(&small), s(&big), s(&other.path("t"))]);
    let big_id = object_of(&other, &big);
    let big_at = stored(&other.ledger, big_id.trim_start_matches("blake3:"));
    let loose_dest = env
        .ledger
        .join(big_at.file.strip_prefix(&other.ledger).unwrap());
    fs::copy(&big_at.file, &loose_dest).unwrap();
    for e in fs::read_dir(other.ledger.join("objects/packs")).unwrap() {
        let p = e.unwrap().path();
        fs::copy(
            &p,
            env.ledger
                .join("objects/packs")
                .join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    let before = store_files(&env.ledger);
    // Within the grace period (just written): nothing goes.
    let v = env.ok(["gc", "--json"]).json();
    assert_eq!(v["removed"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(store_files(&env.ledger), before);
    // Past it: --dry-run lists both and removes neither; gc removes both.
    for f in fs::read_dir(env.ledger.join("objects/packs")).unwrap() {
        age(&f.unwrap().path(), Duration::from_secs(3 * 86_400));
    }
    age(&loose_dest, Duration::from_secs(3 * 86_400));
    let dry = env.ok(["gc", "--dry-run", "--json"]).json();
    let listed: Vec<&str> = dry["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{dry}");
    assert!(
        listed.contains(&"pack") && listed.contains(&"object"),
        "{dry}"
    );
    assert_eq!(store_files(&env.ledger), before);
    let v = env.ok(["gc", "--json"]).json();
    assert_eq!(v["removed"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(store_files(&env.ledger), before - 2);
    // What the journal names stays, aged or not, and reads.
    let a = env.run(["audit", "--json"]);
    assert_eq!(a.code, 0, "{}", a.stdout);
    assert!(!a.json()["notes"].to_string().contains("named by no event"));
    let out = env.path("out");
    env.ok(["restore", &kept, s(&out)]);
    assert_eq!(
        fs::read(out.join("pkg001/f60.js")).unwrap(),
        fs::read(tree.join("pkg001/f60.js")).unwrap()
    );
    // A bad age is refused before anything is read.
    let r = env.run(["gc", "--grace", "soon"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("30m, 24h or 7d"), "{}", r.stderr);
}

#[test]
fn an_object_a_command_relies_on_is_marked_and_gc_keeps_it() {
    let env = Env::new();
    let f = env.path("f.txt");
    fs::write(&f, "stored twice\n").unwrap();
    let id = object_of(&env, &f);
    let at = stored(&env.ledger, id.trim_start_matches("blake3:"));
    age(&at.file, Duration::from_secs(3 * 86_400));
    let old = fs::metadata(&at.file).unwrap().modified().unwrap();
    // Ingesting the same bytes again writes nothing and marks what it relied on.
    let g = env.path("g.txt");
    fs::write(&g, "stored twice\n").unwrap();
    assert_eq!(env.ok(["ingest", s(&g), "--json"]).json()["new_objects"], 0);
    let now = fs::metadata(&at.file).unwrap().modified().unwrap();
    assert!(now > old + Duration::from_secs(86_400), "not marked");
}

/// A well-formed pack (as docs/ledger.md gives the format) filing `bytes` under `id`.
fn planted_pack(dir: &Path, id: &[u8; 32], bytes: &[u8]) -> std::path::PathBuf {
    let mut out = b"CTOPACK1".to_vec();
    out.extend_from_slice(bytes);
    let at = out.len() as u64;
    out.extend_from_slice(id);
    out.extend_from_slice(&8u64.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(b"CTOPACK1");
    let p = dir.join(format!("{}.pack", blake3::hash(&out).to_hex()));
    fs::write(&p, &out).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
    p
}

/// A pack planted in the store (by anything with this user's rights) that files other
/// bytes under an object's id neither hides the intact copy nor makes `ingest` skip
/// storing the real bytes; `audit` names the planted copy.
#[test]
fn a_planted_copy_hides_nothing_and_is_named() {
    let env = Env::new();
    let tree = env.path("tree");
    many_files(&tree, 100);
    env.ok(["ingest", s(&tree)]);
    let packs = env.ledger.join("objects/packs");
    let f = tree.join("pkg001/f77.js");
    let id = object_of(&env, &f);
    let raw = *blake3::hash(&fs::read(&f).unwrap()).as_bytes();
    let planted = planted_pack(&packs, &raw, b"EVIL\n");
    assert_eq!(env.ok(["cat", &id]).stdout, fs::read_to_string(&f).unwrap());
    let a = env.run(["audit", "--json"]);
    assert_eq!(a.code, 1);
    let findings = a.json()["findings"].to_string();
    assert!(
        findings.contains(planted.file_name().unwrap().to_str().unwrap()),
        "{findings}"
    );
    // Planted before the real bytes ever arrive: ingest stores them anyway.
    let victim = env.path("victim.txt");
    fs::write(&victim, "real payload v1\n").unwrap();
    let vid = *blake3::hash(b"real payload v1\n").as_bytes();
    planted_pack(&packs, &vid, b"EVIL\n");
    let v = env.ok(["ingest", s(&victim), "--json"]).json();
    assert_eq!(v["new_objects"], 1, "{v}");
    let stored_id = v["items"][0]["object"].as_str().unwrap().to_string();
    assert_eq!(env.ok(["cat", &stored_id]).stdout, "real payload v1\n");
}

/// A command that relies on a stored object nothing names yet marks it, and marks it again
/// just before its commit: a `gc` that removed it meanwhile (the command ran longer than
/// the grace period) fails the command before anything is committed, never after.
#[test]
fn gc_during_a_long_command_never_leaves_an_event_naming_a_removed_object() {
    let env = Env::new();
    env.ok(["init"]);
    // An unnamed pack holding the object, as a refused pull or a killed ingest leaves it.
    let other = Env::new();
    let f = other.path("relied.txt");
    fs::write(&f, "relied on, never stored again\n").unwrap();
    other.ok(["ingest", s(&f)]);
    let pack = fs::read_dir(other.ledger.join("objects/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mine = env
        .ledger
        .join("objects/packs")
        .join(pack.file_name().unwrap());
    fs::copy(&pack, &mine).unwrap();
    age(&mine, Duration::from_secs(3 * 86_400));
    let head = env.head();
    // The ingest finds the object stored, relies on it, then is slow to commit...
    let mut slow = env.cmd(["ingest", s(&f)]);
    let child = slow
        .env("CTO_LEDGER_TEST_SYNC_DELAY_MS", "3000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // ...longer than the grace period: gc finds the mark old and removes the pack.
    age(&mine, Duration::from_secs(3 * 86_400));
    let g = env.ok(["gc", "--json"]).json();
    assert_eq!(g["removed"].as_array().unwrap().len(), 1, "{g}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("gc") && stderr.contains("run the command again"),
        "{stderr}"
    );
    assert_eq!(env.head(), head, "nothing was committed");
    assert_eq!(env.run(["audit"]).code, 0);
    // Run again, it stores the object itself.
    env.ok(["ingest", s(&f)]);
    assert_eq!(env.run(["audit"]).code, 0);
}

/// What stands at an object's loose path without being the store's own file (a link to a
/// file elsewhere, a symlink, a folder, junk) is never taken as the object: ingest stores
/// its own copy, and an intact packed copy is always read first.
#[test]
fn links_and_junk_at_a_loose_path_are_not_the_object() {
    let env = Env::new();
    env.ok(["init"]);
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    let small = env.path("small.txt");
    fs::write(&small, "small and right\n").unwrap();
    let big = env.path("big.bin");
    fs::write(&big, vec![7u8; 400_000]).unwrap();
    let hex = |p: &Path| blake3::hash(&fs::read(p).unwrap()).to_hex().to_string();
    let loose = |h: &str| env.ledger.join("objects").join(&h[..2]).join(&h[2..]);
    // A hard link to a file outside the store (same bytes), and a symlink to one.
    fs::copy(&small, outside.join("s")).unwrap();
    fs::hard_link(outside.join("s"), loose(&hex(&small))).unwrap();
    fs::copy(&big, outside.join("b")).unwrap();
    std::os::unix::fs::symlink(outside.join("b"), loose(&hex(&big))).unwrap();
    let v = env.ok(["ingest", s(&small), s(&big), "--json"]).json();
    assert_eq!(v["new_objects"], 2, "{v}");
    // The outside files change: the store's copies do not.
    fs::write(outside.join("s"), "TAMPERED\n").unwrap();
    fs::write(outside.join("b"), "TAMPERED\n").unwrap();
    assert_eq!(
        env.ok(["cat", &format!("blake3:{}", hex(&small))]).stdout,
        "small and right\n"
    );
    let b = env.run(["cat", &format!("blake3:{}", hex(&big))]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    // Junk larger than a pack's objects planted over a small object's loose path.
    let junk_at = loose(&hex(&small));
    let _ = fs::remove_file(&junk_at);
    fs::write(&junk_at, vec![0u8; 300_000]).unwrap();
    assert_eq!(
        env.ok(["cat", &format!("blake3:{}", hex(&small))]).stdout,
        "small and right\n"
    );
}
