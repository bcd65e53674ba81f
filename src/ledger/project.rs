//! Projection of journal events into the relational tables. `apply` is the only
//! writer of those tables, so `reindex` and `audit` can rebuild them exactly.

use rusqlite::{params, Connection, Params};

use super::events::{
    AdmissionRec, Body, BuildRec, Event, IngestRec, KeyRec, KeyRevocationRec, ModelAdmissionRec,
    ObjRec, PolicyDecisionRec, RefusalRec, RevocationRec, RunRec, RunStartRec, SourceRec,
};
use crate::error::{Error, Result};

/// What every row an event projects shares: the event's number, actor and time.
struct At<'a> {
    c: &'a Connection,
    seq: i64,
    actor: String,
    time: &'a str,
}

impl At<'_> {
    fn run(&self, sql: &str, p: impl Params) -> Result<()> {
        self.c
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map(|_| ())
            .map_err(Error::sql("update projection"))
    }

    fn objects(&self, objects: &[ObjRec]) -> Result<()> {
        for o in objects {
            self.run(
                "INSERT OR IGNORE INTO objects (id, sha256, size, kind, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![o.id, o.sha256, o.size as i64, o.kind, self.seq],
            )?;
        }
        Ok(())
    }
}

/// A record as the JSON text a column holds.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialise")
}

pub(super) fn apply(c: &Connection, e: &Event) -> Result<()> {
    let at = At {
        c,
        seq: e.seq as i64,
        actor: e.actor.display(),
        time: &e.time,
    };
    match &e.body {
        Body::Init { .. } => Ok(()),
        Body::Ingest(r) => ingest(&at, r),
        Body::Source(s) => source(&at, s),
        Body::Admission(a) => admission(&at, a),
        Body::Refusal(r) => refusal(&at, r),
        Body::ModelAdmission(m) => model_admission(&at, m),
        Body::Revocation(r) => revocation(&at, r),
        Body::Key(k) => key(&at, k),
        Body::KeyRevocation(r) => key_revocation(&at, r),
        Body::Witness(w) => at.run(
            "INSERT INTO witness_events (seq, name, vkey, url, removed, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![at.seq, w.name, w.vkey, w.url, w.removed, at.actor, at.time],
        ),
        Body::RunStart(r) => run_start(&at, r),
        Body::Run(r) => run(&at, r),
        Body::Build(b) => build(&at, b),
        Body::Policy(p) => {
            at.objects(&p.objects)?;
            at.run(
                "INSERT INTO policy_events (seq, name, object, sha256, package, applies, path, removed, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![at.seq, p.name, p.object, p.sha256, p.package, json(&p.applies), p.path, p.removed, at.actor, at.time],
            )
        }
    }
}

/// The decisions an admission, refusal or run records, in order.
fn decisions(at: &At, subject: &str, id: &str, d: &[PolicyDecisionRec]) -> Result<()> {
    for (ord, x) in d.iter().enumerate() {
        at.run(
            "INSERT INTO policy_decisions (seq, subject, subject_id, ord, policy, sha256, input, input_object, result, messages) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![at.seq, subject, id, ord as i64, x.policy, x.sha256, x.input, x.input_object, x.result.as_str(), json(&x.messages)],
        )?;
    }
    Ok(())
}

fn ingest(at: &At, r: &IngestRec) -> Result<()> {
    at.objects(&r.objects)?;
    for i in &r.items {
        at.run(
            "INSERT OR REPLACE INTO ingests (seq, path, object, kind, artifact_kind, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![at.seq, i.path, i.object, i.kind, i.artifact_kind, i.label],
        )?;
    }
    Ok(())
}

/// A recorded clone. The same clone in the same state has the same id, so a source
/// carried again (by a refusal) is already there and is left as first recorded.
fn source(at: &At, s: &SourceRec) -> Result<()> {
    at.objects(&s.objects)?;
    let fresh = at
        .c
        .prepare_cached("INSERT OR IGNORE INTO sources (id, seq, path, url, commit_id, branch, tree_id, snapshot, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        .and_then(|mut st| st.execute(params![s.id, at.seq, s.path, s.url, s.commit, s.branch, s.tree, s.snapshot, at.time]))
        .map_err(Error::sql("project source"))?;
    if fresh == 1 {
        for ch in &s.changes {
            at.run(
                "INSERT INTO source_changes (source_id, path, status, object) VALUES (?1, ?2, ?3, ?4)",
                params![s.id, ch.path, ch.status, ch.object],
            )?;
        }
    }
    Ok(())
}

fn admission(at: &At, a: &AdmissionRec) -> Result<()> {
    at.objects(&a.objects)?;
    at.run(
        "INSERT INTO admissions (id, seq, name, object, sha256, size, path, pin, commit_id, source_id, scope, build_id, decisions, actor, time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            a.id,
            at.seq,
            a.name,
            a.object,
            a.sha256,
            a.size as i64,
            a.path,
            a.pin,
            a.commit,
            a.source,
            a.scope,
            a.build,
            json(&a.decisions),
            at.actor,
            at.time
        ],
    )?;
    for m in &a.allowed_modified {
        at.run(
            "INSERT INTO admission_modified (admission_id, path, status, object) VALUES (?1, ?2, ?3, ?4)",
            params![a.id, m.path, m.status, m.object],
        )?;
    }
    decisions(at, "admission", a.id.as_str(), &a.policies)
}

fn refusal(at: &At, r: &RefusalRec) -> Result<()> {
    at.objects(&r.objects)?;
    if let Some(s) = &r.source {
        source(at, s)?;
    }
    at.run(
        "INSERT INTO refusals (id, seq, subject, path, object, sha256, pin, source_id, reason, message, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![r.id, at.seq, r.subject, r.path, r.object, r.sha256, r.pin, r.source.as_ref().map(|s| &s.id), r.reason, r.message, at.actor, at.time],
    )?;
    decisions(at, "refusal", r.id.as_str(), &r.policies)
}

fn model_admission(at: &At, m: &ModelAdmissionRec) -> Result<()> {
    if let Some(s) = &m.script {
        at.objects(std::slice::from_ref(s))?;
    }
    at.run(
        "INSERT INTO model_admissions (id, seq, provider, model, actor, time, endpoint, api, script_object, script_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            m.id,
            at.seq,
            m.provider,
            m.model,
            at.actor,
            at.time,
            m.endpoint,
            m.api,
            m.script.as_ref().map(|s| s.id),
            m.script_path
        ],
    )
}

fn revocation(at: &At, r: &RevocationRec) -> Result<()> {
    at.run(
        "INSERT INTO revocations (id, seq, target, reason, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![r.id, at.seq, r.target, r.reason, at.actor, at.time],
    )
}

fn run_start(at: &At, r: &RunStartRec) -> Result<()> {
    at.objects(&r.objects)?;
    at.run(
        "INSERT INTO run_starts (id, seq, kind, fixture, fixture_tree, lane, provider_object, provider_admission, model, model_admission, timeout_ms, run_dir, digest, time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            r.id,
            at.seq,
            r.run_kind,
            r.fixture,
            r.fixture_tree,
            r.lane,
            r.provider_object,
            r.provider_admission,
            r.model,
            r.model_admission,
            r.timeout_ms as i64,
            r.run_dir,
            r.digest(),
            at.time
        ],
    )
}

fn run(at: &At, r: &RunRec) -> Result<()> {
    at.objects(&r.objects)?;
    at.run(
        "INSERT INTO runs (id, seq, kind, fixture, lane, status, verdict, provider_started, provider_path, provider_object, provider_admission, model, model_admission,
                           config_object, report_object, tree_object, run_dir, started, finished, sandbox, start)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        params![
            r.id,
            at.seq,
            r.run_kind,
            r.fixture,
            r.lane,
            r.status,
            r.verdict,
            r.provider_started,
            r.provider_path,
            r.provider_object,
            r.provider_admission,
            r.model,
            r.model_admission,
            r.config_object,
            r.report_object,
            r.tree_object,
            r.run_dir,
            r.started,
            r.finished,
            r.sandbox,
            r.start
        ],
    )?;
    for a in &r.artifacts {
        at.run(
            "INSERT INTO run_artifacts (run_id, path, object) VALUES (?1, ?2, ?3)",
            params![r.id, a.path, a.object],
        )?;
    }
    decisions(at, "run", r.id.as_str(), &r.policies)
}

fn build(at: &At, b: &BuildRec) -> Result<()> {
    at.objects(&b.objects)?;
    let check = b.check.as_ref();
    at.run(
        "INSERT INTO builds (id, seq, name, status, reason, source_id, source_after_id, commit_id, url, argv, cwd, started, finished,
                             exit_code, signal, tools, env, stdout_object, stderr_object, check_of, check_result, check_outputs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        params![
            b.id,
            at.seq,
            b.name,
            b.status,
            b.reason,
            b.source,
            b.source_after,
            b.commit,
            b.url,
            json(&b.argv),
            b.cwd,
            b.started,
            b.finished,
            b.exit_code,
            b.signal,
            json(&b.tools),
            json(&b.env),
            b.stdout,
            b.stderr,
            check.map(|c| &c.of),
            check.map(|c| c.result),
            check.map(|c| json(&c.outputs)),
        ],
    )?;
    for o in &b.outputs {
        at.run(
            "INSERT INTO build_outputs (build_id, path, object, sha256, size, kind, inside_source, ignored) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![b.id, o.path, o.object, o.sha256, o.size as i64, o.kind, o.inside_source, o.ignored],
        )?;
    }
    for m in &b.modified {
        at.run(
            "INSERT INTO build_modified (build_id, path, status, old_object, new_object) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![b.id, m.path, m.status, m.old_object, m.new_object],
        )?;
    }
    for p in &b.created {
        at.run(
            "INSERT INTO build_created (build_id, path) VALUES (?1, ?2)",
            params![b.id, p],
        )?;
    }
    Ok(())
}

fn key(at: &At, k: &KeyRec) -> Result<()> {
    at.run(
        "INSERT INTO keys (keyid, seq, algorithm, public_key, replaces, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![k.keyid, at.seq, k.algorithm, k.public_key, k.replaces, at.actor, at.time],
    )
}

fn key_revocation(at: &At, r: &KeyRevocationRec) -> Result<()> {
    at.run(
        "INSERT INTO key_revocations (keyid, seq, reason, actor, time) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.keyid, at.seq, r.reason, at.actor, at.time],
    )
}
