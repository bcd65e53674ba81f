//! One ledger shared by many hosts through a real S3-compatible server (s3s-fs on
//! 127.0.0.1). Two ledger homes on this machine stand in for two hosts.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::util::{s, Env, S3Server};

/// The remote journal as the server holds it: (seq, prev_hash, hash, event) in key order.
fn remote_journal(server: &S3Server, prefix: &str) -> Vec<(u64, String, String, Value)> {
    let dir = server.file(&format!("{prefix}/journal"));
    let mut names: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => return Vec::new(),
    };
    names.sort();
    names
        .iter()
        .map(|n| {
            let v: Value = serde_json::from_slice(&std::fs::read(dir.join(n)).unwrap()).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["prev_hash"].as_str().unwrap().to_string(),
                v["hash"].as_str().unwrap().to_string(),
                serde_json::from_str(v["event"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Checks the remote chain links from genesis, and returns every ingested path with how
/// many events name it.
fn unbroken_chain_paths(server: &S3Server, prefix: &str) -> BTreeMap<String, usize> {
    let mut prev = "0".repeat(64);
    let mut paths = BTreeMap::new();
    for (i, (seq, p, h, ev)) in remote_journal(server, prefix).into_iter().enumerate() {
        assert_eq!(seq, i as u64 + 1, "remote journal has a gap before {seq}");
        assert_eq!(p, prev, "remote event {seq} does not chain to {}", seq - 1);
        assert_eq!(ev["seq"].as_u64(), Some(seq));
        prev = h;
        for item in ev["items"].as_array().into_iter().flatten() {
            *paths
                .entry(item["path"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    paths
}

fn write(env: &Env, name: &str, body: &str) -> std::path::PathBuf {
    let p = env.path(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn host_b_pulls_what_host_a_admitted_and_verifies_it() {
    let server = S3Server::start();
    let a = server.host("team");
    let repo = a.repo("case");
    a.ok(["admit", s(&repo.bin()), "--source-pin", &repo.pin()]);
    let pushed = a.ok(["push", "--json"]).json();
    assert_eq!(pushed["published"], a.head().0);
    assert!(
        pushed["objects_uploaded"].as_u64().unwrap() >= 2,
        "{pushed}"
    );

    let mut b = server.host("team");
    assert_eq!(
        b.run(["verify", s(&repo.bin())]).code,
        1,
        "not admitted on B before pull"
    );
    // One event per transaction, so every batch boundary is crossed.
    b.vars
        .push(("CTO_LEDGER_TEST_PULL_BATCH".into(), "1".into()));
    let pulled = b.ok(["pull", "--json"]).json();
    assert!(a.head().0 >= 2, "more than one batch");
    assert_eq!(pulled["pulled"], a.head().0);
    let v = b.ok(["verify", s(&repo.bin()), "--json"]).json();
    assert_eq!(v["admitted"], true, "{v}");
    assert_eq!(b.head(), a.head(), "B's replica is A's journal");
    // B holds every object itself, re-hashed on arrival.
    assert!(b.ok(["audit"]).stdout.contains("audit passed"));
    let st = b.ok(["remote", "status", "--json"]).json();
    assert_eq!(st[0]["ahead"], 0);
    assert_eq!(st[0]["behind"], 0);
    assert_eq!(st[0]["remote_head"]["seq"], a.head().0);
    // A second pull has nothing to do.
    assert_eq!(b.ok(["pull", "--json"]).json()["pulled"], 0);
}

#[test]
fn fifty_rounds_of_simultaneous_pushes_keep_one_chain() {
    let server = S3Server::start();
    let hosts = [server.host("race"), server.host("race")];
    let rounds = 50;
    let (mut conflicts, mut refused) = (0, 0);
    for round in 0..rounds {
        for (h, env) in hosts.iter().enumerate() {
            let f = write(
                env,
                &format!("h{h}-r{round}"),
                &format!("host {h} round {round}\n"),
            );
            env.ok(["ingest", s(&f)]);
        }
        let children: Vec<_> = hosts
            .iter()
            .map(|env| {
                env.cmd(["push", "--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: push failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            conflicts += v["conflicts"].as_u64().unwrap();
            refused += v["creates_refused"].as_u64().unwrap();
        }
    }
    // A host whose event a non-atomic server let another host overwrite re-publishes it here.
    for env in &hosts {
        env.ok(["push"]);
    }
    for env in &hosts {
        env.ok(["pull"]);
    }
    let paths = unbroken_chain_paths(&server, "race");
    for (h, env) in hosts.iter().enumerate() {
        for round in 0..rounds {
            let p = env.path(&format!("h{h}-r{round}"));
            assert_eq!(
                paths.get(s(&p)),
                Some(&1),
                "{} is not on the remote exactly once",
                p.display()
            );
        }
    }
    assert_eq!(paths.len(), 2 * rounds);
    assert_eq!(
        hosts[0].head(),
        hosts[1].head(),
        "both replicas end at the remote head"
    );
    assert_eq!(hosts[0].head().0, 2 * rounds as u64);
    for env in &hosts {
        assert!(env.ok(["audit"]).stdout.contains("audit passed"));
    }
    assert!(hosts[0]
        .ok(["audit", "--remote", "--full"])
        .stdout
        .contains("remote audit passed"));
    // The race was real, and the server's create-only write is what settled it.
    eprintln!("{conflicts} lost races over {rounds} rounds, {refused} refused by the server");
    assert!(
        refused > 0,
        "no push ever lost a create-only write: the test did not race"
    );
}

#[test]
fn remote_object_modified_behind_the_ledgers_back_is_rejected_and_named() {
    let server = S3Server::start();
    let a = server.host("t");
    // Large enough to be a key of its own (a packed one: the test beside it).
    let body = format!(
        "{{\"model\": \"claude\", \"pad\": \"{}\"}}\n",
        "x".repeat(300_000)
    );
    let f = write(&a, "config.json", &body);
    let id = a.ok(["ingest", s(&f), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    a.ok(["push"]);
    let hex = id.strip_prefix("blake3:").unwrap();
    let key = format!("objects/{}/{}", &hex[..2], &hex[2..]);
    let on_server = server.file(&format!("t/{key}"));
    let mut bytes = std::fs::read(&on_server).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&on_server, &bytes).unwrap();

    let b = server.host("t");
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&key) && r.stderr.contains("modified"),
        "{}",
        r.stderr
    );
    assert_eq!(b.head().0, 0, "nothing was taken from the remote");
    assert!(!b
        .ledger
        .join("objects")
        .join(&hex[..2])
        .join(&hex[2..])
        .exists());

    let audit = a.run(["audit", "--remote"]);
    assert_eq!(audit.code, 1, "{}", audit.stdout);
    assert!(
        audit
            .stdout
            .contains(&format!("FINDING [remote object] {key}"))
            && audit.stdout.contains("modified"),
        "{}",
        audit.stdout
    );
}

#[test]
fn remote_journal_entry_altered_is_rejected_on_pull() {
    let server = S3Server::start();
    let a = server.host("t");
    let f = write(&a, "x", "x\n");
    a.ok(["ingest", s(&f)]);
    a.ok(["ingest", s(&f), "--label", "again"]);
    a.ok(["push"]);
    let entry = server.file("t/journal/00000000000000000001");
    let text = std::fs::read_to_string(&entry).unwrap();
    std::fs::write(&entry, text.replace("tester", "mallory")).unwrap();
    let b = server.host("t");
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("journal/00000000000000000001"),
        "{}",
        r.stderr
    );
    assert_eq!(b.head().0, 0);
    let audit = a.run(["audit", "--remote"]);
    assert_eq!(audit.code, 1);
    assert!(
        audit.stdout.contains("journal/00000000000000000001"),
        "{}",
        audit.stdout
    );
}

#[test]
fn server_stopped_mid_push_fails_clearly_and_the_next_push_completes() {
    let mut server = S3Server::start();
    let a = server.host("t");
    // Enough objects that the upload is still going when the server dies.
    let tree = a.path("node_modules");
    for d in 0..40 {
        let dir = tree.join(format!("pkg{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..60 {
            std::fs::write(
                dir.join(format!("f{i}.js")),
                format!("module.exports = {d} * {i};\n").repeat(200),
            )
            .unwrap();
        }
    }
    // Small files go up as one pack; these each as a key of its own.
    let big = tree.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..100 {
        std::fs::write(
            big.join(format!("b{i}")),
            format!("large {i} ").repeat(30_000),
        )
        .unwrap();
    }
    a.ok(["ingest", s(&tree)]);
    let f = write(&a, "after", "one more event\n");
    a.ok(["ingest", s(&f)]);
    let head = a.head();

    let push = a
        .cmd(["push"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let objects = server.file("t/objects");
    let count = |p: &Path| walk_files(p);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(&objects) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "push never started uploading"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill();
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "push must fail: {stderr}");
    assert!(
        stderr.contains("s3://ledger-bucket/t") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(count(&objects) < 100, "the server died mid-upload");
    // Objects go up before the events that name them: no event was published.
    assert!(remote_journal(&server, "t").is_empty());
    assert_eq!(a.head(), head, "the local ledger is untouched");
    let st = a.run(["remote", "status", "--json"]);
    assert_eq!(st.code, 4);
    assert_eq!(st.json()[0]["ahead"], 2);

    server.restart();
    let r = a.ok(["audit", "--remote"]);
    assert!(
        r.stdout.contains("remote audit passed") && r.stdout.contains("named by no event"),
        "{}",
        r.stdout
    );
    let v = a.ok(["push", "--json"]).json();
    assert_eq!(v["published"], 2);
    assert!(a
        .ok(["audit", "--remote", "--full"])
        .stdout
        .contains("remote audit passed"));
    let b = server.host("t");
    b.ok(["pull"]);
    assert_eq!(b.head(), head);
    assert!(b.ok(["audit"]).stdout.contains("audit passed"));
}

fn walk_files(p: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.map(|e| {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk_files(&e.path())
        } else {
            1
        }
    })
    .sum()
}

#[test]
fn offline_events_are_re_appended_after_the_remote_head_and_old_checkpoints_still_verify() {
    let mut server = S3Server::start();
    let a = server.host("t");
    let b = server.host("t");
    let shared = write(&a, "shared", "first\n");
    a.ok(["ingest", s(&shared)]);
    a.ok(["push"]);
    b.ok(["pull"]);

    // B goes offline and keeps working; a push fails and changes nothing.
    server.kill();
    let b1 = write(&b, "b1", "b one\n");
    let b2 = write(&b, "b2", "b two\n");
    b.ok(["ingest", s(&b1)]);
    b.ok(["ingest", s(&b2)]);
    let cp = b.ok(["checkpoint"]).stdout.trim().to_string();
    assert_eq!(b.run(["push"]).code, 4);
    assert_eq!(cp, b.ok(["checkpoint"]).stdout.trim());

    // Meanwhile A took sequence numbers 2 and 3.
    server.restart();
    for n in ["a1", "a2"] {
        let f = write(&a, n, n);
        a.ok(["ingest", s(&f)]);
    }
    a.ok(["push"]);

    let v = b.ok(["push", "--json"]).json();
    assert_eq!(v["published"], 2);
    assert_eq!(v["moved"], serde_json::json!([[2, 4], [3, 5]]));
    let paths = unbroken_chain_paths(&server, "t");
    let order: Vec<_> = remote_journal(&server, "t")
        .iter()
        .map(|(_, _, _, e)| {
            e["items"][0]["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, ["shared", "a1", "a2", "b1", "b2"]);
    assert!(paths.values().all(|&n| n == 1));

    // The checkpoint B took offline named events 2..3 as they were then: still provable.
    let r = b.ok(["audit", "--checkpoint", &cp]);
    assert!(
        r.stdout.contains("re-appended") && r.stdout.contains("now events 4..5"),
        "{}",
        r.stdout
    );
    // A checkpoint that never existed is still refused.
    let (seq, hash) = cp.split_once(':').unwrap();
    let forged = format!("{seq}:{}", hash.chars().rev().collect::<String>());
    assert_eq!(b.run(["audit", "--checkpoint", &forged]).code, 1);
    // B's old events are re-numbered, not lost: B still finds what it ingested.
    b.ok(["show", s(&b1)]);
    a.ok(["pull"]);
    assert_eq!(a.head(), b.head());
}

#[test]
fn events_a_remote_lost_are_re_published_by_the_host_that_wrote_them() {
    let server = S3Server::start();
    let a = server.host("t");
    let b = server.host("t");
    let fa = write(&a, "fa", "from a\n");
    a.ok(["ingest", s(&fa)]);
    a.ok(["push"]);
    // The remote loses A's event (a server that let a second "create" overwrite it, or
    // an operator) and B's event takes its number.
    std::fs::remove_file(server.file("t/journal/00000000000000000001")).unwrap();
    let fb = write(&b, "fb", "from b\n");
    b.ok(["ingest", s(&fb)]);
    b.ok(["push"]);
    let r = a.ok(["pull", "--json"]).json();
    assert_eq!(r["remote_replaced"], true);
    assert_eq!(r["moved"], serde_json::json!([[1, 2]]));
    a.ok(["push"]);
    let paths = unbroken_chain_paths(&server, "t");
    assert_eq!(paths.get(s(&fa)), Some(&1));
    assert_eq!(paths.get(s(&fb)), Some(&1));
}

#[test]
fn bad_remote_input_is_refused_and_changes_nothing() {
    let server = S3Server::start();
    let env = Env::new();
    for (args, needle) in [
        (
            vec!["remote", "add", "o", "http://bucket/x"],
            "not an s3:// URL",
        ),
        (vec!["remote", "add", "o", "s3://B/x"], "valid bucket"),
        (vec!["remote", "add", "o", "s3://bucket/a/../b"], "`..`"),
        (
            vec!["remote", "add", "-bad", "s3://bucket"],
            "unexpected argument",
        ),
        (vec!["remote", "add", "o/x", "s3://bucket"], "not valid"),
        (
            vec![
                "remote",
                "add",
                "o",
                "s3://bucket",
                "--endpoint",
                "127.0.0.1:9",
            ],
            "http://",
        ),
        (vec!["push"], "no remote is configured"),
        (vec!["pull", "nowhere"], "remote `nowhere` matches nothing"),
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    assert_eq!(env.ok(["remote", "--json"]).json(), serde_json::json!([]));
    env.ok([
        "remote",
        "add",
        "o",
        &format!("s3://{}/x", crate::util::BUCKET),
        "--endpoint",
        &server.endpoint(),
    ]);
    let r = env.run(["remote", "add", "o", "s3://other"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"));
    // No credentials in the environment: a clear error before any request.
    let r = env.run(["push"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", r.stderr);
    // Wrong credentials: the server refuses, and the message says so.
    let wrong = server.host_with("x", "nobody", "nothing-at-all");
    let f = write(&wrong, "f", "f");
    wrong.ok(["ingest", s(&f)]);
    let head = wrong.head();
    let r = wrong.run(["push"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("403 Forbidden"), "{}", r.stderr);
    assert_eq!(wrong.head(), head);
    assert!(remote_journal(&server, "x").is_empty());
}

#[test]
fn a_stage2_run_on_one_host_is_traced_and_audited_on_another() {
    let server = S3Server::start();
    let a = server.host("runs");
    let run = a.ok(["run", "stage2", "--json"]).json();
    assert_eq!(run["verdict"], "pass", "{run:#}");
    a.ok(["push"]);
    let b = server.host("runs");
    b.ok(["pull"]);
    let id = format!("run:{}", run["run_id"].as_str().unwrap());
    let trace = b.ok(["trace", &id, "--json"]).json().to_string();
    assert!(
        trace.contains(run["provider"]["sha256"].as_str().unwrap()),
        "{trace}"
    );
    // The report.json that host A wrote is on B, byte for byte, from B's own store.
    let report = b.ok(["show", &id, "--json"]).json()["run"]["report_object"]
        .as_str()
        .unwrap()
        .to_string();
    let on_a = std::fs::read(
        a.ledger
            .join("runs")
            .join(run["run_id"].as_str().unwrap())
            .join("report.json"),
    )
    .unwrap();
    assert_eq!(b.ok(["cat", &report]).stdout.as_bytes(), &on_a[..]);
    assert!(b.ok(["audit"]).stdout.contains("audit passed"));
}

#[test]
fn crafted_remote_entry_with_a_malformed_hash_is_refused_without_a_crash() {
    use sha2::Digest as _;
    let server = S3Server::start();
    let a = server.host("t");
    let f = write(&a, "x", "x\n");
    a.ok(["ingest", s(&f)]);
    a.ok(["push"]);
    // A second entry whose hash is right for its own (short, bogus) prev_hash.
    let (_, _, _, first) = remote_journal(&server, "t").remove(0);
    let mut event = first.clone();
    event["seq"] = 2.into();
    let event = serde_json::to_string(&event).unwrap();
    let hash = hex::encode(sha2::Sha256::digest(
        [b"ab".as_slice(), event.as_bytes()].concat(),
    ));
    let entry = serde_json::json!({"event": event, "hash": hash, "prev_hash": "ab", "seq": 2});
    std::fs::write(
        server.file("t/journal/00000000000000000002"),
        entry.to_string(),
    )
    .unwrap();
    let b = server.host("t");
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("journal/00000000000000000002"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(b.head().0, 0);
}

#[test]
fn re_appending_builds_admissions_and_runs_keeps_every_projection_exact() {
    // Re-appending replays only the events after the base; `audit` compares every
    // projection table with a replay of the whole journal.
    let server = S3Server::start();
    let a = server.host("t");
    let b = server.host("t");
    let repo = b.repo("case");
    let mut c = b.cmd([
        "build",
        "--output",
        "dist/out",
        "--",
        "sh",
        "-c",
        "echo out > dist/out && echo changed > gen.ts && echo new > created.txt",
    ]);
    let out = c.current_dir(&repo.dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok([
        "admit",
        s(&repo.bin()),
        "--source-pin",
        &repo.pin(),
        "--allow-modified",
        s(&repo.dir.join("gen.ts")),
    ]);
    b.ok(["admit", "--model", "anthropic/claude-sonnet-4-6"]);
    b.ok(["run", "stage2"]);
    let before = b.head().0;
    for n in ["a1", "a2", "a3"] {
        let f = write(&a, n, n);
        a.ok(["ingest", s(&f)]);
    }
    a.ok(["push"]);
    let v = b.ok(["push", "--json"]).json();
    assert_eq!(v["moved"].as_array().unwrap().len() as u64, before);
    let audit = b.ok(["audit"]);
    assert!(audit.stdout.contains("audit passed"), "{}", audit.stdout);
    let counts = "SELECT (SELECT count(*) FROM build_outputs) || ',' || (SELECT count(*) FROM build_created) || ',' || (SELECT count(*) FROM admission_modified) || ',' || (SELECT count(*) FROM source_changes) || ',' || (SELECT count(*) FROM run_artifacts) AS n";
    let n = b.ok(["sql", counts, "--json"]).json()["rows"][0][0].clone();
    let parts: Vec<u64> = n
        .as_str()
        .unwrap()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        parts.iter().all(|&k| k > 0),
        "every child table has rows: {parts:?}"
    );
    a.ok(["pull"]);
    assert_eq!(a.ok(["sql", counts, "--json"]).json()["rows"][0][0], n);
    assert!(a.ok(["audit"]).stdout.contains("audit passed"));
}

#[test]
fn signed_checkpoints_travel_with_push_and_a_rewritten_remote_is_refused_on_pull() {
    let server = S3Server::start();
    let a = server.host("signed");
    let b = server.host("signed");
    a.ok(["key", "generate"]);
    let fa = write(&a, "fa", "from a\n");
    a.ok(["ingest", s(&fa)]);
    // Unpublished events could still be re-numbered by a pull: not signed yet.
    let r = a.run(["checkpoint", "--sign"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not on any remote yet"), "{}", r.stderr);
    let pushed = a.ok(["push", "--json"]).json();
    let n = a.head().0;
    assert_eq!(pushed["checkpoint"], n, "{pushed}");
    let listed: Vec<_> = std::fs::read_dir(server.file("signed/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");

    // B takes the events and A's checkpoint, checked against them.
    let pulled = b.ok(["pull", "--json"]).json();
    assert_eq!(pulled["checkpoints"], serde_json::json!([n]), "{pulled}");
    assert!(b.ok(["audit"]).stdout.contains("audit passed"));
    // B signs nothing it has not published.
    b.ok(["key", "generate"]);
    let r = b.run(["checkpoint", "--sign"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("push"), "{}", r.stderr);

    // The remote's history is rewritten: its journal replaced by another ledger's.
    std::fs::remove_dir_all(server.file("signed/journal")).unwrap();
    std::fs::remove_dir_all(server.file("signed/checkpoints")).unwrap();
    let m = server.host("signed");
    m.ok(["key", "generate"]);
    for i in 0..n + 2 {
        let f = write(&m, &format!("m{i}"), &format!("mallory {i}\n"));
        m.ok(["ingest", s(&f)]);
    }
    let forged = m.ok(["push", "--json"]).json();
    let m_size = forged["checkpoint"].as_u64().unwrap();
    let before = b.head();
    let r = b.run(["pull"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("history was rewritten")
            && r.stderr.contains(&format!("size {n}"))
            && r.stderr.contains(&format!("size {m_size}")),
        "{}",
        r.stderr
    );
    assert_eq!(
        b.head(),
        before,
        "nothing was taken from the rewritten remote"
    );
}

/// Keys the server holds under `dir` (s3s-fs keeps one file per key).
fn keys_under(server: &S3Server, dir: &str) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(server.file(dir))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn a_tree_of_thousands_of_files_goes_up_as_a_few_packs_and_comes_down_re_hashed() {
    let server = S3Server::start();
    let a = server.host("p");
    let tree = a.path("tree");
    crate::packs::many_files(&tree, 3000);
    std::fs::write(tree.join("big.bin"), vec![5u8; 300_000]).unwrap();
    let id = a.ok(["ingest", s(&tree), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    let pushed = a.ok(["push", "--json"]).json();
    assert!(
        pushed["objects_uploaded"].as_u64().unwrap() > 3000,
        "{pushed}"
    );
    // 3,061 objects: one pack and its index, and the one object too big for a pack.
    let packs = keys_under(&server, "p/packs");
    let loose = keys_under(&server, "p/objects");
    assert_eq!((packs.len(), loose.len()), (2, 1), "{packs:?} {loose:?}");

    let b = server.host("p");
    b.ok(["pull"]);
    let audit = b.run(["audit", "--json"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    let out = b.path("out");
    b.ok(["restore", &id, s(&out)]);
    assert_eq!(
        std::fs::read(out.join("pkg010/f517.js")).unwrap(),
        std::fs::read(tree.join("pkg010/f517.js")).unwrap()
    );
    assert_eq!(a.run(["audit", "--remote", "--full"]).code, 0);

    // A byte of the pack changed on the server: the next host takes nothing, naming the
    // pack and where in it; the remote's audit names it too.
    let pack = packs
        .iter()
        .find(|p| p.extension().unwrap() == "pack")
        .unwrap();
    let good = std::fs::read(pack).unwrap();
    let mut bad = good.clone();
    bad[8] ^= 0x01;
    std::fs::write(pack, &bad).unwrap();
    let c = server.host("p");
    let r = c.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("packs/") && r.stderr.contains("modified behind the ledger's back"),
        "{}",
        r.stderr
    );
    assert_eq!(c.head().0, 0, "nothing was taken from the remote");
    let audit = a.run(["audit", "--remote", "--full"]);
    assert_eq!(audit.code, 1);
    assert!(audit.stdout.contains("packs/"), "{}", audit.stdout);

    // An index that lies about where its objects are is refused as a whole.
    std::fs::write(pack, &good).unwrap();
    let idx = pack.with_extension("idx");
    let mut lying = std::fs::read(&idx).unwrap();
    lying[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&idx, &lying).unwrap();
    let d = server.host("p");
    let r = d.run(["pull"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(d.head().0, 0);
    let audit = a.run(["audit", "--remote"]);
    assert!(
        audit.stdout.contains("damaged pack index"),
        "{}",
        audit.stdout
    );
}

#[test]
fn an_empty_file_goes_up_in_a_pack_and_comes_down() {
    let server = S3Server::start();
    let a = server.host("e");
    let dir = a.path("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("empty"), "").unwrap();
    std::fs::write(dir.join("one"), "1\n").unwrap();
    let id = a.ok(["ingest", s(&dir), "--json"]).json()["items"][0]["object"]
        .as_str()
        .unwrap()
        .to_string();
    a.ok(["push"]);
    let b = server.host("e");
    b.ok(["pull"]);
    let out = b.path("out");
    b.ok(["restore", &id, s(&out)]);
    assert_eq!(std::fs::read(out.join("empty")).unwrap().len(), 0);
    assert_eq!(b.run(["audit"]).code, 0);
}
