//! Evidence bundles (`export run:ID --bundle`, `verify-bundle`): a bundle carried to
//! another folder with a fresh HOME and no ledger verifies with our CLI and, piece by
//! piece, with verifiers we did not write (npm's @sigstore/verify, securesystemslib, an
//! RFC 9162 / C2SP tlog-proof verifier in Python); then every member is broken on
//! purpose, with and without a rewritten manifest, and each break is named.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::signing::independent;
use crate::util::*;

/// A ledger with a key, a provider built from a repo (not the shipped fake, so it
/// solves through the scripted model), admitted with its model; one passed run.
/// Returns the env, the run id, the provider's path and the public key.
pub(crate) fn run_ledger() -> (Env, String, PathBuf, PathBuf) {
    let env = Env::new();
    let repo = env.repo("case");
    let mut bytes = fs::read(FAKE).unwrap();
    bytes.push(1);
    fs::write(repo.bin(), bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(repo.bin(), fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(["key", "generate"]);
    env.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let report = env.agent_run(&repo.bin());
    assert_eq!(report["verdict"], "pass", "{report}");
    let pem = env.path("pub.pem");
    fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    let id = report["run_id"].as_str().unwrap().to_string();
    (env, id, repo.bin(), pem)
}

/// An auditor's folder: a fresh HOME, no ledger, a copy of the bundle and the key.
pub(crate) fn auditor(bundle: &Path, pem: &Path) -> (Env, PathBuf, PathBuf) {
    let a = Env::new();
    let (b, k) = (a.path("evidence.tar"), a.path("signer.pem"));
    fs::copy(bundle, &b).unwrap();
    fs::copy(pem, &k).unwrap();
    (a, b, k)
}

pub(crate) fn members(tar: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(tar).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_str().unwrap().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.push((path, b));
    }
    out
}

pub(crate) fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(Vec::new());
    for (p, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, p, bytes.as_slice()).unwrap();
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

pub(crate) fn sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// The members with the manifest's entries rewritten to match them (what a forger who
/// edits the bundle does: the manifest is not signed).
fn remanifest(mut m: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let digests: BTreeMap<String, (u64, String)> = m
        .iter()
        .map(|(p, b)| (p.clone(), (b.len() as u64, sha256(b))))
        .collect();
    let i = m.iter().position(|(p, _)| p == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m[i].1).unwrap();
    let files = manifest["files"].as_array_mut().unwrap();
    files.retain(|f| f["withheld"] == true || digests.contains_key(f["path"].as_str().unwrap()));
    for f in files.iter_mut() {
        if let Some((size, d)) = digests.get(f["path"].as_str().unwrap()) {
            f["size"] = (*size).into();
            f["sha256"] = d.clone().into();
        }
    }
    m[i].1 = serde_json::to_vec(&manifest).unwrap();
    m
}

/// `verify-bundle --json` of `tar`: (exit code, answer).
fn verify(env: &Env, tar: &Path, pem: &Path) -> (i32, Value) {
    let r = env.run(["verify-bundle", s(tar), "--key", s(pem), "--json"]);
    let v = if r.stdout.trim().is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.code, v)
}

fn first_piece(v: &Value) -> String {
    v["problems"][0]["piece"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn node_verify(bundle: &Path, pem: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers/sigstore/verify.mjs");
    let modules = script.with_file_name("node_modules");
    assert!(
        modules.exists(),
        "@sigstore/verify is not installed: run `bash .ci/run`, or `npm ci --prefix tests/verifiers/sigstore --ignore-scripts`"
    );
    let out = Command::new("node")
        .arg(&script)
        .arg(bundle)
        .arg(pem)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify.mjs printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.success(), v["ok"] == true, "{v}");
    v
}

#[test]
fn a_run_bundle_verifies_anywhere_with_our_cli_and_with_tools_we_did_not_write() {
    let (env, id, provider, pem) = run_ledger();
    let bundle = env.path("run.bundle.tar");
    let wrote = env
        .ok([
            "export",
            &format!("run:{id}"),
            "--bundle",
            s(&bundle),
            "--json",
        ])
        .json();
    assert_eq!(wrote["signed_checkpoint"], true, "{wrote}");
    let (a, tar, key) = auditor(&bundle, &pem);
    assert!(!a.ledger.exists());
    let (code, v) = verify(&a, &tar, &key);
    assert_eq!(code, 0, "{v}");
    let p = &v["proven"];
    assert_eq!(p["verdict"], "pass");
    assert_eq!(p["provider_sha256"], sha256(&fs::read(&provider).unwrap()));
    assert_eq!(p["model"], "scripted/r1-string-slugify");
    assert!(p["model_admission"].as_str().unwrap().starts_with("mod_"));
    assert!(
        p["registered_at"].as_u64().unwrap() < p["ended_at"].as_u64().unwrap(),
        "{v}"
    );
    assert!(p["sandbox_enforced"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "filesystem"));
    assert_eq!(v["attestations"].as_array().unwrap().len(), 3, "{v}");
    // The text a person reads says the same.
    let text = a.run(["verify-bundle", s(&tar), "--key", s(&key)]).stdout;
    for want in [
        "verdict     pass",
        "registered  at log index",
        "ended       at log index",
        "no revocation of it is in this bundle",
    ] {
        assert!(text.contains(want), "{text}");
    }

    // Each piece, by a verifier we did not write.
    let out = a.path("x");
    fs::create_dir(&out).unwrap();
    let st = Command::new("tar")
        .arg("xf")
        .arg(&tar)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let keyid = v["keyid"].as_str().unwrap();
    let (mut sigstore, mut dsse, mut proofs) = (0, 0, 0);
    for e in fs::read_dir(out.join("attestations")).unwrap() {
        let f = e.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".sigstore.json") {
            let r = node_verify(&f, &key);
            assert_eq!(r["ok"], true, "{name}: {r}");
            assert_eq!(r["keyid"], keyid, "{name}: {r}");
            sigstore += 1;
        } else {
            let (code, r) = independent("dsse", &f, &key);
            assert_eq!(code, 0, "{name}: {r}");
            dsse += 1;
        }
    }
    for e in fs::read_dir(out.join("log")).unwrap() {
        let f = e.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let verb = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("tlog-proof") => "tlog-proof",
            Some("json") => "proof",
            _ => "note",
        };
        let (code, r) = independent(verb, &f, &key);
        assert_eq!(code, 0, "{name}: {r}");
        proofs += 1;
    }
    // run-start, run, provider and model admission: JSON and text each, and the note.
    assert_eq!((sigstore, dsse, proofs), (3, 3, 9));
    assert!(out.join("evidence/backend/model-transcript.jsonl").exists());
    let diff = fs::read_to_string(out.join("changes/workspace.diff")).unwrap();
    assert!(diff.contains("+++ b/strings.py"), "{diff}");

    // The Sigstore verifier refuses what it should: another key, an altered signature.
    let other = a.path("other.pem");
    env.ok(["key", "rotate"]);
    fs::write(&other, env.ok(["key", "export"]).stdout).unwrap();
    let vsa = out.join("attestations/3-verification-summary.sigstore.json");
    assert_eq!(node_verify(&vsa, &other)["ok"], false);
    let mut b: Value = serde_json::from_slice(&fs::read(&vsa).unwrap()).unwrap();
    let sig = b["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    b["dsseEnvelope"]["signatures"][0]["sig"] = format!("{flipped}{}", &sig[1..]).into();
    fs::write(&vsa, b.to_string()).unwrap();
    assert_eq!(node_verify(&vsa, &key)["ok"], false);
    let (code, v) = verify(&a, &tar, &other);
    assert_eq!((code, first_piece(&v)), (1, "--key".to_string()), "{v}");
}

#[test]
fn every_member_altered_reordered_or_dropped_fails_naming_the_piece() {
    let (env, id, _, pem) = run_ledger();
    let bundle = env.path("run.bundle.tar");
    env.ok(["export", &format!("run:{id}"), "--bundle", s(&bundle)]);
    let (a, _, key) = auditor(&bundle, &pem);
    let good = members(&bundle);
    let broken = a.path("broken.tar");
    let flip = |b: &mut Vec<u8>| {
        if b.is_empty() {
            b.push(b'x');
        } else {
            let i = b.len() / 2;
            b[i] ^= 1;
        }
    };
    for (i, (path, _)) in good.iter().enumerate() {
        // One byte changed: named by the manifest's digest.
        let mut m = good.clone();
        flip(&mut m[i].1);
        write_tar(&broken, &m);
        let (code, v) = verify(&a, &broken, &key);
        assert_eq!(code, 1, "{path}: {v}");
        if path != "manifest.json" {
            assert_eq!(first_piece(&v), *path, "{v}");
            // And with the manifest rewritten to match, the chain still catches it.
            write_tar(&broken, &remanifest(m));
            let (code, v) = verify(&a, &broken, &key);
            assert_eq!(code, 1, "{path} with a matching manifest verified: {v}");
            let named: Vec<&str> = v["problems"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["piece"].as_str())
                .collect();
            let binds = if path.starts_with("objects/") {
                "changes/workspace.diff"
            } else {
                path.as_str()
            };
            assert!(named.contains(&binds), "{path}: {v}");
        }
    }
    // The two events swapped: the run's proof now proves the registration.
    let swap = |p: &str| match p {
        "log/run.proof.json" => "log/run-start.proof.json".to_string(),
        "log/run-start.proof.json" => "log/run.proof.json".to_string(),
        "log/run.tlog-proof" => "log/run-start.tlog-proof".to_string(),
        "log/run-start.tlog-proof" => "log/run.tlog-proof".to_string(),
        other => other.to_string(),
    };
    let swapped: Vec<_> = good.iter().map(|(p, b)| (swap(p), b.clone())).collect();
    write_tar(&broken, &remanifest(swapped));
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!(
        (code, first_piece(&v)),
        (1, "log/run.proof.json".into()),
        "{v}"
    );
    // A proof dropped (with its manifest entry): the registration is missing.
    for dropped in [
        "log/run-start.proof.json",
        "log/provider-admission.proof.json",
    ] {
        let m: Vec<_> = good.iter().filter(|(p, _)| p != dropped).cloned().collect();
        write_tar(&broken, &remanifest(m));
        let (code, v) = verify(&a, &broken, &key);
        assert_eq!((code, first_piece(&v)), (1, dropped.to_string()), "{v}");
    }
    // A member the manifest does not list, and hostile tar members, are refused.
    let mut m = good.clone();
    m.push(("extra.txt".into(), b"hi".to_vec()));
    write_tar(&broken, &m);
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!((code, first_piece(&v)), (1, "extra.txt".into()), "{v}");
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "manifest.json", "/etc/passwd")
            .unwrap();
        b.finish().unwrap();
    }
    fs::write(&broken, &raw).unwrap();
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!((code, first_piece(&v)), (1, "bundle".into()), "{v}");
    fs::write(
        &broken,
        b"not a tar at all, just text that is long enough to be a header? no",
    )
    .unwrap();
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!(code, 1, "{v}");
    let r = a.run(["verify-bundle", s(&a.path("absent.tar")), "--key", s(&key)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("absent.tar"), "{}", r.stderr);
}

#[test]
fn withheld_evidence_keeps_its_digest_and_the_rest_still_verifies() {
    let (env, id, _, pem) = run_ledger();
    let bundle = env.path("redacted.tar");
    let run = format!("run:{id}");
    let wrote = env
        .ok([
            "export",
            &run,
            "--bundle",
            s(&bundle),
            "--withhold",
            "backend/model-transcript.jsonl",
            "--withhold",
            "changes/workspace.diff",
            "--json",
        ])
        .json();
    assert_eq!(wrote["withheld"].as_array().unwrap().len(), 2, "{wrote}");
    let (a, tar, key) = auditor(&bundle, &pem);
    let (code, v) = verify(&a, &tar, &key);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["withheld"].as_array().unwrap().len(), 2, "{v}");
    let names: Vec<String> = members(&tar).into_iter().map(|(p, _)| p).collect();
    assert!(!names
        .iter()
        .any(|p| p.ends_with("model-transcript.jsonl") || p.starts_with("objects/")));
    // A withheld digest changed in the manifest no longer matches the signed report.
    let mut m = members(&tar);
    let i = m.iter().position(|(p, _)| p == "manifest.json").unwrap();
    let text = String::from_utf8(m[i].1.clone()).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["path"] == "evidence/backend/model-transcript.jsonl" {
            f["sha256"] = sha256(b"something else").into();
        }
    }
    m[i].1 = serde_json::to_vec(&manifest).unwrap();
    let broken = a.path("broken.tar");
    write_tar(&broken, &m);
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        first_piece(&v),
        "evidence/backend/model-transcript.jsonl",
        "{v}"
    );
    // What binds the rest cannot be withheld; an unknown path names the choices.
    let withhold = |what: &str| {
        let out = s(&env.path("x.tar")).to_string();
        env.run(["export", &run, "--bundle", &out, "--withhold", what])
    };
    let r = withhold("report.json");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("binds"), "{}", r.stderr);
    let r = withhold("nope");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("backend/tests.log"), "{}", r.stderr);
    assert!(!env.path("x.tar").exists());
}

#[test]
fn an_admission_bundle_verifies_and_a_bundle_needs_a_signing_key() {
    let (env, _, provider, pem) = run_ledger();
    let bundle = env.path("adm.tar");
    env.ok(["export", s(&provider), "--bundle", s(&bundle)]);
    let (a, tar, key) = auditor(&bundle, &pem);
    let (code, v) = verify(&a, &tar, &key);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["subject"].as_str().unwrap().starts_with("admission:adm_"),
        "{v}"
    );
    assert_eq!(
        v["proven"]["provider_sha256"],
        sha256(&fs::read(&provider).unwrap())
    );
    // No key on this host: no bundle, and nothing written.
    let bare = Env::new();
    bare.ok(["init"]);
    let id = bare.ok(["run", "stage2", "--json"]).json()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = bare.run([
        "export",
        &format!("run:{id}"),
        "--bundle",
        s(&bare.path("b.tar")),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("key"), "{}", r.stderr);
    assert!(!bare.path("b.tar").exists());
}

/// The manifest entry of `path`, edited by `f` (the manifest is not signed: anyone can).
fn edit_manifest(m: &mut [(String, Vec<u8>)], f: impl FnOnce(&mut Vec<Value>)) {
    let i = m.iter().position(|(p, _)| p == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m[i].1).unwrap();
    f(manifest["files"].as_array_mut().unwrap());
    m[i].1 = serde_json::to_vec(&manifest).unwrap();
}

#[test]
fn what_binds_the_rest_cannot_be_withheld_relabelled_or_padded() {
    let (env, id, provider, pem) = run_ledger();
    let bundle = env.path("run.tar");
    env.ok(["export", &format!("run:{id}"), "--bundle", s(&bundle)]);
    let (a, _, key) = auditor(&bundle, &pem);
    let good = members(&bundle);
    let broken = a.path("broken.tar");
    let refused = |m: &[(String, Vec<u8>)], piece: &str| {
        write_tar(&broken, m);
        let (code, v) = verify(&a, &broken, &key);
        assert_eq!(code, 1, "verified: {v}");
        let pieces: Vec<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["piece"].as_str())
            .collect();
        assert!(pieces.contains(&piece), "{piece} not named: {v}");
    };
    // The checkpoint, the report or a proof marked withheld and left out.
    for (path, piece) in [
        ("log/checkpoint", "log/checkpoint"),
        ("evidence/report.json", "evidence/report.json"),
        ("log/run.proof.json", "log/run.proof.json"),
        (
            "attestations/1-provenance.sigstore.json",
            "attestations/1-provenance.sigstore.json",
        ),
    ] {
        let mut m: Vec<_> = good.iter().filter(|(p, _)| p != path).cloned().collect();
        edit_manifest(&mut m, |files| {
            for f in files.iter_mut().filter(|f| f["path"] == path) {
                f["withheld"] = true.into();
            }
        });
        refused(&m, piece);
    }
    // A member no bundle has, or one relabelled as another role, rides along: refused.
    let mut m = good.clone();
    m.push(("report-final.json".into(), b"{}".to_vec()));
    let mut m = remanifest_with(m, "report-final.json", "object");
    refused(&m, "manifest.json");
    let evil = "objects/".to_string() + &"ab".repeat(32);
    m.retain(|(p, _)| p != "report-final.json");
    m.push((evil.clone(), b"unused".to_vec()));
    let m = remanifest_with(m, &evil, "object");
    refused(&m, &evil);
    let mut m = good.clone();
    m.push((
        "evidence/backend/forged.log".into(),
        b"Ran 7 tests OK".to_vec(),
    ));
    let m = remanifest_with(m, "evidence/backend/forged.log", "object");
    refused(&m, "evidence/backend/forged.log");
    // The diff left out, manifest and all: the report records the trees it is the diff of.
    let m: Vec<_> = good
        .iter()
        .filter(|(p, _)| p != "changes/workspace.diff" && !p.starts_with("objects/"))
        .cloned()
        .collect();
    refused(&remanifest(m), "changes/workspace.diff");
    // A run's bundle relabelled as an admission's.
    let mut m = good.clone();
    let i = m.iter().position(|(p, _)| p == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m[i].1).unwrap();
    let adm = env.ok(["show", s(&provider), "--json"]).json();
    let adm_id = adm.to_string();
    let adm_id = adm_id
        .split("adm_")
        .nth(1)
        .map(|r| format!("adm_{}", &r[..16]))
        .unwrap();
    manifest["subject"] = format!("admission:{adm_id}").into();
    m[i].1 = serde_json::to_vec(&manifest).unwrap();
    refused(&m, "evidence/report.json");
    // A PAX extension header (readers disagree about those) is refused as such.
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let pax = b"30 path=evidence/report.json\n";
        h.set_size(pax.len() as u64);
        b.append_data(&mut h, "PaxHeader", &pax[..]).unwrap();
        for (p, bytes) in &good {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, bytes.as_slice()).unwrap();
        }
        b.finish().unwrap();
    }
    fs::write(&broken, &raw).unwrap();
    let (code, v) = verify(&a, &broken, &key);
    assert_eq!((code, first_piece(&v)), (1, "bundle".into()), "{v}");
}

/// `m` with the manifest rewritten to match, `extra` listed under `role`.
fn remanifest_with(m: Vec<(String, Vec<u8>)>, extra: &str, role: &str) -> Vec<(String, Vec<u8>)> {
    let mut m = m;
    let bytes = m.iter().find(|(p, _)| p == extra).unwrap().1.clone();
    edit_manifest(&mut m, |files| {
        files.push(serde_json::json!({"path": extra, "role": role, "size": bytes.len(), "sha256": sha256(&bytes)}))
    });
    remanifest(m)
}

#[test]
fn a_revoked_provider_odd_names_and_operator_mistakes() {
    let (env, id, provider, pem) = run_ledger();
    let run = format!("run:{id}");
    // A failed --withhold signs nothing; a FIFO or folder as the output is not replaced.
    let count = |env: &Env| {
        env.ok(["sql", "SELECT count(*) AS n FROM checkpoints", "--json"])
            .stdout
    };
    let before = count(&env);
    let r = env.run([
        "export",
        &run,
        "--bundle",
        s(&env.path("x.tar")),
        "--withhold",
        "nosuch",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(count(&env), before, "a refused export signed a checkpoint");
    let fifo = env.path("fifo");
    mkfifo(&fifo);
    let r = env.run(["export", &run, "--bundle", s(&fifo)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    // Revoked after the run: the bundle proves the revocation, and fails saying so.
    let adm = env.ok(["show", s(&provider), "--json"]).json().to_string();
    let adm_id = adm
        .split("adm_")
        .nth(1)
        .map(|r| format!("adm_{}", &r[..16]))
        .unwrap();
    env.ok(["revoke", &adm_id, "--reason", "built from a poisoned cache"]);
    let bundle = env.path("revoked.tar");
    env.ok(["export", &run, "--bundle", s(&bundle)]);
    let (a, tar, key) = auditor(&bundle, &pem);
    let (code, v) = verify(&a, &tar, &key);
    assert_eq!(code, 1, "{v}");
    assert_eq!(first_piece(&v), "log/provider-admission.proof.json", "{v}");
    assert!(v.to_string().contains("poisoned cache"), "{v}");
    // Stripping the revocation from the proof (the proofs are not signed as a whole)
    // leaves the signed provenance, which says it.
    let mut m = members(&tar);
    let i = m
        .iter()
        .position(|(p, _)| p == "log/provider-admission.proof.json")
        .unwrap();
    let mut proof: Value = serde_json::from_slice(&m[i].1).unwrap();
    proof.as_object_mut().unwrap().remove("revoked_by");
    m[i].1 = serde_json::to_vec(&proof).unwrap();
    let stripped = a.path("stripped.tar");
    write_tar(&stripped, &remanifest(m));
    let (code, v) = verify(&a, &stripped, &key);
    assert_eq!(code, 1, "{v}");
    assert!(
        v.to_string()
            .contains("signed provenance says the admission was revoked"),
        "{v}"
    );

    // Names no tar reader agrees on travel under their digest, and verify.
    let odd = Env::new();
    odd.ok(["key", "generate"]);
    let id = odd
        .ok(["run", "stage2", "--fake-behavior", "odd-names", "--json"])
        .json()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle = odd.path("odd.tar");
    odd.ok(["export", &format!("run:{id}"), "--bundle", s(&bundle)]);
    let pem = odd.path("pub.pem");
    fs::write(&pem, odd.ok(["key", "export"]).stdout).unwrap();
    let (code, v) = verify(&odd, &bundle, &pem);
    assert_eq!(code, 0, "{v}");
    assert!(members(&bundle)
        .iter()
        .any(|(p, _)| p.starts_with("evidence/by-digest/")));
}
