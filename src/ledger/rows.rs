//! The rows of the projection tables as types: each struct's fields are its table's
//! columns, so a renamed column fails to compile instead of silently reading a default.
//! The queries that return them are [`super::reads`] (REF resolution is `query`, the
//! generic `show` document `show`).

use rusqlite::{OptionalExtension as _, Params, Row};
use serde::Serialize;

use super::events::{CheckOutputRec, EnvRec, ToolRec};
use super::Ledger;
use crate::error::{Error, Result};
use crate::id::{
    AdmissionId, BuildId, CommitId, ModelAdmissionId, ObjectId, RefusalId, Revocable, RevocationId,
    RunId, Sha256Digest, SourceId,
};
use crate::state::{
    AdmissionScope, BuildStatus, ChangeStatus, CheckResult, Lane, RefusalReason, RunStatus, Verdict,
};
use crate::store::tree::ObjKind;

/// A row type read by `SELECT <COLUMNS> FROM <table> ...`.
pub(crate) trait FromRow: Sized {
    const COLUMNS: &'static str;
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self>;
}

/// A column holding a JSON document.
fn json_col<T: serde::de::DeserializeOwned>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn opt_json_col<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => json_col(r, i).map(Some),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectRow {
    pub id: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub kind: ObjKind,
}

impl FromRow for ObjectRow {
    const COLUMNS: &'static str = "id, sha256, size, kind";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ObjectRow {
            id: r.get(0)?,
            sha256: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            kind: r.get(3)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdmissionRow {
    pub id: AdmissionId,
    pub seq: u64,
    pub name: String,
    pub object: ObjectId,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub path: String,
    pub pin: Option<String>,
    pub commit_id: Option<CommitId>,
    pub source_id: Option<SourceId>,
    pub scope: AdmissionScope,
    pub build_id: Option<BuildId>,
    pub decisions: Vec<String>,
    pub actor: String,
    pub time: String,
}

impl FromRow for AdmissionRow {
    const COLUMNS: &'static str = "a.id, a.seq, a.name, a.object, a.sha256, a.size, a.path, a.pin, a.commit_id, a.source_id, a.scope, a.build_id, a.decisions, a.actor, a.time";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AdmissionRow {
            id: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            name: r.get(2)?,
            object: r.get(3)?,
            sha256: r.get(4)?,
            size: r.get::<_, i64>(5)? as u64,
            path: r.get(6)?,
            pin: r.get(7)?,
            commit_id: r.get(8)?,
            source_id: r.get(9)?,
            scope: r.get(10)?,
            build_id: r.get(11)?,
            decisions: json_col(r, 12)?,
            actor: r.get(13)?,
            time: r.get(14)?,
        })
    }
}

/// An admission with the remote URL of its source and its revocation, if any.
#[derive(Debug, Clone, Serialize)]
pub struct AdmissionView {
    #[serde(flatten)]
    pub admission: AdmissionRow,
    pub url: Option<String>,
    /// Where the recorded source clone was (for a source without a remote URL).
    pub source_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelAdmissionRow {
    pub id: ModelAdmissionId,
    pub seq: u64,
    pub provider: String,
    pub model: String,
    pub actor: String,
    pub time: String,
    pub endpoint: Option<String>,
    pub api: Option<String>,
    pub script_object: Option<ObjectId>,
    pub script_path: Option<String>,
}

impl FromRow for ModelAdmissionRow {
    const COLUMNS: &'static str = "m.id, m.seq, m.provider, m.model, m.actor, m.time, m.endpoint, m.api, m.script_object, m.script_path";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ModelAdmissionRow {
            id: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            provider: r.get(2)?,
            model: r.get(3)?,
            actor: r.get(4)?,
            time: r.get(5)?,
            endpoint: r.get(6)?,
            api: r.get(7)?,
            script_object: r.get(8)?,
            script_path: r.get(9)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RevocationRow {
    pub id: RevocationId,
    pub seq: u64,
    pub target: Revocable,
    pub reason: String,
    pub actor: String,
    pub time: String,
}

impl FromRow for RevocationRow {
    const COLUMNS: &'static str = "r.id, r.seq, r.target, r.reason, r.actor, r.time";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RevocationRow {
            id: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            target: r.get(2)?,
            reason: r.get(3)?,
            actor: r.get(4)?,
            time: r.get(5)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    pub id: SourceId,
    pub path: String,
    pub url: Option<String>,
    pub commit_id: CommitId,
    pub branch: Option<String>,
    pub tree_id: String,
    pub snapshot: ObjectId,
}

impl FromRow for SourceRow {
    const COLUMNS: &'static str =
        "s.id, s.path, s.url, s.commit_id, s.branch, s.tree_id, s.snapshot";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(SourceRow {
            id: r.get(0)?,
            path: r.get(1)?,
            url: r.get(2)?,
            commit_id: r.get(3)?,
            branch: r.get(4)?,
            tree_id: r.get(5)?,
            snapshot: r.get(6)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub path: String,
    pub status: ChangeStatus,
    pub object: Option<ObjectId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildRow {
    pub id: BuildId,
    pub name: Option<String>,
    pub status: BuildStatus,
    pub reason: Option<String>,
    pub source_id: SourceId,
    pub commit_id: CommitId,
    pub url: Option<String>,
    pub argv: Vec<String>,
    pub cwd: String,
    pub started: String,
    pub finished: String,
    pub exit_code: Option<i32>,
    pub tools: Vec<ToolRec>,
    pub env: Vec<EnvRec>,
    pub stdout_object: Option<ObjectId>,
    pub stderr_object: Option<ObjectId>,
    pub check_of: Option<BuildId>,
    pub check_result: Option<CheckResult>,
    pub check_outputs: Option<Vec<CheckOutputRec>>,
}

impl FromRow for BuildRow {
    const COLUMNS: &'static str = "b.id, b.name, b.status, b.reason, b.source_id, b.commit_id, b.url, b.argv, b.cwd, b.started, b.finished, b.exit_code, b.tools, b.env, b.stdout_object, b.stderr_object, b.check_of, b.check_result, b.check_outputs";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(BuildRow {
            id: r.get(0)?,
            name: r.get(1)?,
            status: r.get(2)?,
            reason: r.get(3)?,
            source_id: r.get(4)?,
            commit_id: r.get(5)?,
            url: r.get(6)?,
            argv: json_col(r, 7)?,
            cwd: r.get(8)?,
            started: r.get(9)?,
            finished: r.get(10)?,
            exit_code: r.get(11)?,
            tools: json_col(r, 12)?,
            env: json_col(r, 13)?,
            stdout_object: r.get(14)?,
            stderr_object: r.get(15)?,
            check_of: r.get(16)?,
            check_result: r.get(17)?,
            check_outputs: opt_json_col(r, 18)?,
        })
    }
}

/// A `build --check` of a build: which rebuild, and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub id: BuildId,
    pub check_result: Option<CheckResult>,
    pub finished: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildOutputRow {
    pub path: String,
    pub object: ObjectId,
    pub inside_source: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildModifiedRow {
    pub path: String,
    pub status: ChangeStatus,
    pub old_object: Option<ObjectId>,
    pub new_object: Option<ObjectId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub seq: u64,
    pub kind: String,
    pub fixture: String,
    pub lane: Lane,
    pub status: RunStatus,
    pub verdict: Verdict,
    pub provider_started: bool,
    pub provider_path: Option<String>,
    pub provider_object: Option<ObjectId>,
    pub provider_admission: Option<AdmissionId>,
    pub model: Option<String>,
    pub model_admission: Option<ModelAdmissionId>,
    pub config_object: Option<ObjectId>,
    pub report_object: Option<ObjectId>,
    pub tree_object: Option<ObjectId>,
    pub run_dir: String,
    pub started: String,
    pub finished: String,
    pub sandbox: Option<String>,
}

impl UnfinishedRun {
    /// As a row of `runs`: status `unfinished`, nothing recorded but its registration.
    pub(crate) fn as_run(&self) -> RunRow {
        RunRow {
            id: self.id.clone(),
            seq: self.seq,
            kind: "stage2".into(),
            fixture: self.fixture.clone(),
            lane: self.lane,
            status: RunStatus::Unfinished,
            verdict: Verdict::Fail,
            provider_started: true,
            provider_path: None,
            provider_object: Some(self.provider_object),
            provider_admission: self.provider_admission.clone(),
            model: self.model.clone(),
            model_admission: None,
            config_object: None,
            report_object: None,
            tree_object: None,
            run_dir: self.run_dir.clone(),
            started: self.started.clone(),
            finished: String::new(),
            sandbox: None,
        }
    }
}

impl FromRow for RunRow {
    const COLUMNS: &'static str = "r.id, r.seq, r.kind, r.fixture, r.lane, r.status, r.verdict, r.provider_started, r.provider_path, r.provider_object, r.provider_admission, r.model, r.model_admission, r.config_object, r.report_object, r.tree_object, r.run_dir, r.started, r.finished, r.sandbox";
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RunRow {
            id: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            kind: r.get(2)?,
            fixture: r.get(3)?,
            lane: r.get(4)?,
            status: r.get(5)?,
            verdict: r.get(6)?,
            provider_started: r.get(7)?,
            provider_path: r.get(8)?,
            provider_object: r.get(9)?,
            provider_admission: r.get(10)?,
            model: r.get(11)?,
            model_admission: r.get(12)?,
            config_object: r.get(13)?,
            report_object: r.get(14)?,
            tree_object: r.get(15)?,
            run_dir: r.get(16)?,
            started: r.get(17)?,
            finished: r.get(18)?,
            sandbox: r.get(19)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusalRow {
    pub id: RefusalId,
    pub seq: u64,
    pub path: Option<String>,
    pub object: Option<ObjectId>,
    pub sha256: Option<Sha256Digest>,
    pub pin: Option<String>,
    pub source_id: Option<SourceId>,
    pub reason: RefusalReason,
    pub message: String,
    pub actor: String,
    pub time: String,
}

/// Which runs `runs` lists.
#[derive(Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub provider_object: Option<ObjectId>,
    /// RFC 3339 UTC, compared as text.
    pub since: Option<String>,
}

/// One page of runs, newest first: the filters of `runs`, and the event to start below.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunPage {
    pub status: Option<String>,
    pub verdict: Option<String>,
    pub fixture: Option<String>,
    pub model: Option<String>,
    pub provider_object: Option<ObjectId>,
    /// Only runs recorded by an event before this one.
    pub before: Option<u64>,
    pub limit: u64,
}

impl RunPage {
    /// Whether `r` passes the filters (not `before` or `limit`): the twin in Rust of
    /// `runs_page`'s SQL, for the runs that are not rows of `runs`.
    pub(crate) fn matches(&self, r: &RunRow) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        is(&self.status, Some(&r.status.to_string()))
            && is(&self.verdict, Some(&r.verdict.to_string()))
            && is(&self.fixture, Some(&r.fixture))
            && is(&self.model, r.model.as_deref())
            && self
                .provider_object
                .is_none_or(|o| r.provider_object == Some(o))
    }
}

/// An attempt registered by a `run_start` that no `run` event ended.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct UnfinishedRun {
    pub id: RunId,
    pub seq: u64,
    pub fixture: String,
    pub lane: Lane,
    pub provider_object: ObjectId,
    pub provider_admission: Option<AdmissionId>,
    pub model: Option<String>,
    pub started: String,
    pub timeout_ms: u64,
    pub run_dir: String,
}

/// The raw `objects` row as stored, for audit: a damaged row is a finding, not an error.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub id: String,
    pub sha256: String,
    pub size: i64,
    pub seq: i64,
    /// As stored, so audit can report a value that is not `blob` or `tree`.
    pub kind: String,
}

pub(super) fn read_err(action: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Sql { action, source: e }
}

impl Ledger {
    pub(super) fn all<T, P: Params>(
        &self,
        action: &'static str,
        sql: &str,
        p: P,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn().prepare_cached(sql).map_err(read_err(action))?;
        let rows = st
            .query_map(p, f)
            .map_err(read_err(action))?
            .collect::<rusqlite::Result<Vec<T>>>()
            .map_err(read_err(action));
        rows
    }

    pub(super) fn one<T, P: Params>(
        &self,
        action: &'static str,
        sql: &str,
        p: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row(p, f).optional())
            .map_err(read_err(action))
    }

    pub(super) fn rows_of<T: FromRow, P: Params>(
        &self,
        action: &'static str,
        from_where: &str,
        p: P,
    ) -> Result<Vec<T>> {
        self.all(
            action,
            &format!("SELECT {} FROM {from_where}", T::COLUMNS),
            p,
            T::from_row,
        )
    }

    pub(super) fn row_of<T: FromRow, P: Params>(
        &self,
        action: &'static str,
        from_where: &str,
        p: P,
    ) -> Result<Option<T>> {
        self.one(
            action,
            &format!("SELECT {} FROM {from_where}", T::COLUMNS),
            p,
            T::from_row,
        )
    }
}
