//! Models a run talks to: the harness's scripted model (a loopback OpenAI-compatible
//! server replaying a fixture's script) and admitted endpoints (reached through a
//! recording proxy), with every exchange in `backend/model-transcript.jsonl`. The fake
//! provider's `agent` behaviour is the client: it streams chat completions per Case role
//! and runs the tool calls it gets, as Case's pi agent does.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stage2::{provider_started, stage2, Stage2};
use crate::util::*;

const SCRIPTED: [(&str, &str); 2] = [
    ("CTO_HARNESS_CASE_MODEL_PROVIDER", "scripted"),
    ("CTO_HARNESS_CASE_MODEL", "r1-string-slugify"),
];

fn transcript(r: &Stage2) -> Vec<Value> {
    fs::read_to_string(r.dir.join("backend/model-transcript.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn port_of(url: &str) -> u64 {
    url.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_scripted_model_drives_a_streaming_agent_to_a_pass_and_its_transcript_is_evidence() {
    let env = Env::new();
    let adm = env
        .ok(["admit", "--model", "scripted/r1-string-slugify", "--json"])
        .json();
    let script_sha = adm["admission"]["script"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let r = stage2(&env, &["--fake-behavior", "agent"], &SCRIPTED);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["verdict"], "pass");
    let m = &r.report["model"];
    assert_eq!(m["provider"], "scripted");
    assert_eq!(m["script_sha256"], script_sha.as_str());
    // implementer: a streamed write tool call, then its result; four more roles, one answer each.
    assert_eq!(m["exchanges"], 6, "{m}");
    let t = transcript(&r);
    assert_eq!(t.len(), 6);
    let roles: Vec<&str> = t.iter().map(|x| x["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "implementer",
            "implementer",
            "verifier",
            "reviewer",
            "closer",
            "retrospective"
        ]
    );
    assert_eq!(t[0]["response"]["finish_reason"], "tool_calls");
    assert_eq!(
        t[0]["response"]["tool_calls"][0]["function"]["name"],
        "write"
    );
    // The second request carries the tool's result: a multi-turn exchange.
    let msgs = t[1]["request"]["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["role"] == "tool"), "{msgs:?}");
    assert!(t
        .iter()
        .all(|x| x["started"].is_string() && x["finished"].is_string()));
    let text = fs::read_to_string(r.dir.join("backend/model-transcript.jsonl")).unwrap();
    assert!(!text.contains("cto-ledger-no-key") && !text.to_lowercase().contains("authorization"));
    // The provider was given pi's models.json pointing at the server, and may reach only it.
    let port = port_of(m["served_at"].as_str().unwrap());
    assert_eq!(
        r.report["sandbox"]["network"]["tcp_connect"],
        serde_json::json!([port])
    );
    let models: Value =
        serde_json::from_slice(&fs::read(r.dir.join("home/.pi/agent/models.json")).unwrap())
            .unwrap();
    assert_eq!(models["providers"]["openai"]["api"], "openai-completions");
    // Linked to the run: an artifact, in show and in trace (with the script's digest).
    let id = r.report["run_id"].as_str().unwrap();
    let shown = env.ok(["show", &format!("run:{id}"), "--json"]).json();
    assert!(shown["run"]["artifacts"]
        .to_string()
        .contains("backend/model-transcript.jsonl"));
    let trace = env.ok(["trace", &format!("run:{id}")]).stdout;
    assert!(
        trace.contains("model scripted/r1-string-slugify"),
        "{trace}"
    );
    assert!(
        trace.contains("script: blob") && trace.contains("model-transcript.jsonl: blob"),
        "{trace}"
    );
    env.ok(["audit"]);
}

#[test]
fn the_model_transcript_is_held_to_folder_bytes() {
    let env = Env::new();
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let r = stage2(
        &env,
        &[
            "--fake-behavior",
            "model-flood",
            "--limit",
            "folder_bytes=4M",
        ],
        &SCRIPTED,
    );
    let limit = r.report["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "model_transcript_bytes")
        .unwrap_or_else(|| panic!("{}", r.report["limits"]));
    assert_eq!(limit["value"], 4 << 20);
    assert_eq!(limit["hit"], true, "{limit}");
    let noted = fs::read_to_string(r.dir.join("home/model-flood.txt")).unwrap();
    assert!(noted.contains("refused"), "{noted}");
    let size = fs::metadata(r.dir.join("backend/model-transcript.jsonl"))
        .unwrap()
        .len();
    // The room, plus at most what the four exchanges at once were answered beyond it.
    assert!(
        size < (4 << 20) + 4 * (2 << 20),
        "transcript grew to {size} bytes"
    );
}

#[test]
fn a_script_whose_implementer_is_wrong_passes_every_phase_and_fails_on_the_tests() {
    let env = Env::new();
    env.ok(["admit", "--model", "scripted/r1-string-slugify-wrong"]);
    let r = stage2(
        &env,
        &["--fake-behavior", "agent"],
        &[
            SCRIPTED[0],
            ("CTO_HARNESS_CASE_MODEL", "r1-string-slugify-wrong"),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.report["verdict"], "fail");
    assert_eq!(r.report["tests"]["result"], "failed");
    let out = fs::read_to_string(r.dir.join("backend/provider-stdout.log")).unwrap();
    assert!(out.contains("Pipeline completed successfully"), "{out}");
}

#[test]
fn an_edited_or_unadmitted_script_blocks_before_the_provider_starts() {
    let env = Env::new();
    let fx = env.copy_of_builtin_fixture("fx");
    let run = || {
        stage2(
            &env,
            &["--fixture", s(&fx), "--fake-behavior", "agent"],
            &SCRIPTED,
        )
    };
    let admit = || {
        env.ok([
            "admit",
            "--model",
            "scripted/r1-string-slugify",
            "--fixture",
            s(&fx),
        ])
    };
    let r = run();
    assert_eq!(r.report["status"], "blocked");
    assert!(!provider_started(&r.dir));
    admit();
    let script = fx.join("model-scripts/r1-string-slugify.json");
    let text = fs::read_to_string(&script).unwrap();
    fs::write(
        &script,
        text.replace("I implemented", "I (edited) implemented"),
    )
    .unwrap();
    let r = run();
    assert_eq!(r.report["status"], "blocked");
    assert!(!provider_started(&r.dir));
    let note = fs::read_to_string(r.dir.join("backend/provider-model-not-admitted.txt")).unwrap();
    assert!(note.contains("edited since"), "{note}");
    // Re-admitting the edited script is a new admission of new bytes; then it runs.
    admit();
    let r = run();
    assert_eq!(r.report["verdict"], "pass", "{}", r.stderr);
    let admissions: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM model_admissions WHERE provider = 'scripted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(admissions, 2, "the edited script is a second admission");
}

struct Stub(Child);

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python endpoint, replaying the built-in script; returns it and its port.
fn stub(env: &Env) -> (Stub, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/r1-string-slugify/model-scripts/r1-string-slugify.json");
    let port_file = env.path("stub.port");
    let child = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/openai_stub.py"))
        .args([&script, &port_file, &env.path("stub.auth")])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stub = Stub(child);
    let t = Instant::now();
    while !port_file.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the stub endpoint did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let port = fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (stub, port)
}

#[test]
fn an_admitted_endpoint_is_reached_through_a_recording_proxy_that_never_writes_the_key() {
    let env = Env::new();
    let (_stub, port) = stub(&env);
    let url = format!("http://127.0.0.1:{port}/v1");
    env.ok(["admit", "--model", "local/slugger", "--endpoint", &url]);
    let r = stage2(
        &env,
        &["--fake-behavior", "agent"],
        &[
            ("CTO_HARNESS_CASE_MODEL_PROVIDER", "local"),
            ("CTO_HARNESS_CASE_MODEL", "slugger"),
            ("CTO_HARNESS_PASS_ENV", "OPENAI_API_KEY"),
            ("OPENAI_API_KEY", "sk-test-not-for-the-record"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = &r.report["model"];
    assert_eq!(m["endpoint"], url.as_str());
    assert_eq!(m["exchanges"], 6);
    // The endpoint got the key; the provider could reach only the proxy, not the endpoint.
    let auth = fs::read_to_string(env.path("stub.auth")).unwrap();
    assert!(
        auth.lines()
            .all(|l| l == "Bearer sk-test-not-for-the-record"),
        "{auth}"
    );
    let proxy = port_of(m["served_at"].as_str().unwrap());
    assert_eq!(
        r.report["sandbox"]["network"]["tcp_connect"],
        serde_json::json!([proxy])
    );
    assert_ne!(proxy, u64::from(port));
    let t = transcript(&r);
    assert_eq!(t.len(), 6);
    assert!(t
        .iter()
        .all(|x| x["endpoint"] == format!("http://127.0.0.1:{port}")));
    assert!(t[0]["response"]["body"]
        .as_str()
        .unwrap()
        .contains("data: "));
    let text = fs::read_to_string(r.dir.join("backend/model-transcript.jsonl")).unwrap();
    assert!(!text.contains("sk-test-not-for-the-record"));
    let trace = env
        .ok([
            "trace",
            &format!("run:{}", r.report["run_id"].as_str().unwrap()),
        ])
        .stdout;
    assert!(
        trace.contains(&format!("model local/slugger at {url}")),
        "{trace}"
    );
}

#[test]
fn bad_model_admissions_exit_2_and_change_nothing() {
    let env = Env::new();
    env.ok(["init"]);
    let before = env.head();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--model", "local/m", "--endpoint", "ftp://host/v1"],
            "ftp://host/v1",
        ),
        (
            &["--model", "local/m", "--endpoint", "http://user@host/v1"],
            "http://user@host/v1",
        ),
        (
            &[
                "--model",
                "local/m",
                "--endpoint",
                "http://127.0.0.1:8080/v1",
                "--api",
                "grpc",
            ],
            "--api `grpc`",
        ),
        (
            &["--model", "scripted/no-such-script"],
            "no-such-script.json",
        ),
        (
            &[
                "--model",
                "scripted/r1-string-slugify",
                "--endpoint",
                "http://127.0.0.1:1/v1",
            ],
            "--endpoint and --api do not apply",
        ),
    ];
    for (args, needle) in cases {
        let mut a = vec!["admit"];
        a.extend(args.iter());
        let r = env.run(&a);
        assert_eq!(r.code, 2, "{a:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle) && r.stderr.contains("hint:"),
            "{a:?}: the error names `{needle}` and says what to do: {}",
            r.stderr
        );
    }
    assert_eq!(env.head(), before);
    let r = env.run(["admit", "--model", "scripted/no-such-script"]);
    assert!(
        r.stderr.contains("r1-string-slugify-wrong"),
        "names the scripts there: {}",
        r.stderr
    );
}

#[test]
fn a_request_the_transcript_could_not_show_is_refused_not_sent() {
    let env = Env::new();
    env.ok(["admit", "--model", "scripted/r1-string-slugify"]);
    let repo = env.repo("provider");
    let python = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // A provider that asks the model with a gzip body, then with UTF-16 JSON.
    fs::write(
        repo.bin(),
        format!(
            "#!/bin/sh
exec {} - <<'PY'
import gzip, json, os, urllib.request
cfg = json.load(open(os.path.expanduser('~/.pi/agent/models.json')))
url = cfg['providers']['openai']['baseUrl'] + '/chat/completions'
msg = json.dumps({{'model': 'r1-string-slugify', 'messages': [{{'role': 'user', 'content': 'hidden'}}]}})
for body, headers in [(gzip.compress(msg.encode()), {{'Content-Encoding': 'gzip'}}), (msg.encode('utf-16'), {{}})]:
    headers['Content-Type'] = 'application/json'
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers))
        print('served')
    except urllib.error.HTTPError as e:
        print('refused', e.code)
PY
",
            python.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(repo.bin(), fs::Permissions::from_mode(0o755)).unwrap();
    env.admit_repo(&repo);
    let r = stage2(&env, &["--provider-bin", s(&repo.bin())], &SCRIPTED);
    let out = fs::read_to_string(r.dir.join("backend/provider-stdout.log")).unwrap();
    assert_eq!(out, "refused 415\nrefused 415\n", "{}", r.report);
    let t = transcript(&r);
    assert_eq!(t.len(), 2);
    for x in &t {
        assert_eq!(x["response"]["status"], 415, "{x}");
        assert!(x["request"].is_string(), "{x}");
    }
    assert!(t[0]["response"]["error"]
        .as_str()
        .unwrap()
        .contains("Content-Encoding"));
}
