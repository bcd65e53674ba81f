//! Keys that survive a crash, key files other tools read, notes read as strictly as Go's
//! `sumdb/note` reads them, and proofs that say when what they prove was revoked.

use std::fs;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::signing::{independent, python};
use crate::util::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key file as `key generate` before PKCS#8 v1 wrote it (v2, public key embedded).
const V2_KEY: &str = "-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEIPIukcc1L++AiphToNCt4SBH+0kSk9lu3scXItGiosTU
gSEAnbQAK1oQm2Q6iWaXchpLgmhd5xej0Igff7qN6EwLVGA=
-----END PRIVATE KEY-----
";

fn keyed() -> Env {
    let env = Env::new();
    env.ok(["init"]);
    env.ok(["key", "generate"]);
    env
}

fn keys(env: &Env) -> Vec<Value> {
    env.ok(["key", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_kill_at_either_step_of_key_rotate_leaves_a_ledger_that_signs() {
    // Killed after the new key is on disk, before the journal names it: the old key
    // still signs, and the next rotate goes through.
    let env = keyed();
    let mut c = env.cmd(["key", "rotate"]);
    let st = c
        .env("CTO_LEDGER_TEST_CRASH_AT", "key-rotate-stored")
        .status()
        .unwrap();
    assert_eq!(st.code(), None, "killed, not exited");
    assert_eq!(keys(&env).len(), 1);
    env.ok(["checkpoint", "--sign"]);
    env.ok(["audit"]);
    env.ok(["key", "rotate"]);
    env.ok(["checkpoint", "--sign"]);

    // Killed after the journal names the new key, before it replaces the old file:
    // audit names the interrupted rotation and its mend; signing finishes it.
    let env = keyed();
    let mut c = env.cmd(["key", "rotate", "--json"]);
    let st = c
        .env("CTO_LEDGER_TEST_CRASH_AT", "key-rotate-recorded")
        .status()
        .unwrap();
    assert_eq!(st.code(), None);
    let listed = keys(&env);
    assert_eq!(
        (listed[1]["status"].as_str(), listed[1]["current"].as_bool()),
        (Some("active"), Some(false))
    );
    let r = env.run(["audit", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = &r.json()["findings"][0];
    assert_eq!(f["check"], "key", "{f}");
    assert!(f["message"].as_str().unwrap().contains("key rotate"), "{f}");
    env.ok(["checkpoint", "--sign"]);
    assert_eq!(keys(&env)[1]["current"], true);
    env.ok(["audit"]);

    // And at random moments: every round leaves a ledger that signs and audits clean.
    let env = keyed();
    for round in 0..12u64 {
        let mut child = env.cmd(["key", "rotate"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis((round * 7) % 40));
        let _ = child.kill();
        let _ = child.wait();
        let r = env.run(["checkpoint", "--sign"]);
        assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        let r = env.run(["audit"]);
        assert_eq!(r.code, 0, "round {round}: {}{}", r.stdout, r.stderr);
    }
}

#[test]
fn the_key_file_is_pkcs8_v1_that_openssl_and_cryptography_read_and_v2_still_loads() {
    let env = keyed();
    let key = env.path(".config/cto-ledger/signing-key");
    let st = Command::new("openssl")
        .arg("pkey")
        .arg("-in")
        .arg(&key)
        .arg("-noout")
        .status()
        .unwrap();
    assert!(st.success(), "openssl cannot read the key file");
    let out = Command::new(python())
        .args(["-c", "import sys; from cryptography.hazmat.primitives.serialization import load_pem_private_key as l; l(open(sys.argv[1],'rb').read(), None)"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A key file in the older form still signs.
    let old = Env::new();
    old.ok(["init"]);
    let path = old.path(".config/cto-ledger/signing-key");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, V2_KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let g = old.ok(["key", "generate", "--json"]).json();
    assert_eq!(g["generated"], false, "{g}");
    old.ok(["checkpoint", "--sign"]);
}

#[test]
fn a_note_with_a_bad_line_beside_the_good_one_is_refused_by_us_and_by_python() {
    let env = keyed();
    let f = env.path("f");
    fs::write(&f, "f\n").unwrap();
    env.ok(["ingest", s(&f)]);
    env.ok(["checkpoint", "--sign"]);
    let pem = env.path("pub.pem");
    fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    let mut proof: Value = serde_json::from_str(&env.ok(["prove", "2"]).stdout).unwrap();
    let note = proof["checkpoint"].as_str().unwrap().to_string();
    let line = note.lines().last().unwrap();
    let (head, b64) = line.rsplit_once(' ').unwrap();
    let mut blob = B64.decode(b64).unwrap();
    blob[20] ^= 1;
    let forged = format!("{note}{head} {}\n", B64.encode(blob));
    proof["checkpoint"] = forged.clone().into();
    let file = env.path("forged.json");
    fs::write(&file, proof.to_string()).unwrap();
    let r = env.run(["verify-proof", s(&file), "--key", s(&pem)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("does not verify"), "{}", r.stdout);
    let (code, _) = independent("proof", &file, &pem);
    assert_eq!(code, 1, "the Python verifier accepted it too");
    let note_file = env.path("forged.note");
    fs::write(&note_file, &forged).unwrap();
    let r = env.run(["audit", "--checkpoint", s(&note_file)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    // The same good line twice is one signature.
    proof["checkpoint"] = format!("{note}{line}\n").into();
    fs::write(&file, proof.to_string()).unwrap();
    env.ok(["verify-proof", s(&file), "--key", s(&pem)]);
}

#[test]
fn a_proof_of_a_revoked_admission_says_so_and_fails() {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["key", "generate"]);
    let admitted = env.admit_repo(&repo);
    let id = admitted["admission"]["id"].as_str().unwrap().to_string();
    env.ok(["checkpoint", "--sign"]);
    let pem = env.path("pub.pem");
    fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    let before = env.path("before.json");
    fs::write(&before, env.ok(["prove", s(&repo.bin())]).stdout).unwrap();
    let r = env.ok(["verify-proof", s(&before), "--key", s(&pem)]);
    assert!(
        r.stdout.contains("included in the log") && r.stdout.contains("no revocation"),
        "{}",
        r.stdout
    );

    env.ok(["revoke", &id, "--reason", "built from a poisoned cache"]);
    env.ok(["checkpoint", "--sign"]);
    let after = env.path("after.json");
    fs::write(&after, env.ok(["prove", &id]).stdout).unwrap();
    let r = env.run(["verify-proof", s(&after), "--key", s(&pem), "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    assert_eq!(v["revoked"][1], "built from a poisoned cache", "{v}");
    // The revocation's proof is checked too: one naming another event is refused.
    let mut p: Value = serde_json::from_str(&fs::read_to_string(&after).unwrap()).unwrap();
    let mut other: Value = serde_json::from_str(&env.ok(["prove", "1"]).stdout).unwrap();
    other.as_object_mut().unwrap().remove("type");
    p["revoked_by"] = other;
    fs::write(&after, p.to_string()).unwrap();
    let r = env.run(["verify-proof", s(&after), "--key", s(&pem)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("not a revocation of the proven admission"),
        "{}",
        r.stdout
    );
}
