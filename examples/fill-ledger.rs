//! Fills a ledger with a synthetic provenance graph for the query benchmark:
//! `cargo run --release --example fill-ledger -- DIR BUILDS RUNS`.
//! Each build has its own commit, source, output and admission; runs are spread
//! evenly over the admissions. Object ids are synthetic (nothing is stored), so
//! `audit` of this ledger reports missing objects: it exists to time queries.

use std::path::PathBuf;

use cto_ledger::events::*;
use cto_ledger::id::{
    AdmissionId, BuildId, CommitId, ObjectId, ObjectMeta, RunId, Sha256Digest, SourceId,
};
use cto_ledger::state::{AdmissionScope, BuildStatus, Lane, RunStatus, Verdict};
use cto_ledger::tree::ObjKind;
use cto_ledger::{Home, Mode};

fn meta(tag: &str, i: usize) -> ObjectMeta {
    let b = blake3::hash(format!("{tag}{i}").as_bytes());
    ObjectMeta {
        id: ObjectId(*b.as_bytes()),
        sha256: Sha256Digest(*blake3::hash(b.as_bytes()).as_bytes()),
        size: 1,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, builds, runs) = match args.as_slice() {
        [_, d, b, r] => (
            PathBuf::from(d),
            b.parse::<usize>().expect("BUILDS"),
            r.parse::<usize>().expect("RUNS"),
        ),
        _ => {
            eprintln!("usage: fill-ledger DIR BUILDS RUNS");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&dir).expect("create ledger dir");
    let mut l = Home::open(&dir, Mode::ReadWrite).expect("open ledger");
    fill_builds(&mut l, builds);
    fill_runs(&mut l, builds, runs);
    let head = l.ledger.head().expect("head");
    println!(
        "filled {} with {builds} builds and {runs} runs: {} events",
        dir.display(),
        head.seq
    );
}

/// `builds` sources, builds and admissions of `ca`, one commit each.
fn fill_builds(l: &mut Home, builds: usize) {
    let mut batch = Vec::new();
    for i in 0..builds {
        let commit = hex::encode(&blake3::hash(format!("commit{i}").as_bytes()).as_bytes()[..20]);
        let snap = meta("snap", i);
        let out = meta("out", i);
        let log = meta("log", i);
        let src = SourceId::parse(&format!("src_{:016x}", i)).expect("id");
        let commit = CommitId::parse(&commit).expect("40 hex");
        let bld = BuildId::parse(&format!("bld_{:016x}", i)).expect("id");
        batch.push(Body::Source(SourceRec {
            id: src.clone(),
            path: format!("/clones/{i}"),
            url: Some("https://github.com/workos/case.git".into()),
            commit: commit.clone(),
            branch: Some("main".into()),
            tree: commit.to_string(),
            snapshot: snap.id,
            changes: vec![],
            index_flags: vec![],
            objects: vec![
                ObjRec::new(snap, ObjKind::Tree),
                ObjRec::new(out, ObjKind::Blob),
                ObjRec::new(log, ObjKind::Blob),
            ],
        }));
        batch.push(Body::Build(BuildRec {
            id: bld.clone(),
            name: Some("ca".into()),
            status: BuildStatus::Succeeded,
            reason: None,
            source: src.clone(),
            source_after: None,
            commit: commit.clone(),
            url: Some("https://github.com/workos/case.git".into()),
            argv: vec!["bun".into(), "run".into(), "build:binary".into()],
            cwd: format!("/clones/{i}"),
            started: "2026-05-31T00:00:00.000Z".into(),
            finished: "2026-05-31T00:01:00.000Z".into(),
            exit_code: Some(0),
            signal: None,
            tools: vec![],
            env: vec![],
            stdout: Some(log.id),
            stderr: Some(log.id),
            outputs: vec![OutputRec {
                path: format!("/clones/{i}/dist/ca"),
                object: out.id,
                sha256: out.sha256,
                size: 1,
                kind: ObjKind::Blob,
                inside_source: true,
                ignored: true,
            }],
            modified: vec![],
            created: vec![],
            check: None,
            objects: vec![],
        }));
        batch.push(Body::Admission(AdmissionRec {
            id: AdmissionId::parse(&format!("adm_{:016x}", i)).expect("id"),
            name: format!("ca{i}"),
            object: out.id,
            sha256: out.sha256,
            size: 1,
            path: format!("/clones/{i}/dist/ca"),
            pin: Some(commit.short(7).to_string()),
            commit: Some(commit.clone()),
            source: Some(src),
            scope: AdmissionScope::Any,
            build: Some(bld),
            allowed_modified: vec![],
            decisions: vec![],
            policies: vec![],
            objects: vec![],
        }));
        if batch.len() >= 3000 {
            l.commit(std::mem::take(&mut batch)).expect("commit");
        }
    }
    l.commit(batch).expect("commit");
}

/// `runs` Stage 2 runs spread over the builds' admissions.
fn fill_runs(l: &mut Home, builds: usize, runs: usize) {
    let mut batch = Vec::new();
    for r in 0..runs {
        let b = r % builds.max(1);
        let report = meta("report", r);
        batch.push(Body::Run(RunRec {
            id: RunId::parse(&format!("20260531T000000Z-r1-string-slugify-{r}")).expect("id"),
            run_kind: "stage2".into(),
            fixture: "r1-string-slugify".into(),
            lane: Lane::Fake,
            status: if r % 7 == 0 {
                RunStatus::Failed
            } else {
                RunStatus::Passed
            },
            verdict: if r % 7 == 0 {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
            provider_started: true,
            provider_path: None,
            provider_object: Some(meta("out", b).id),
            provider_admission: Some(AdmissionId::parse(&format!("adm_{:016x}", b)).expect("id")),
            model: Some("fake/fake-model".into()),
            model_admission: None,
            config_object: Some(report.id),
            report_object: Some(report.id),
            tree_object: report.id,
            run_dir: format!("/runs/{r}"),
            started: "2026-05-31T00:02:00.000Z".into(),
            finished: "2026-05-31T00:03:00.000Z".into(),
            sandbox: Some("landlock ABI 7, network none".into()),
            start: None,
            policies: vec![],
            artifacts: vec![],
            objects: vec![ObjRec::new(report, ObjKind::Blob)],
        }));
        if batch.len() >= 5000 {
            l.commit(std::mem::take(&mut batch)).expect("commit");
        }
    }
    l.commit(batch).expect("commit");
}
