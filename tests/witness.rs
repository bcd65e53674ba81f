//! Witnesses (C2SP tlog-witness and tlog-cosignature): three `witness serve` processes on
//! loopback cosign a ledger's checkpoints; proofs verify with a quorum of two and fail
//! with one; a witness killed with SIGKILL and restarted remembers what it cosigned; a
//! second history signed with the same log key (a copied ledger that diverged) never
//! gets a cosignature, so it never reaches the quorum. Cosignatures are checked by a
//! verifier written from the spec with Python's `cryptography`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::signing::independent;
use crate::util::*;

struct Witness {
    child: Child,
    url: String,
    vkey: String,
    args: Vec<String>,
}

impl Witness {
    fn start(env: &Env, i: usize, origin: &str, pem: &std::path::Path) -> Witness {
        let key = env.path(&format!("w{i}.key"));
        let name = format!("w{i}.example");
        env.ok(["witness", "key", s(&key), "--name", &name]);
        let args = vec![
            "witness".to_string(),
            "serve".into(),
            "--key".into(),
            s(&key).into(),
            "--name".into(),
            name,
            "--log".into(),
            format!("{origin}={}", s(pem)),
            "--state".into(),
            s(&env.path(&format!("w{i}.db"))).into(),
        ];
        Self::spawn(env, args)
    }

    fn spawn(env: &Env, args: Vec<String>) -> Witness {
        let mut child = env.cmd(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        line.clear();
        out.read_line(&mut line).unwrap();
        let vkey = line.trim().strip_prefix("vkey ").unwrap().to_string();
        Witness {
            child,
            url,
            vkey,
            args,
        }
    }

    /// SIGKILL, then the same witness again (same key, state file; a new port).
    fn restart(&mut self, env: &Env) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let args = self.args.clone();
        *self = Self::spawn(env, args);
    }

    /// The size it last cosigned, asked as the spec lets a client: `old 0` and a 409.
    fn size(&self, note: &str) -> u64 {
        let (status, body) = post(&self.url, &format!("old 0\n\n{note}"));
        match status {
            409 => body.trim().parse().unwrap(),
            _ => panic!("expected 409 with a size, got {status}: {body}"),
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(url: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut c = TcpStream::connect(addr).unwrap();
    write!(c, "POST /add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn sign(env: &Env, witnesses: &[&Witness]) -> (i32, Value) {
    let mut args = vec!["checkpoint".to_string(), "--sign".into(), "--json".into()];
    for w in witnesses {
        args.push("--witness".into());
        args.push(format!("{}@{}", w.vkey, w.url));
    }
    let r = env.run(&args);
    (r.code, r.json())
}

/// The log's public key as a PEM file, and its origin (a signed checkpoint's first line).
fn log_key_and_origin(env: &Env) -> (std::path::PathBuf, String) {
    let pem = env.path("log.pem");
    std::fs::write(&pem, env.ok(["key", "export"]).stdout).unwrap();
    let (_, first) = sign(env, &[]);
    let origin = first["note"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    (pem, origin)
}

fn ingest(env: &Env, name: &str) {
    let f = env.path(name);
    std::fs::write(&f, name).unwrap();
    env.ok(["ingest", s(&f)]);
}

fn verify(
    env: &Env,
    proof: &std::path::Path,
    pem: &std::path::Path,
    vkeys: &[&str],
    quorum: usize,
) -> (i32, String) {
    let mut args = vec![
        "verify-proof".to_string(),
        s(proof).into(),
        "--key".into(),
        s(pem).into(),
    ];
    for v in vkeys {
        args.push("--witness-key".into());
        args.push(v.to_string());
    }
    args.extend(["--quorum".into(), quorum.to_string()]);
    let r = env.run(&args);
    (r.code, r.stdout)
}

#[test]
fn three_witnesses_a_quorum_of_two_a_killed_witness_and_a_split_view() {
    let env = Env::new();
    env.ok(["key", "generate"]);
    ingest(&env, "a");
    let (pem, origin) = log_key_and_origin(&env);
    let mut ws: Vec<Witness> = (1..=3)
        .map(|i| Witness::start(&env, i, &origin, &pem))
        .collect();
    let vkeys: Vec<String> = ws.iter().map(|w| w.vkey.clone()).collect();
    let vk: Vec<&str> = vkeys.iter().map(String::as_str).collect();

    // All three cosign; the proof verifies with two of three, by us and by Python.
    let (code, signed) = sign(&env, &ws.iter().collect::<Vec<_>>());
    assert_eq!(code, 0, "{signed}");
    let note = signed["note"].as_str().unwrap().to_string();
    assert_eq!(
        note.lines().filter(|l| l.starts_with('\u{2014}')).count(),
        4,
        "{note}"
    );
    let note_file = env.path("cosigned.note");
    std::fs::write(&note_file, &note).unwrap();
    for v in &vk {
        let (c, out) = crate::signing::independent_arg("cosig", &note_file, v);
        assert_eq!(c, 0, "{out}");
    }
    let (c, out) = independent("note", &note_file, &pem);
    assert_eq!(
        c, 0,
        "the log's own signature still verifies beside the cosignatures: {out}"
    );
    let proof = env.path("proof.json");
    std::fs::write(&proof, env.ok(["prove", "1"]).stdout).unwrap();
    assert_eq!(verify(&env, &proof, &pem, &vk, 2).0, 0);
    // With one cosignature left, a quorum of two fails.
    let mut p: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let one: String = note
        .lines()
        .filter(|l| !l.starts_with("\u{2014} w2") && !l.starts_with("\u{2014} w3"))
        .map(|l| format!("{l}\n"))
        .collect();
    p["checkpoint"] = one.into();
    let thin = env.path("thin.json");
    std::fs::write(&thin, p.to_string()).unwrap();
    let (c, out) = verify(&env, &thin, &pem, &vk, 2);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("fewer than the quorum of 2"), "{out}");
    assert_eq!(verify(&env, &thin, &pem, &vk, 1).0, 0);
    // `audit --checkpoint NOTE` holds the note to the same quorum.
    let thin_note = env.path("thin.note");
    std::fs::write(&thin_note, p["checkpoint"].as_str().unwrap()).unwrap();
    let audit = |file: &std::path::Path, quorum: &str| {
        let mut args = vec!["audit", "--checkpoint", s(file)];
        for v in &vk {
            args.extend(["--witness-key", v]);
        }
        args.extend(["--quorum", quorum]);
        env.run(args)
    };
    assert_eq!(audit(&note_file, "3").code, 0);
    let r = audit(&thin_note, "2");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("fewer than the quorum of 2"),
        "{}",
        r.stdout
    );
    assert_eq!(audit(&thin_note, "1").code, 0);

    // The log grows; witnesses take it from the size they cosigned (409, then a proof).
    ingest(&env, "b");
    let (code, signed) = sign(&env, &ws.iter().collect::<Vec<_>>());
    assert_eq!(code, 0, "{signed}");
    let size = signed["size"].as_u64().unwrap();

    // SIGKILL between requests and mid-request: a restarted witness never forgets a
    // size it cosigned.
    ws[0].restart(&env);
    assert_eq!(ws[0].size(&note), size);
    for round in 0..4u64 {
        ingest(&env, &format!("k{round}"));
        let asked = format!("{}@{}", ws[0].vkey, ws[0].url);
        let mut c = env.cmd(["checkpoint", "--sign", "--json", "--witness", &asked]);
        let child = c.stdout(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(round * 15));
        ws[0].restart(&env);
        let out = child.wait_with_output().unwrap();
        let got: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let remembered = ws[0].size(&note);
        if got["witnesses"][0]["cosignature"].is_string() {
            assert!(
                remembered >= got["size"].as_u64().unwrap(),
                "round {round}: forgot a cosigned size"
            );
        }
    }
    for w in &mut ws[1..] {
        w.restart(&env);
    }
    let (code, signed) = sign(&env, &ws.iter().collect::<Vec<_>>());
    assert_eq!(code, 0, "{signed}");

    // A hostile witness answers with lines that are not its cosignature (one under the
    // log's own name, one under its own name, junk): nothing it says enters the note.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil = format!("http://{}", listener.local_addr().unwrap());
    let w1_name = ws[0].vkey.split('+').next().unwrap().to_string();
    let junk = format!("\u{2014} {origin} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    let forged = format!("\u{2014} {w1_name} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    let answers = [junk, forged];
    let server = std::thread::spawn(move || {
        for answer in answers {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    for _ in 0..2 {
        ingest(&env, "more");
        let asked = format!("{}@{evil}", ws[0].vkey);
        let r = env.run(["checkpoint", "--sign", "--json", "--witness", &asked]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        let v = r.json();
        assert!(v["witnesses"][0]["cosignature"].is_null(), "{v}");
        assert_eq!(
            v["note"]
                .as_str()
                .unwrap()
                .lines()
                .filter(|l| l.starts_with('\u{2014}'))
                .count(),
            1,
            "{v}"
        );
    }
    server.join().unwrap();
    env.ok(["audit"]);

    // A split view: a copy of the ledger, with the same log key, diverges.
    let fork = Env::new();
    copy_dir(&env.ledger, &fork.ledger);
    let key = ".config/cto-ledger/signing-key";
    std::fs::create_dir_all(fork.path(key).parent().unwrap()).unwrap();
    std::fs::copy(env.path(key), fork.path(key)).unwrap();
    ingest(&env, "honest");
    assert_eq!(sign(&env, &ws.iter().collect::<Vec<_>>()).0, 0);
    ingest(&fork, "forked");
    let (code, forked) = sign(&fork, &ws.iter().collect::<Vec<_>>());
    assert_eq!(code, 1, "a witness cosigned a forked history: {forked}");
    for w in forked["witnesses"].as_array().unwrap() {
        assert!(w["cosignature"].is_null(), "{w}");
        assert!(
            w["refused"].as_str().unwrap().contains("422")
                || w["refused"].as_str().unwrap().contains("409"),
            "{w}"
        );
    }
    let fork_proof = fork.path("proof.json");
    std::fs::write(&fork_proof, fork.ok(["prove", "1"]).stdout).unwrap();
    let (c, out) = verify(&fork, &fork_proof, &pem, &vk, 2);
    assert_eq!(c, 1, "the forked history reached the quorum: {out}");

    // An evidence bundle carries the cosigned checkpoint; verify-bundle holds it to the quorum.
    let repo = env.repo("case");
    env.admit_repo(&repo);
    assert_eq!(sign(&env, &ws.iter().collect::<Vec<_>>()).0, 0);
    let bundle = env.path("adm.tar");
    env.ok(["export", s(&repo.bin()), "--bundle", s(&bundle)]);
    let mut args = vec![
        "verify-bundle".to_string(),
        s(&bundle).into(),
        "--key".into(),
        s(&pem).into(),
    ];
    for v in &vk {
        args.extend(["--witness-key".to_string(), v.to_string()]);
    }
    env.ok(args
        .iter()
        .chain(["--quorum".to_string(), "3".into()].iter()));
    let other = env.path("other.key");
    let stranger = env
        .ok(["witness", "key", s(&other), "--name", "w9.example"])
        .stdout;
    let r = env.run([
        "verify-bundle",
        s(&bundle),
        "--key",
        s(&pem),
        "--witness-key",
        stranger.trim(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("fewer than the quorum of 1"),
        "{}",
        r.stdout
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn recorded_witnesses_are_asked_and_counted_and_pull_takes_nothing_below_the_quorum() {
    let server = S3Server::start();
    let a = server.host("witnessed");
    a.ok(["key", "generate"]);
    ingest(&a, "x");
    a.ok(["push"]);
    let (pem, origin) = log_key_and_origin(&a);
    let w1 = Witness::start(&a, 1, &origin, &pem);
    let w2 = Witness::start(&a, 2, &origin, &pem);
    // w1 with its URL (asked), w2 by its key alone (counted, never asked).
    a.ok(["witness", "add", &format!("{}@{}", w1.vkey, w1.url)]);
    a.ok(["witness", "add", &w2.vkey]);
    let listed = a.ok(["witness", "list"]).stdout;
    assert!(
        listed.contains("w1.example") && listed.contains("not asked"),
        "{listed}"
    );
    assert!(a
        .ok(["log"])
        .stdout
        .contains("witness w1.example at http://"));

    // push asks the recorded witness: the published checkpoint carries its cosignature.
    ingest(&a, "y");
    let pushed = a.ok(["push", "--json"]).json();
    let n = pushed["checkpoint"].as_u64().unwrap();
    let published = std::fs::read_dir(server.file("witnessed/checkpoints"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|t| t.lines().nth(1) == Some(&n.to_string()))
        .unwrap();
    assert!(published.contains("\u{2014} w1.example "), "{published}");
    // checkpoint --sign with no --witness asks it too.
    let (code, signed) = sign(&a, &[]);
    assert_eq!(code, 0, "{signed}");
    let note_file = a.path("cp.note");
    std::fs::write(&note_file, signed["note"].as_str().unwrap()).unwrap();
    let audit = |q: &str| {
        a.run([
            "audit",
            "--checkpoint",
            s(&note_file),
            "--witness-key",
            &w1.vkey,
            "--witness-key",
            &w2.vkey,
            "--quorum",
            q,
        ])
    };
    assert_eq!(audit("1").code, 0);
    let r = audit("2");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("fewer than the quorum of 2"),
        "{}",
        r.stdout
    );

    // Another host takes the log only when its checkpoint has the witnesses' cosignatures.
    let b = server.host("witnessed");
    let r = b.run(["pull", "--witness-key", &w1.vkey, "--quorum", "1", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["pulled"].as_u64(), Some(n));
    let c = server.host("witnessed");
    let r = c.run([
        "pull",
        "--witness-key",
        &w1.vkey,
        "--witness-key",
        &w2.vkey,
        "--quorum",
        "2",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was taken"), "{}", r.stderr);
    assert!(c.ok(["log", "--json"]).json().as_array().unwrap().len() <= 1);

    // Removed: no longer listed, and a quorum is only ever what --witness-key says.
    a.ok(["witness", "remove", "w2.example"]);
    assert!(!a.ok(["witness", "list"]).stdout.contains("w2.example"));
    let r = a.run(["audit", "--checkpoint", s(&note_file), "--quorum", "1"]);
    assert_eq!(
        r.code, 2,
        "--quorum without --witness-key counts nothing: {}",
        r.stderr
    );

    // A bucket writer copies the cosigned note of size n to the key of a later size
    // that no witness saw: pull checks the note is of exactly the journal it would take.
    a.ok(["witness", "remove", "w1.example"]);
    ingest(&a, "z");
    let pushed = a.ok(["push", "--json"]).json();
    let m = pushed["checkpoint"].as_u64().unwrap();
    assert!(m > n);
    std::fs::write(
        server.file(&format!("witnessed/checkpoints/{m:020}-0000000000000000")),
        &published,
    )
    .unwrap();
    let d = server.host("witnessed");
    let r = d.run(["pull", "--witness-key", &w1.vkey, "--quorum", "1"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("a checkpoint of another tree"),
        "{}",
        r.stderr
    );
    let r = d.run(["pull", "--quorum", "1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
