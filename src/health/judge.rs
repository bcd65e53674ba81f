//! The judge checks: providers that go after their own judge (the fake's tampering
//! behaviours), each of which must fail, or be recorded as it was, with the report
//! naming what it did, nothing of it left running and every limit held.

use std::fs;
use std::io::{Read, Write};
use std::time::Duration;

use super::Ctx;
use crate::error::Result;
use crate::stage2::{RunOptions, Stage2Out};
use crate::state::{RunStatus, Verdict};

type Outcome = Result<(bool, String)>;

fn tampered(o: &Stage2Out) -> Vec<String> {
    o.report
        .judge
        .as_ref()
        .map(|j| j.tampered.iter().map(|t| t.path.clone()).collect())
        .unwrap_or_default()
}

fn fails_as_tampered(o: &Stage2Out, paths: &[&str]) -> (bool, String) {
    let t = tampered(o);
    let pass = o.report.verdict == Verdict::Fail
        && o.report
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("tests_tampered"))
        && paths.iter().all(|p| t.iter().any(|x| x == p));
    (
        pass,
        format!("verdict {}, tampered {t:?}", o.report.verdict),
    )
}

pub(super) fn judge_ignores_a_shadowed_runner(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("shadow"))?;
    Ok(fails_as_tampered(&o, &["unittest.py", "sitecustomize.py"]))
}

pub(super) fn judge_ignores_a_shadowed_test_module(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("shadow-package"))?;
    Ok(fails_as_tampered(&o, &["test_strings/__init__.py"]))
}

pub(super) fn judge_runs_the_fixtures_tests(cx: &mut Ctx) -> Outcome {
    let edited = cx.run(RunOptions::fake("edit-test"))?;
    let removed = cx.run(RunOptions::fake("delete-test"))?;
    let (p1, d1) = fails_as_tampered(&edited, &["test_strings.py"]);
    let (p2, d2) = fails_as_tampered(&removed, &["test_strings.py"]);
    let tests = |o: &Stage2Out| o.report.judge.as_ref().and_then(|j| j.tests_tree);
    let same = tests(&edited).is_some() && tests(&edited) == tests(&removed);
    Ok((
        p1 && p2 && same,
        format!(
            "test edited: {d1}; test removed: {d2}; both judged by the fixture's tests: {same}"
        ),
    ))
}

pub(super) fn changes_come_from_the_store(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("git-worktree"))?;
    let c: Vec<String> = o
        .report
        .workspace_changes
        .iter()
        .map(|c| format!("{} {}", c.status, c.path))
        .collect();
    let want = [
        "modified strings.py",
        "added added-by-provider.txt",
        "modified .git",
    ];
    let pass = want.iter().all(|w| c.iter().any(|x| x == w));
    Ok((
        pass,
        format!("with core.worktree=/ set by the provider, changes {c:?}"),
    ))
}

pub(super) fn gitdir_is_never_followed(cx: &mut Ctx) -> Outcome {
    let other = cx.tmp.join("other-repo");
    fs::create_dir_all(&other).map_err(crate::error::Error::io("create", &other))?;
    crate::git::init_and_commit(&other, "another repository")?;
    fs::write(other.join("secret-of-the-other-repo"), "x")
        .map_err(crate::error::Error::io("write", &other))?;
    let mut opts = RunOptions::fake("gitdir");
    opts.fake_env = vec![(
        "CTO_FAKE_CA_ESCAPE_GITDIR".into(),
        other.join(".git").display().to_string(),
    )];
    let o = cx.run(opts)?;
    let text = serde_json::to_string(&o.report).unwrap_or_default();
    let leaked = text.contains("secret-of-the-other-repo");
    Ok((
        !leaked,
        format!(
            "workspace .git replaced by a gitdir file: the other repository's files {} the report",
            if leaked { "APPEAR IN" } else { "stay out of" }
        ),
    ))
}

pub(super) fn nothing_outlives_the_run(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("fork-chain"))?;
    let (noted, alive) = super::noted_and_left(&o.run_dir);
    Ok((
        noted >= 10 && alive.is_empty(),
        format!("a chain of {noted} setsid forks; alive after the run: {alive:?}"),
    ))
}

pub(super) fn special_files_never_stop_the_record(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("fifo"))?;
    let dropped = o
        .report
        .judge
        .as_ref()
        .is_some_and(|j| j.dropped.iter().any(|d| d.path == "p"));
    let recorded = cx.home.ledger.has_run(o.report.run_id.as_str())?;
    Ok((
        recorded && dropped && o.report.verdict == Verdict::Pass,
        format!(
            "a FIFO in the workspace: run {}, FIFO {} the judged tree, verdict {}",
            if recorded { "recorded" } else { "NOT RECORDED" },
            if dropped {
                "kept out of"
            } else {
                "NOT KEPT OUT OF"
            },
            o.report.verdict
        ),
    ))
}

pub(super) fn output_is_bounded(cx: &mut Ctx) -> Outcome {
    let o = cx.run(RunOptions::fake("flood"))?;
    let out = o.report.output.map(|x| x.stdout).unwrap_or_default();
    let log = fs::metadata(o.run_dir.join("backend/provider-stdout.log")).map_or(0, |m| m.len());
    let limit = crate::stage2::RunLimits::DEFAULT.stdout_bytes;
    Ok((
        out.dropped > 0 && log <= limit + 200,
        format!(
            "{} bytes printed, {} kept, {} dropped, log {log} bytes",
            out.bytes, out.kept, out.dropped
        ),
    ))
}

pub(super) fn folders_are_bounded(cx: &mut Ctx) -> Outcome {
    let mut opts = RunOptions::fake("fill");
    opts.limits.folder_bytes = Some(8 << 20);
    opts.timeout_seconds = 60.0;
    let o = cx.run(opts)?;
    Ok((
        o.report.status == RunStatus::ProviderOutputLimit,
        format!("folders limited to 8 MiB: status {}", o.report.status),
    ))
}

/// A loopback endpoint whose every answer streams forever.
fn endless_endpoint() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
                let chunk = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
                    "y".repeat(64 << 10)
                );
                while conn.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    Ok(port)
}

fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub(super) fn model_stream_is_bounded(cx: &mut Ctx) -> Outcome {
    let port = endless_endpoint().map_err(crate::error::Error::io("listen on", "127.0.0.1:0"))?;
    let url = format!("http://127.0.0.1:{port}/v1");
    let args = crate::admission::ModelArgs {
        endpoint: Some(&url),
        ..Default::default()
    };
    crate::admission::admit_model(&mut cx.home, "local/endless", &args)?;
    let mut opts = RunOptions::fake("agent");
    opts.model_provider = Some("local".into());
    opts.model = Some("endless".into());
    opts.timeout_seconds = 6.0;
    let o = cx.run(opts)?;
    let peak = peak_rss_kib();
    let cut = o
        .report
        .limits
        .iter()
        .any(|l| l.name == "model_response_bytes" && l.hit);
    Ok((
        cut && peak < 200 * 1024,
        format!(
            "an endpoint that streams forever: answer cut at the limit: {cut}; harness peak {} MiB",
            peak / 1024
        ),
    ))
}
