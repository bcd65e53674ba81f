//! Projection of journal events into the relational tables. `apply` is the only
//! writer of those tables, so `reindex` and `audit` can rebuild them exactly.

use rusqlite::{params, Connection};

use super::events::{Body, Event, ObjRec, SourceRec};
use crate::error::{Error, Result};

fn put_objects(c: &Connection, seq: i64, objects: &[ObjRec]) -> Result<()> {
    let mut st = c
        .prepare_cached("INSERT OR IGNORE INTO objects (id, sha256, size, kind, seq) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(Error::sql("project objects"))?;
    for o in objects {
        st.execute(params![
            o.id.to_string(),
            o.sha256.to_string(),
            o.size as i64,
            o.kind.as_str(),
            seq
        ])
        .map_err(Error::sql("project objects"))?;
    }
    Ok(())
}

mod erased {
    /// Serialises a record into the JSON text a column holds.
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("records serialise")
        }
    }
}

/// A recorded clone. The same clone in the same state has the same id, so a source
/// carried again (by a refusal) is already there and is left as first recorded.
fn apply_source(c: &Connection, seq: i64, s: &SourceRec, t: &str) -> Result<()> {
    put_objects(c, seq, &s.objects)?;
    let fresh = c
        .prepare_cached("INSERT OR IGNORE INTO sources (id, seq, path, url, commit_id, branch, tree_id, snapshot, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        .and_then(|mut st| st.execute(params![s.id, seq, s.path, s.url, s.commit, s.branch, s.tree, s.snapshot.to_string(), t]))
        .map_err(Error::sql("project source"))?;
    if fresh == 1 {
        let mut st = c
            .prepare_cached("INSERT INTO source_changes (source_id, path, status, object) VALUES (?1, ?2, ?3, ?4)")
            .map_err(Error::sql("project source"))?;
        for ch in &s.changes {
            st.execute(params![
                s.id,
                ch.path,
                ch.status,
                ch.object.map(|o| o.to_string())
            ])
            .map_err(Error::sql("project source"))?;
        }
    }
    Ok(())
}

pub(super) fn apply(c: &Connection, e: &Event) -> Result<()> {
    let seq = e.seq as i64;
    let actor = e.actor.display();
    let t = &e.time;
    let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<()> {
        c.prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map(|_| ())
            .map_err(Error::sql("update projection"))
    };
    match &e.body {
        Body::Init { .. } => {}
        Body::Ingest(r) => {
            put_objects(c, seq, &r.objects)?;
            for i in &r.items {
                run(
                    "INSERT OR REPLACE INTO ingests (seq, path, object, kind, artifact_kind, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![seq, i.path, i.object.to_string(), i.kind.as_str(), i.artifact_kind, i.label],
                )?;
            }
        }
        Body::Source(s) => apply_source(c, seq, s, t)?,
        Body::Admission(a) => {
            put_objects(c, seq, &a.objects)?;
            run(
                "INSERT INTO admissions (id, seq, name, object, sha256, size, path, pin, commit_id, source_id, scope, build_id, decisions, actor, time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    a.id,
                    seq,
                    a.name,
                    a.object.to_string(),
                    a.sha256.to_string(),
                    a.size as i64,
                    a.path,
                    a.pin,
                    a.commit,
                    a.source,
                    a.scope,
                    a.build,
                    serde_json::to_string(&a.decisions).expect("strings serialise"),
                    actor,
                    t
                ],
            )?;
            for m in &a.allowed_modified {
                run(
                    "INSERT INTO admission_modified (admission_id, path, status, object) VALUES (?1, ?2, ?3, ?4)",
                    params![a.id, m.path, m.status, m.object.map(|o| o.to_string())],
                )?;
            }
        }
        Body::Refusal(r) => {
            put_objects(c, seq, &r.objects)?;
            if let Some(s) = &r.source {
                apply_source(c, seq, s, t)?;
            }
            run(
                "INSERT INTO refusals (id, seq, subject, path, object, sha256, pin, source_id, reason, message, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![r.id, seq, r.subject, r.path, r.object.map(|o| o.to_string()), r.sha256.map(|o| o.to_string()), r.pin, r.source.as_ref().map(|s| &s.id), r.reason, r.message, actor, t],
            )?;
        }
        Body::ModelAdmission(m) => {
            run(
                "INSERT INTO model_admissions (id, seq, provider, model, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![m.id, seq, m.provider, m.model, actor, t],
            )?;
        }
        Body::Revocation(r) => {
            run(
                "INSERT INTO revocations (id, seq, target, reason, actor, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.id, seq, r.target, r.reason, actor, t],
            )?;
        }
        Body::Run(r) => {
            put_objects(c, seq, &r.objects)?;
            let s = |o: &Option<crate::id::ObjectId>| o.map(|o| o.to_string());
            run(
                "INSERT INTO runs (id, seq, kind, fixture, lane, status, verdict, provider_started, provider_path, provider_object, provider_admission, model, model_admission,
                                   config_object, report_object, tree_object, run_dir, started, finished)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    r.id,
                    seq,
                    r.run_kind,
                    r.fixture,
                    r.lane,
                    r.status,
                    r.verdict,
                    r.provider_started,
                    r.provider_path,
                    s(&r.provider_object),
                    r.provider_admission,
                    r.model,
                    r.model_admission,
                    s(&r.config_object),
                    s(&r.report_object),
                    r.tree_object.to_string(),
                    r.run_dir,
                    r.started,
                    r.finished
                ],
            )?;
            for a in &r.artifacts {
                run(
                    "INSERT INTO run_artifacts (run_id, path, object) VALUES (?1, ?2, ?3)",
                    params![r.id, a.path, a.object.to_string()],
                )?;
            }
        }
        Body::Build(b) => {
            put_objects(c, seq, &b.objects)?;
            let j = |v: &dyn erased::Json| v.json();
            let s = |o: &Option<crate::id::ObjectId>| o.map(|o| o.to_string());
            run(
                "INSERT INTO builds (id, seq, name, status, reason, source_id, source_after_id, commit_id, url, argv, cwd, started, finished,
                                     exit_code, signal, tools, env, stdout_object, stderr_object, check_of, check_result, check_outputs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
                params![
                    b.id,
                    seq,
                    b.name,
                    b.status,
                    b.reason,
                    b.source,
                    b.source_after,
                    b.commit,
                    b.url,
                    j(&b.argv),
                    b.cwd,
                    b.started,
                    b.finished,
                    b.exit_code,
                    b.signal,
                    j(&b.tools),
                    j(&b.env),
                    s(&b.stdout),
                    s(&b.stderr),
                    b.check.as_ref().map(|c| c.of.clone()),
                    b.check.as_ref().map(|c| c.result.clone()),
                    b.check.as_ref().map(|c| j(&c.outputs)),
                ],
            )?;
            for o in &b.outputs {
                run(
                    "INSERT INTO build_outputs (build_id, path, object, sha256, size, kind, inside_source, ignored) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![b.id, o.path, o.object.to_string(), o.sha256.to_string(), o.size as i64, o.kind.as_str(), o.inside_source, o.ignored],
                )?;
            }
            for m in &b.modified {
                run(
                    "INSERT INTO build_modified (build_id, path, status, old_object, new_object) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![b.id, m.path, m.status, s(&m.old_object), s(&m.new_object)],
                )?;
            }
            for p in &b.created {
                run(
                    "INSERT INTO build_created (build_id, path) VALUES (?1, ?2)",
                    params![b.id, p],
                )?;
            }
        }
    }
    Ok(())
}
