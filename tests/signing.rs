//! Signed evidence checked offline: DSSE attestations, C2SP signed checkpoints and RFC
//! 9162 proofs, each verified by our CLI and by verifiers we did not write (PyPI's
//! securesystemslib, cryptography and in-toto-attestation, in the virtual environment
//! `.ci/run` creates), and each broken on purpose to see both refuse it.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::util::{s, Env};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The Python of the verifier environment: `CTO_LEDGER_TEST_PYTHON`, else the one
/// `.ci/run` makes under target/.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CTO_LEDGER_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/verifier-venv/bin/python");
    assert!(
        p.exists(),
        "the independent verifiers are not installed: run `bash .ci/run`, or \
         `python3 -m venv target/verifier-venv && target/verifier-venv/bin/pip install -r tests/verifiers/requirements.txt`"
    );
    p
}

/// Runs tests/verifiers/verify.py; (exit code, its JSON line).
pub(crate) fn independent(verb: &str, file: &Path, key: &Path) -> (i32, Value) {
    independent_arg(verb, file, s(key))
}

/// [`independent`] with the key given as text (a witness's vkey).
pub(crate) fn independent_arg(verb: &str, file: &Path, key: &str) -> (i32, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers/verify.py");
    let out = Command::new(python())
        .arg(script)
        .args([verb, s(file), key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or_else(|_| {
        panic!(
            "verify.py {verb} printed no JSON:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// Requires our `verb` (with `--subject`) and the independent verifier to accept `file`;
/// both JSON answers.
fn both_accept(env: &Env, verb: &str, file: &Path, pem: &Path, subject: &Path) -> (Value, Value) {
    let ours = env
        .ok([
            verb,
            s(file),
            "--key",
            s(pem),
            "--subject",
            s(subject),
            "--json",
        ])
        .json();
    assert_eq!(ours["ok"], true, "{ours}");
    let py_verb = if verb == "verify-proof" {
        "proof"
    } else {
        "dsse"
    };
    let (code, theirs) = independent(py_verb, file, pem);
    assert_eq!(code, 0, "{theirs}");
    (ours, theirs)
}

/// A ledger with a signing key, an admitted `dist/ca` and a passed fake-lane run;
/// returns the env, the repo's binary and the public key's PEM file.
fn signed_ledger() -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    let repo = env.repo("case");
    env.ok(["key", "generate"]);
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    env.ok(["run", "stage2"]);
    let pem = env.path("pub.pem");
    std::fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    (env, repo.bin(), pem)
}

/// Rewrites line `n` (1-based) of a file through `f`.
fn edit_line(path: &Path, n: usize, f: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut v: Value = serde_json::from_str(&lines[n - 1]).unwrap();
    f(&mut v);
    lines[n - 1] = v.to_string();
    let out = path.with_extension(format!("edited{n}.jsonl"));
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

/// Changes one hex digit of the first subject's sha256 inside an envelope's payload.
fn alter_subject(env: &mut Value) {
    let raw = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let mut st: Value = serde_json::from_slice(&raw).unwrap();
    let d = st["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let first = if d.starts_with('0') { '1' } else { '0' };
    let flipped = format!("{first}{}", &d[1..]);
    st["subject"][0]["digest"]["sha256"] = Value::String(flipped);
    env["payload"] = Value::String(B64.encode(serde_json::to_vec(&st).unwrap()));
}

#[test]
fn attestations_verify_offline_with_our_cli_and_securesystemslib_and_tampering_fails_both() {
    let (env, bin, pem) = signed_ledger();
    let adm = env.ok(["verify", s(&bin), "--json"]).json()["admissions"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = env.path("ca.intoto.jsonl");
    let w = env.ok(["attest", &adm, "-o", s(&file), "--json"]).json();
    assert_eq!(
        w["envelopes"],
        serde_json::json!(["https://slsa.dev/provenance/v1"])
    );

    let (ours, theirs) = both_accept(&env, "verify-attestation", &file, &pem, &bin);
    let sha = ours["subject"]["sha256"].as_str().unwrap();
    assert_eq!(theirs["envelopes"][0]["subjects"][0], sha);
    // The provenance names the commit as a real URI.
    let deps = &theirs["envelopes"][0]["predicate"]["buildDefinition"]["resolvedDependencies"];
    let uri = deps[0]["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("git+file:///") && uri.contains('@'),
        "{uri}"
    );

    // A run: provenance of the provider, test result, verification summary.
    let run = env.ok(["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rfile = env.path("run.intoto.jsonl");
    env.ok(["attest", &format!("run:{run}"), "-o", s(&rfile)]);
    let (code, theirs) = independent("dsse", &rfile, &pem);
    assert_eq!(code, 0, "{theirs}");
    let types: Vec<&str> = theirs["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["predicateType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "https://slsa.dev/provenance/v1",
            "https://in-toto.io/attestation/test-result/v0.1",
            "https://slsa.dev/verification_summary/v1"
        ]
    );
    let tests = &theirs["envelopes"][1]["predicate"];
    assert_eq!(tests["result"], "PASSED");
    let vsa = &theirs["envelopes"][2]["predicate"];
    assert_eq!(vsa["verificationResult"], "PASSED");
    assert_eq!(vsa["inputAttestations"].as_array().unwrap().len(), 2);
    assert!(vsa["policy"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("r1-string-slugify"));
    // The test-result's first subject is the run's report.json, byte for byte.
    let dir = PathBuf::from(
        env.ok(["runs", "--json"]).json()[0]["run_dir"]
            .as_str()
            .unwrap(),
    );
    let report = std::fs::read(dir.join("report.json")).unwrap();
    let report_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&report));
    assert_eq!(theirs["envelopes"][1]["subjects"][0], report_sha.as_str());

    // One altered subject digest (payload re-encoded): both verifiers refuse, naming the line.
    let bad = edit_line(&file, 1, alter_subject);
    let r = env.run(["verify-attestation", s(&bad), "--key", s(&pem)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("line 1: FAILED"), "{}", r.stdout);
    assert_eq!(independent("dsse", &bad, &pem).0, 1);
    // One flipped byte of the payload itself.
    let flipped = edit_line(&rfile, 3, |e| {
        let mut raw = B64.decode(e["payload"].as_str().unwrap()).unwrap();
        raw[10] ^= 1;
        e["payload"] = Value::String(B64.encode(raw));
    });
    let r = env.run([
        "verify-attestation",
        s(&flipped),
        "--key",
        s(&pem),
        "--json",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.json()["envelopes"][2]["problem"]
            .as_str()
            .map(|p| p.contains("does not verify")),
        Some(true)
    );
    assert_eq!(independent("dsse", &flipped, &pem).0, 1);
    // Another key: refused by both.
    let other = Env::new();
    other.ok(["key", "generate"]);
    let other_pem = other.path("other.pem");
    std::fs::write(&other_pem, other.ok(["key", "export"]).stdout).unwrap();
    assert_eq!(
        env.run(["verify-attestation", s(&file), "--key", s(&other_pem)])
            .code,
        1
    );
    assert_eq!(independent("dsse", &file, &other_pem).0, 1);
    // A file that is not a subject.
    let stranger = env.path("stranger");
    std::fs::write(&stranger, "x").unwrap();
    let r = env.run([
        "verify-attestation",
        s(&file),
        "--key",
        s(&pem),
        "--subject",
        s(&stranger),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("is NOT a subject"), "{}", r.stdout);
}

#[test]
fn an_auditor_with_one_checkpoint_and_the_public_key_verifies_an_admission_offline() {
    let (env, bin, pem) = signed_ledger();
    let note = env.path("cp.note");
    let signed = env.ok(["checkpoint", "--sign", "--json"]).json();
    std::fs::write(&note, signed["note"].as_str().unwrap()).unwrap();
    let size = signed["size"].as_u64().unwrap();
    assert_eq!(size, env.head().0);
    let (code, n) = independent("note", &note, &pem);
    assert_eq!(code, 0, "{n}");
    assert_eq!(n["size"], size);
    assert!(n["origin"].as_str().unwrap().starts_with("cto-ledger/"));

    let proof = env.path("proof.json");
    std::fs::write(&proof, env.ok(["prove", s(&bin)]).stdout).unwrap();
    let (ours, theirs) = both_accept(&env, "verify-proof", &proof, &pem, &bin);
    assert_eq!(ours["event"]["kind"], "admission");
    assert_eq!(theirs["event"]["kind"], "admission");
    assert_eq!(theirs["event"]["sha256"], ours["event"]["sha256"]);

    // Each byte that matters, flipped: a proof hash, the note's root, the event text.
    let tamper = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
        f(&mut v);
        let p = env.path(name);
        std::fs::write(&p, v.to_string()).unwrap();
        let r = env.run(["verify-proof", s(&p), "--key", s(&pem)]);
        assert_eq!(r.code, 1, "{name}: {}", r.stdout);
        assert_eq!(independent("proof", &p, &pem).0, 1, "{name}");
    };
    tamper("hash.json", &|v| {
        let mut h = B64.decode(v["hashes"][0].as_str().unwrap()).unwrap();
        h[0] ^= 1;
        v["hashes"][0] = Value::String(B64.encode(h));
    });
    tamper("root.json", &|v| {
        let note = v["checkpoint"].as_str().unwrap();
        let lines: Vec<&str> = note.split('\n').collect();
        let mut root = B64.decode(lines[2]).unwrap();
        root[7] ^= 1;
        let altered = note.replacen(lines[2], &B64.encode(root), 1);
        v["checkpoint"] = Value::String(altered);
    });
    tamper("event.json", &|v| {
        let e = v["entry"]["event"]
            .as_str()
            .unwrap()
            .replace("\"admission\"", "\"admissioN\"");
        v["entry"]["event"] = Value::String(e);
    });
    // The proof does not name another file.
    let stranger = env.path("stranger");
    std::fs::write(&stranger, "x").unwrap();
    assert_eq!(
        env.run([
            "verify-proof",
            s(&proof),
            "--key",
            s(&pem),
            "--subject",
            s(&stranger)
        ])
        .code,
        1
    );

    // More events, a second checkpoint, and the log's growth proven consistent.
    env.ok(["ingest", s(&stranger)]);
    env.ok(["checkpoint", "--sign"]);
    let cons = env.path("cons.json");
    std::fs::write(
        &cons,
        env.ok(["prove", "--consistency", &size.to_string()]).stdout,
    )
    .unwrap();
    let ours = env
        .ok(["verify-proof", s(&cons), "--key", s(&pem), "--json"])
        .json();
    assert_eq!(ours["ok"], true, "{ours}");
    let (code, theirs) = independent("proof", &cons, &pem);
    assert_eq!(code, 0, "{theirs}");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cons).unwrap()).unwrap();
    let mut h = B64.decode(v["old_root"].as_str().unwrap()).unwrap();
    h[0] ^= 1;
    v["old_root"] = Value::String(B64.encode(h));
    v.as_object_mut().unwrap().remove("old_checkpoint");
    std::fs::write(&cons, v.to_string()).unwrap();
    assert_eq!(
        env.run(["verify-proof", s(&cons), "--key", s(&pem)]).code,
        1
    );
    assert_eq!(independent("proof", &cons, &pem).0, 1);

    // audit accepts the note; an altered copy is a finding.
    assert!(env
        .ok(["audit", "--checkpoint", s(&note)])
        .stdout
        .contains("audit passed"));
    let text = std::fs::read_to_string(&note).unwrap();
    let altered = env.path("altered.note");
    std::fs::write(
        &altered,
        text.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size - 1), 1),
    )
    .unwrap();
    let r = env.run(["audit", "--checkpoint", s(&altered)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("FINDING [checkpoint]"), "{}", r.stdout);
}

#[test]
fn a_rewritten_journal_breaks_the_kept_signed_checkpoint_in_audit() {
    let (env, _, _) = signed_ledger();
    env.ok(["checkpoint", "--sign"]);
    assert!(env.ok(["audit"]).stdout.contains("audit passed"));
    // Someone with write access to the database re-chains the journal after changing
    // an event: the hash chain is consistent again, the signed checkpoint is not.
    env.rewrite_event(2, "tester", "mallory");
    let r = env.run(["audit", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let findings = r.json()["findings"].to_string();
    assert!(
        findings.contains("signed checkpoint of size")
            && findings.contains("history was rewritten"),
        "{findings}"
    );
}

#[test]
fn keys_rotate_and_revoke_and_bad_keys_are_refused_naming_the_path() {
    let env = Env::new();
    let f = env.path("f");
    std::fs::write(&f, "f\n").unwrap();
    env.ok(["ingest", s(&f)]);
    let key_path = env.path(".config/cto-ledger/signing-key");

    // No key yet: exit 2 naming the path and `key generate`; nothing written.
    let head = env.head();
    let r = env.run(["checkpoint", "--sign"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(s(&key_path)) && r.stderr.contains("key generate"),
        "{}",
        r.stderr
    );
    assert_eq!(env.head(), head);

    let g = env.ok(["key", "generate", "--json"]).json();
    let first = g["keyid"].as_str().unwrap().to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        env.run(["key", "generate"]).code,
        2,
        "a second generate is refused"
    );
    // keyid = SHA-256 of the DER SubjectPublicKeyInfo, as the PEM carries it.
    let pem = env.ok(["key", "export"]).stdout;
    let der = B64
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der)),
        first
    );
    let old_pem = env.path("old.pem");
    std::fs::write(&old_pem, &pem).unwrap();
    let before = env.path("before.intoto.jsonl");
    env.ok(["attest", s(&f), "-o", s(&before)]);

    // Group-readable: refused, naming the path and the fix.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = env.run(["attest", s(&f)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(s(&key_path)) && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Rotate: a new current key; the old one is retired and still verifies what it signed.
    let rot = env.ok(["key", "rotate", "--json"]).json();
    assert_eq!(rot["replaces"], first.as_str());
    let list = env.ok(["key", "list", "--json"]).json();
    assert_eq!(list[0]["status"], "retired");
    assert_eq!(list[1]["status"], "active");
    assert_eq!(list[1]["current"], true);
    env.ok(["verify-attestation", s(&before), "--key", s(&old_pem)]);
    let exported_old = env.ok(["key", "export", &first[..12]]).stdout;
    assert_eq!(exported_old, pem);

    // Revoke the new key: nothing more is signed with it; verification names the revocation.
    let new = rot["keyid"].as_str().unwrap().to_string();
    let new_pem = env.path("new.pem");
    std::fs::write(&new_pem, env.ok(["key", "export"]).stdout).unwrap();
    let after = env.path("after.intoto.jsonl");
    env.ok(["attest", s(&f), "-o", s(&after)]);
    env.ok(["key", "revoke", &new[..10], "--reason", "laptop lost"]);
    let r = env.run(["attest", s(&f)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("revoked") && r.stderr.contains("key rotate"),
        "{}",
        r.stderr
    );
    let r = env.run(["verify-attestation", s(&after), "--key", s(&new_pem)]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("laptop lost"), "{}", r.stdout);
    assert_eq!(
        env.run(["key", "revoke", &new[..10], "--reason", "again"])
            .code,
        2
    );

    // A key inside the ledger home is refused.
    let mut inside = Env::new();
    inside.vars.push((
        "CTO_LEDGER_KEY".into(),
        s(&inside.ledger.join("signing-key")).into(),
    ));
    inside.ok(["init"]);
    let r = inside.run(["key", "generate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("inside the ledger home"), "{}", r.stderr);
    assert!(!inside.ledger.join("signing-key").exists());
}

#[test]
fn malformed_envelopes_notes_and_proofs_exit_2_and_write_nothing() {
    let (env, _, pem) = signed_ledger();
    let head = env.head();
    let junk = env.path("junk");
    std::fs::write(&junk, "{\"not\": \"an envelope\"}\n").unwrap();
    let r = env.run(["verify-attestation", s(&junk), "--key", s(&pem)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    assert_eq!(
        env.run(["verify-attestation", "/no/such/file", "--key", s(&pem)])
            .code,
        2
    );
    assert_eq!(
        env.run(["verify-attestation", s(&junk), "--key", "/no/such/key.pem"])
            .code,
        2
    );
    assert_eq!(
        env.run(["verify-attestation", s(&junk), "--key", s(&junk)])
            .code,
        2
    );
    let r = env.run(["verify-proof", s(&junk), "--key", s(&pem)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not a proof"), "{}", r.stderr);
    std::fs::write(&junk, "cto-ledger/x\n3\nnot base64\n\n— k AAAA\n").unwrap();
    let r = env.run(["audit", "--checkpoint", s(&junk)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a signed note"), "{}", r.stderr);
    assert_eq!(
        env.run(["prove", "99999"]).code,
        2,
        "no checkpoint covers it"
    );
    env.ok(["checkpoint", "--sign"]);
    assert_eq!(env.run(["prove", "99999"]).code, 2, "past the checkpoint");
    assert_eq!(env.run(["prove", "--consistency", "99999"]).code, 2);
    assert_eq!(
        env.run(["prove", "--consistency", "1", "2"]).code,
        2,
        "no checkpoint of size 2"
    );
    assert_eq!(env.head(), head, "nothing was written");
}

#[test]
fn the_provider_never_sees_the_signing_key_path() {
    let mut env = Env::new();
    let key = env.path("keys/k");
    env.vars.push(("CTO_LEDGER_KEY".into(), s(&key).into()));
    env.ok(["key", "generate"]);
    let run = env.ok(["run", "stage2", "--json"]).json();
    let names = run["env_names"].to_string();
    assert!(!names.contains("CTO_LEDGER_KEY"), "{names}");
    let dir = PathBuf::from(
        env.ok(["runs", "--json"]).json()[0]["run_dir"]
            .as_str()
            .unwrap(),
    );
    for entry in walkdir::WalkDir::new(&dir) {
        let p = entry.unwrap().into_path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("BEGIN PRIVATE KEY"),
                "{} holds the private key",
                p.display()
            );
        }
    }
}
