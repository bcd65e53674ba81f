//! `cto-ledger serve`: the read-only web view, over real runs, read by raw HTTP and by
//! Debian's headless Chromium (installed by `.ci/run`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::util::{s, Env};

/// A running `serve`: its base URL and token; killed when dropped.
struct Served {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` as a user starts it: on its default address.
fn serve(env: &Env) -> Served {
    serve_with(env, &[])
}

fn serve_with(env: &Env, args: &[&str]) -> Served {
    let mut child = env
        .cmd(["serve"].iter().chain(args))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.split_whitespace().last().unwrap().to_string();
    let (base, token) = url.split_once("/?token=").expect("a URL with the token");
    Served {
        child,
        base: base.into(),
        token: token.into(),
    }
}

/// One raw request; the status line's code and the whole answer.
fn get(s: &Served, method: &str, path: &str, headers: &[String]) -> (u16, String) {
    let host = s.base.trim_start_matches("http://");
    let mut c = TcpStream::connect(host).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|h| h.starts_with("Host:")) {
        req.push_str(&format!("Host: {host}\r\n"));
    }
    for h in headers {
        req.push_str(&format!("{h}\r\n"));
    }
    req.push_str("\r\n");
    c.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    (code, out)
}

fn chromium() -> Option<&'static str> {
    Command::new("chromium")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "chromium")
}

/// The DOM after Chromium loaded `url` (following the token's redirect with its cookie),
/// and what the page said on its console (a blocked script or image, an error): a page of
/// ours says nothing there.
fn dom(url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap();
    let console: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    assert!(
        console.is_empty(),
        "{url} said on its console:\n{}",
        console.join("\n")
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_view_needs_its_token_and_host_and_shows_runs_in_a_browser() {
    let env = Env::new();
    env.ok(["run", "stage2"]);
    env.run(["run", "stage2", "--fake-behavior", "fail"]);
    let runs = env.ok(["runs", "--json"]).json();
    let ids: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let s = serve(&env);
    let host = s.base.trim_start_matches("http://").to_string();
    let (ip, port) = host.rsplit_once(':').unwrap();
    let cookie = format!("Cookie: cto_ledger_{port}={}", s.token);
    // A loopback address of its own: browsers send a cookie to every port of its host,
    // so on 127.0.0.1 any local web server the browser visits would get the token.
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    assert!(
        ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST,
        "{ip}"
    );

    // No token, a wrong one, a foreign Host, another origin, a write: refused.
    assert_eq!(get(&s, "GET", "/runs", &[]).0, 403);
    assert_eq!(get(&s, "GET", "/runs?token=00", &[]).0, 403);
    let foreign = [cookie.clone(), format!("Host: evil.example:{port}")];
    assert_eq!(get(&s, "GET", "/runs", &foreign).0, 403);
    let origin = [cookie.clone(), "Origin: http://evil.example".into()];
    assert_eq!(get(&s, "GET", "/runs", &origin).0, 403);
    let cross = [cookie.clone(), "Sec-Fetch-Site: Cross-Site".into()];
    assert_eq!(get(&s, "GET", "/runs", &cross).0, 403);
    // The token's redirect stays on this server.
    let (code, answer) = get(
        &s,
        "GET",
        &format!("//evil.example/x?token={}", s.token),
        &[],
    );
    assert_eq!(code, 303);
    assert!(
        answer.contains("\r\nLocation: /evil.example/x\r\n"),
        "{answer}"
    );
    let back = format!("/\\evil.example/x?token={}", s.token);
    let (_, answer) = get(&s, "GET", &back, &[]);
    assert!(
        answer.contains("\r\nLocation: /evil.example/x\r\n"),
        "{answer}"
    );
    assert_eq!(
        get(&s, "POST", "/runs", std::slice::from_ref(&cookie)).0,
        405
    );
    // The token becomes a cookie; the cookie opens every page, with the CSP.
    let (code, answer) = get(&s, "GET", &format!("/runs?token={}", s.token), &[]);
    assert_eq!(code, 303, "{answer}");
    assert!(answer.contains("HttpOnly; SameSite=Strict"), "{answer}");
    let (code, page) = get(&s, "GET", "/runs", std::slice::from_ref(&cookie));
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'none'"),
        "{page}"
    );
    for id in &ids {
        assert!(page.contains(&format!("/run/{id}")), "{page}");
    }
    // A file path is never resolved from a URL, nor looked for: a file that exists and one
    // that does not get the same answer.
    let body = |path: &str| {
        let (code, answer) = get(&s, "GET", path, std::slice::from_ref(&cookie));
        (code, answer[answer.find("\r\n\r\n").unwrap()..].to_string())
    };
    let (there, missing) = (body("/node/%2Fetc%2Fpasswd"), body("/node/%2Fetc%2Fnone"));
    assert_eq!(there.0, 404, "{there:?}");
    assert_eq!(
        there.1.replace("/etc/passwd", "P"),
        missing.1.replace("/etc/none", "P")
    );

    let Some(_) = chromium() else {
        eprintln!("chromium is not installed: the browser half of this test is skipped");
        return;
    };
    let d = dom(&format!("{}/?token={}", s.base, s.token));
    for id in &ids {
        assert!(d.contains(&format!("/run/{id}")), "{d}");
    }
    let failed = &ids[1];
    let d = dom(&format!("{}/run/{failed}?token={}", s.base, s.token));
    assert!(d.contains(r#"<span class="badge bad">fail</span>"#), "{d}");
    assert!(
        d.contains("provider_sandboxed") && d.contains("Landlock"),
        "{d}"
    );
    assert!(
        d.contains("<h2>Changes</h2>") && d.contains("strings.py"),
        "{d}"
    );
    let d = dom(&format!("{}/node/run:{failed}?token={}", s.base, s.token));
    assert!(
        d.contains("<svg") && d.contains(r#"data-kind="admission""#),
        "{d}"
    );
}

/// What a hostile model and provider put in a run: markup in the model's answer and its
/// tool calls, and a file named as markup in the workspace.
const XSS: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.body.dataset.pwned=1">"#;
const XSS_FILE: &str = "<img src=x onerror=alert(1)>.txt";

#[test]
fn hostile_evidence_stays_text_in_the_browser() {
    let Some(_) = chromium() else {
        eprintln!("chromium is not installed: this test is skipped");
        return;
    };
    let env = Env::new();
    let fx = env.copy_of_builtin_fixture("fx");
    let script = fx.join("model-scripts/r1-string-slugify.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&script).unwrap()).unwrap();
    let implementer = &mut v["roles"]["implementer"];
    implementer[0]["tool_calls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "write", "arguments": {"path": XSS_FILE, "content": XSS}}));
    let answer = implementer[1]["content"].as_str().unwrap();
    implementer[1]["content"] = json!(format!("{XSS}\n{answer}"));
    std::fs::write(&script, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let model = "scripted/r1-string-slugify";
    env.ok(["admit", "--model", model, "--fixture", s(&fx)]);
    let run = env
        .ok([
            "run",
            "stage2",
            "--fixture",
            s(&fx),
            "--fake-behavior",
            "agent",
            "--model",
            model,
            "--json",
        ])
        .json();
    assert_eq!(run["verdict"], "pass", "{run}");
    let id = run["run_id"].as_str().unwrap();
    let served = serve(&env);
    let open = |path: &str| dom(&format!("{}{path}?token={}", served.base, served.token));
    let summary = open(&format!("/run/{id}"));
    let transcript = open(&format!("/run/{id}/transcript"));
    // The file name is on the run page and the markup in the transcript, as text.
    assert!(
        summary.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{summary}"
    );
    assert!(
        transcript.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{transcript}"
    );
    for d in [&summary, &transcript] {
        assert!(!d.contains("<img") && !d.contains("<script"), "{d}");
        assert!(
            !d.contains("data-pwned") && !d.contains("<title>pwned"),
            "{d}"
        );
    }
}

/// A screenshot of `url` by Chromium, into `CTO_LEDGER_SCREENSHOTS` (the docs' folder,
/// when making them for the docs) or the test's own folder; its path.
fn screenshot(env: &Env, url: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("CTO_LEDGER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| env.path("screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let status = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1100",
            &format!("--screenshot={}", file.display()),
            url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(&file).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{}",
        file.display()
    );
    file
}

/// Every node id in a `trace --json` tree.
fn trace_ids(v: &Value, out: &mut Vec<String>) {
    if let Some(id) = v["id"].as_str() {
        out.push(id.to_string());
    }
    for c in v["children"].as_array().into_iter().flatten() {
        trace_ids(c, out);
    }
}

#[test]
fn a_signed_ledger_of_real_runs_reads_as_a_person_would_check_it() {
    let Some(_) = chromium() else {
        eprintln!("chromium is not installed: this test is skipped");
        return;
    };
    let env = Env::new();
    env.ok(["key", "generate"]);
    env.ok(["run", "stage2"]);
    let failed = env
        .run(["run", "stage2", "--fake-behavior", "fail", "--json"])
        .json();
    let model = "scripted/r1-string-slugify";
    let agent = [
        "run",
        "stage2",
        "--fake-behavior",
        "agent",
        "--model",
        model,
        "--json",
    ];
    let blocked = env.run(agent).json();
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    env.ok(["admit", "--model", model]);
    let scripted = env.ok(agent).json();
    assert_eq!(scripted["verdict"], "pass", "{scripted}");
    env.ok(["checkpoint", "--sign"]);
    let id_of = |r: &Value| r["run_id"].as_str().unwrap().to_string();
    let (failed, blocked, scripted_id) = (id_of(&failed), id_of(&blocked), id_of(&scripted));

    let served = serve(&env);
    let url = |path: &str| format!("{}{path}?token={}", served.base, served.token);
    let runs = dom(&url("/runs"));
    for id in [&failed, &blocked, &scripted_id] {
        assert!(runs.contains(&format!("/run/{id}")), "{runs}");
    }
    assert!(
        runs.contains(r#"<span class="badge bad">blocked</span>"#),
        "{runs}"
    );
    // The run: its verdict, and its event proven in the signed log, checked here.
    let run = dom(&url(&format!("/run/{scripted_id}")));
    assert!(
        run.contains(r#"<span class="badge good">pass</span>"#),
        "{run}"
    );
    assert!(!run.contains("table differs"), "{run}");
    let signed = &run[run
        .find("<h2>Signed log</h2>")
        .expect("a signed log section")..];
    assert!(
        signed.contains(r#"<span class="badge good">verified</span>"#),
        "{signed}"
    );
    // The transcript: every exchange the model server recorded, each a section.
    let transcript = dom(&url(&format!("/run/{scripted_id}/transcript")));
    let exchanges = scripted["model"]["exchanges"].as_u64().unwrap();
    assert!(exchanges >= 5, "{scripted}");
    assert_eq!(
        transcript.matches(r#"<section class="exchange">"#).count() as u64,
        exchanges,
        "{transcript}"
    );
    for role in [
        "implementer",
        "verifier",
        "reviewer",
        "closer",
        "retrospective",
    ] {
        assert!(
            transcript.contains(&format!(" {role} (turn")),
            "{role}: {transcript}"
        );
    }
    // The graph: the nodes `trace` names, each a link to its page.
    let graph = dom(&url(&format!("/node/run:{scripted_id}")));
    let mut ids = Vec::new();
    trace_ids(
        &env.ok(["trace", &format!("run:{scripted_id}"), "--json"])
            .json(),
        &mut ids,
    );
    assert!(ids.len() >= 4, "{ids:?}");
    for id in &ids {
        assert!(
            graph.contains(&format!(r#"data-id="{id}""#)),
            "{id} not drawn: {graph}"
        );
    }
    let audit = dom(&url("/audit"));
    assert!(
        audit.contains(r#"<span class="badge good">passed</span>"#),
        "{audit}"
    );
    for (path, name) in [
        ("/runs".to_string(), "serve-runs.png"),
        (format!("/run/{scripted_id}"), "serve-run.png"),
        (
            format!("/run/{scripted_id}/transcript"),
            "serve-transcript.png",
        ),
        (format!("/node/run:{scripted_id}"), "serve-graph.png"),
    ] {
        screenshot(&env, &url(&path), name);
    }

    // The runs table altered to say the failed run passed, with the passing run's report:
    // the run's page shows what its journal event says, and that the table disagrees.
    let set = |verdict: &str, status: &str, report: &str| {
        let n = env
            .db()
            .execute(
                "UPDATE runs SET verdict = ?1, status = ?2, report_object = (SELECT report_object FROM runs WHERE id = ?4) WHERE id = ?3",
                rusqlite::params![verdict, status, failed, report],
            )
            .unwrap();
        assert_eq!(n, 1);
    };
    set("pass", "passed", &scripted_id);
    let run = dom(&url(&format!("/run/{failed}")));
    assert!(
        run.contains("in status, verdict, report_object: the table was altered"),
        "{run}"
    );
    assert!(run.contains("exit 1"), "{run}");
    assert!(
        run.contains(r#"<dt>verdict</dt><dd><span class="badge bad">fail</span>"#),
        "{run}"
    );
    set("fail", "failed", &failed);

    // The failed run's event rewritten to say it passed, the journal re-chained: the
    // signed log no longer proves it, and the audit page says so.
    let seq = env.ok(["show", &format!("run:{failed}"), "--json"]).json()["run"]["seq"]
        .as_i64()
        .unwrap();
    env.rewrite_event(seq, r#""verdict":"fail""#, r#""verdict":"pass""#);
    let run = dom(&url(&format!("/run/{failed}")));
    let signed = &run[run.find("<h2>Signed log</h2>").unwrap()..];
    assert!(
        signed.contains(r#"<span class="badge bad">failed</span>"#),
        "{signed}"
    );
    let audit = dom(&url("/audit"));
    assert!(
        audit.contains(r#"<span class="badge bad">failed</span>"#),
        "{audit}"
    );
    assert!(audit.contains("history was rewritten"), "{audit}");
    let checkpoints = dom(&url("/checkpoints"));
    assert!(
        checkpoints.contains(r#"<span class="badge bad">failed</span>"#)
            && checkpoints.contains("history was rewritten")
            && !checkpoints.contains(r#"badge good">verified"#),
        "{checkpoints}"
    );
}

/// The page `serve --bundle` shows an auditor with no ledger: verified, the run's
/// verdict, gates and every transcript exchange, members downloadable; the same bundle
/// with one transcript byte changed is shown as failed, naming the member, which is
/// then neither shown nor downloadable.
#[test]
fn a_bundle_is_shown_with_no_ledger_and_a_forged_one_says_so() {
    let Some(_) = chromium() else {
        eprintln!("chromium is not installed: this test is skipped");
        return;
    };
    let (env, id, _, pem) = crate::bundle::run_ledger();
    let bundle = env.path("run.bundle.tar");
    env.ok(["export", &format!("run:{id}"), "--bundle", s(&bundle)]);
    let (a, tar, key) = crate::bundle::auditor(&bundle, &pem);
    let members = crate::bundle::members(&tar);
    let member = |name: &str| members.iter().position(|(p, _)| p == name).unwrap();
    let report: Value = serde_json::from_slice(&members[member("evidence/report.json")].1).unwrap();
    let transcript = "evidence/backend/model-transcript.jsonl";

    let served = serve_with(&a, &["--bundle", s(&tar), "--key", s(&key)]);
    let url = |path: &str| format!("{}{path}?token={}", served.base, served.token);
    assert_eq!(get(&served, "GET", "/", &[]).0, 403);
    let page = dom(&url("/"));
    for want in [
        r#"<span class="badge good">verified</span>"#,
        r#"<span class="badge good">pass</span>"#,
        "<h2>Gates</h2>",
        "<h2>Sandbox</h2>",
        transcript,
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    let conversation = dom(&url("/transcript"));
    let exchanges = report["model"]["exchanges"].as_u64().unwrap();
    assert!(exchanges >= 5, "{report}");
    assert_eq!(
        conversation
            .matches(r#"<section class="exchange">"#)
            .count() as u64,
        exchanges,
        "{conversation}"
    );
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let cookie = format!("Cookie: cto_ledger_{port}={}", served.token);
    let (code, answer) = get(&served, "GET", &format!("/member/{transcript}"), &[cookie]);
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("Content-Disposition: attachment; filename=\"model-transcript.jsonl\""));
    let body = &members[member(transcript)].1;
    assert!(answer.ends_with(std::str::from_utf8(body).unwrap()));
    screenshot(&a, &url("/"), "serve-bundle.png");
    drop(served);

    // One byte of the transcript changed, the tar otherwise as it was.
    let mut forged = members.clone();
    let t = &mut forged[member(transcript)].1;
    let at = t.windows(11).position(|w| w == b"implementer").unwrap();
    t[at + 10] = b'X';
    let forged_tar = a.path("forged.tar");
    crate::bundle::write_tar(&forged_tar, &forged);
    let served = serve_with(&a, &["--bundle", s(&forged_tar), "--key", s(&key)]);
    let url = |path: &str| format!("{}{path}?token={}", served.base, served.token);
    let page = dom(&url("/"));
    assert!(page.contains("this bundle did not verify"), "{page}");
    let problems = &page[page.find("<h2>Problems</h2>").expect("the problems listed")..];
    assert!(problems.contains(transcript), "{problems}");
    assert!(
        !page.contains(&format!("/member/{}", transcript.replace('/', "%2F"))),
        "{page}"
    );
    let conversation = dom(&url("/transcript"));
    assert!(
        conversation.contains("holds no model transcript"),
        "{conversation}"
    );
    assert!(!conversation.contains("implementeX"), "{conversation}");
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let cookie = format!("Cookie: cto_ledger_{port}={}", served.token);
    let (code, _) = get(&served, "GET", &format!("/member/{transcript}"), &[cookie]);
    assert_eq!(code, 404);
    drop(served);

    // A manifest with text where digests and key ids go, cut where a byte slice would
    // fall inside a character: reported, never a panic (which had cost a server slot).
    let mut odd = members.clone();
    let m = member("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&odd[m].1).unwrap();
    manifest["log"]["keyid"] = format!("{}é{}", "a".repeat(15), "b".repeat(48)).into();
    manifest["files"].as_array_mut().unwrap().push(json!({
        "path": "evidence/zzz", "role": "evidence", "size": 1, "withheld": true,
        "sha256": format!("sha256:{}é{}", "a".repeat(11), "b".repeat(60)),
    }));
    // And a tests log of 5 MiB of markup, its manifest entry made to match: listed, not
    // rendered into the page.
    let log = member("evidence/backend/tests.log");
    odd[log].1 = vec![b'<'; 5 << 20];
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["path"] == "evidence/backend/tests.log" {
            f["size"] = (5u64 << 20).into();
            f["sha256"] = crate::bundle::sha256(&odd[log].1).into();
        }
    }
    odd[m].1 = serde_json::to_vec(&manifest).unwrap();
    let odd_tar = a.path("odd.tar");
    crate::bundle::write_tar(&odd_tar, &odd);
    let v = a.run(["verify-bundle", s(&odd_tar), "--key", s(&key)]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let served = serve_with(&a, &["--bundle", s(&odd_tar), "--key", s(&key)]);
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let cookie = format!("Cookie: cto_ledger_{port}={}", served.token);
    let (code, page) = get(&served, "GET", "/", std::slice::from_ref(&cookie));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("A bundle that did not verify"), "{page}");
    assert!(page.contains("too large to show here"), "{page}");
    assert!(page.len() < 1 << 20, "{} bytes", page.len());
}

/// The newcomer's path: from the runs table to a run, to its transcript, to the commit
/// its provider was built from; each step a link on the page before it.
#[test]
fn from_the_runs_table_to_the_providers_source_commit() {
    let Some(_) = chromium() else {
        eprintln!("chromium is not installed: this test is skipped");
        return;
    };
    let (env, id, _, _) = crate::bundle::run_ledger();
    let served = serve(&env);
    let url = |path: &str| format!("{}{path}?token={}", served.base, served.token);
    // The first href on `page` that starts with `prefix`.
    let href = |page: &str, prefix: &str| -> String {
        let at = page
            .find(&format!(r#"href="{prefix}"#))
            .unwrap_or_else(|| panic!("no link to {prefix}: {page}"));
        let rest = &page[at + 6..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let runs = dom(&url("/runs"));
    let run = href(&runs, &format!("/run/{id}"));
    let page = dom(&url(&run));
    assert!(
        page.contains(r#"<span class="badge good">pass</span>"#),
        "{page}"
    );
    let transcript = dom(&url(&href(&page, &format!("/run/{id}/transcript"))));
    assert!(transcript.contains(" implementer (turn 0)"), "{transcript}");
    let commit = href(&page, "/node/commit:");
    let pin = env.ok(["show", &format!("run:{id}"), "--json"]).json()["run"]["provider"]
        ["commit_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(commit, format!("/node/commit:{pin}"));
    let lineage = dom(&url(&commit));
    assert!(
        lineage.contains(&format!(r#"data-id="{pin}" data-kind="commit""#)),
        "{lineage}"
    );
    assert!(lineage.contains(&format!("/node/run:{id}")), "{lineage}");
}
