//! Typed reads of the projection tables. Every query the commands need lives here (or
//! in `query` for REF resolution, `show` for the generic `show` document); each returns
//! a struct whose fields are the table's columns, so a renamed column fails to compile
//! instead of silently reading a default.

use rusqlite::{params, OptionalExtension as _, Params, Row};
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

/// The raw `objects` row as stored, for audit: a damaged row is a finding, not an error.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub id: String,
    pub sha256: String,
    pub size: i64,
    pub seq: i64,
}

fn read_err(action: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Sql { action, source: e }
}

impl Ledger {
    fn all<T, P: Params>(
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

    fn one<T, P: Params>(
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

    // ------------------------------------------------------------ objects

    pub fn object(&self, id: &ObjectId) -> Result<Option<ObjectRow>> {
        self.row_of("read object", "objects WHERE id = ?1", [id])
    }

    /// Every `objects` row as stored, in id order (audit re-hashes each).
    pub fn stored_objects(&self) -> Result<Vec<StoredObject>> {
        self.all(
            "read objects",
            "SELECT id, sha256, size, seq FROM objects ORDER BY id",
            [],
            |r| {
                Ok(StoredObject {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get(2)?,
                    seq: r.get(3)?,
                })
            },
        )
    }

    // ------------------------------------------------------------ admissions

    pub fn admission(&self, id: &AdmissionId) -> Result<Option<AdmissionRow>> {
        self.row_of("read admission", "admissions a WHERE a.id = ?1", [id])
    }

    /// Every admission of these exact bytes, oldest first, with source URL and revocation.
    pub fn admissions_of_object(&self, object: &ObjectId) -> Result<Vec<AdmissionView>> {
        type Joined = (AdmissionRow, Option<String>, Option<String>);
        let rows: Vec<Joined> = self.all(
            "read admissions",
            &format!("SELECT {}, s.url, s.path FROM admissions a LEFT JOIN sources s ON s.id = a.source_id WHERE a.object = ?1 ORDER BY a.seq", AdmissionRow::COLUMNS),
            [object],
            |r| Ok((AdmissionRow::from_row(r)?, r.get(15)?, r.get(16)?)),
        )?;
        rows.into_iter()
            .map(|(admission, url, source_path)| {
                let revocation = self.revocation_of(&Revocable::Admission(admission.id.clone()))?;
                Ok(AdmissionView {
                    admission,
                    url,
                    source_path,
                    revocation,
                })
            })
            .collect()
    }

    /// The newest unrevoked admission of these bytes (of scope `any` when `any_only`).
    pub fn live_admission(
        &self,
        object: &ObjectId,
        any_only: bool,
    ) -> Result<Option<AdmissionView>> {
        Ok(self
            .admissions_of_object(object)?
            .into_iter()
            .rev()
            .find(|a| {
                a.revocation.is_none() && (!any_only || a.admission.scope == AdmissionScope::Any)
            }))
    }

    pub fn latest_admission_of_object(&self, object: &ObjectId) -> Result<Option<AdmissionRow>> {
        self.row_of(
            "read admission",
            "admissions a WHERE a.object = ?1 ORDER BY a.seq DESC LIMIT 1",
            [object],
        )
    }

    /// The newest admission of a file that was at `path` when admitted.
    pub fn latest_admission_at_path(&self, path: &str) -> Result<Option<AdmissionRow>> {
        self.row_of(
            "read admission",
            "admissions a WHERE a.path = ?1 ORDER BY a.seq DESC LIMIT 1",
            [path],
        )
    }

    pub fn admission_by_name(&self, name: &str) -> Result<Option<AdmissionId>> {
        self.one(
            "read admission",
            "SELECT id FROM admissions WHERE name = ?1 ORDER BY seq DESC LIMIT 1",
            [name],
            |r| r.get(0),
        )
    }

    pub fn admissions_by_source(&self, source: &SourceId) -> Result<Vec<AdmissionRow>> {
        self.rows_of(
            "read admissions",
            "admissions a WHERE a.source_id = ?1 ORDER BY a.seq",
            [source],
        )
    }

    // ------------------------------------------------------------ models and revocations

    pub fn model_admission(&self, id: &ModelAdmissionId) -> Result<Option<ModelAdmissionRow>> {
        self.row_of(
            "read model admission",
            "model_admissions m WHERE m.id = ?1",
            [id],
        )
    }

    /// The newest admission of a provider/model pair; with `live`, only an unrevoked one.
    pub fn model_admission_of(
        &self,
        provider: &str,
        model: &str,
        live: bool,
    ) -> Result<Option<ModelAdmissionRow>> {
        self.row_of(
            "read model admission",
            "model_admissions m WHERE m.provider = ?1 AND m.model = ?2
               AND (?3 = 0 OR NOT EXISTS (SELECT 1 FROM revocations r WHERE r.target = m.id)) ORDER BY m.seq DESC LIMIT 1",
            params![provider, model, live],
        )
    }

    /// The live admission of `scripted/MODEL` whose script is exactly `script`.
    pub fn scripted_admission(
        &self,
        model: &str,
        script: &ObjectId,
    ) -> Result<Option<ModelAdmissionRow>> {
        self.row_of(
            "read model admission",
            "model_admissions m WHERE m.provider = 'scripted' AND m.model = ?1 AND m.script_object = ?2
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.target = m.id) ORDER BY m.seq DESC LIMIT 1",
            params![model, script],
        )
    }

    /// The first revocation of an admission or model admission.
    pub fn revocation_of(&self, target: &Revocable) -> Result<Option<RevocationRow>> {
        self.row_of(
            "read revocation",
            "revocations r WHERE r.target = ?1 ORDER BY r.seq LIMIT 1",
            [target],
        )
    }

    pub fn revocation(&self, id: &RevocationId) -> Result<Option<RevocationRow>> {
        self.row_of("read revocation", "revocations r WHERE r.id = ?1", [id])
    }

    /// The newest revoked admission of these bytes, with its revocation.
    pub fn revoked_admission_of_object(
        &self,
        object: &ObjectId,
    ) -> Result<Option<(AdmissionId, RevocationRow)>> {
        let rev: Option<RevocationRow> = self.row_of(
            "read revocation",
            "revocations r JOIN admissions a ON r.target = a.id WHERE a.object = ?1 ORDER BY r.seq DESC LIMIT 1",
            [object],
        )?;
        Ok(rev.and_then(|r| match &r.target {
            Revocable::Admission(a) => Some((a.clone(), r)),
            Revocable::Model(_) => None,
        }))
    }

    // ------------------------------------------------------------ sources

    pub fn source(&self, id: &SourceId) -> Result<Option<SourceRow>> {
        self.row_of("read source", "sources s WHERE s.id = ?1", [id])
    }

    pub fn has_source(&self, id: &SourceId) -> Result<bool> {
        Ok(self
            .one(
                "read source",
                "SELECT 1 FROM sources WHERE id = ?1",
                [id],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// Tracked paths of a source that differ from its commit.
    pub fn tracked_changes(&self, id: &SourceId) -> Result<Vec<ChangeRow>> {
        self.all("read source", "SELECT path, status, object FROM source_changes WHERE source_id = ?1 AND status != 'untracked' ORDER BY path", [id], |r| {
            Ok(ChangeRow { path: r.get(0)?, status: r.get(1)?, object: r.get(2)? })
        })
    }

    /// The remote URLs recorded for a commit, sorted.
    pub fn urls_of_commit(&self, commit: &CommitId) -> Result<Vec<String>> {
        self.all("read sources", "SELECT DISTINCT url FROM sources WHERE commit_id = ?1 AND url IS NOT NULL ORDER BY url", [commit], |r| r.get(0))
    }

    // ------------------------------------------------------------ builds

    pub fn build(&self, id: &BuildId) -> Result<Option<BuildRow>> {
        self.row_of("read build", "builds b WHERE b.id = ?1", [id])
    }

    /// The newest succeeded build that produced these bytes (from `commit`, when given),
    /// an original build before a `--check` rebuild.
    pub fn build_producing(
        &self,
        object: &ObjectId,
        commit: Option<&CommitId>,
    ) -> Result<Option<BuildId>> {
        self.one(
            "read build",
            "SELECT b.id FROM builds b JOIN build_outputs o ON o.build_id = b.id
             WHERE o.object = ?1 AND b.status = 'succeeded' AND (?2 IS NULL OR b.commit_id = ?2)
             ORDER BY b.check_of IS NOT NULL, b.seq DESC LIMIT 1",
            params![object, commit],
            |r| r.get(0),
        )
    }

    /// Every build with these bytes among its outputs.
    pub fn builds_with_output(&self, object: &ObjectId) -> Result<Vec<BuildId>> {
        self.all(
            "read builds",
            "SELECT DISTINCT build_id FROM build_outputs WHERE object = ?1",
            [object],
            |r| r.get(0),
        )
    }

    pub fn build_outputs(&self, id: &BuildId) -> Result<Vec<BuildOutputRow>> {
        self.all("read build", "SELECT path, object, inside_source FROM build_outputs WHERE build_id = ?1 ORDER BY path", [id], |r| {
            Ok(BuildOutputRow { path: r.get(0)?, object: r.get(1)?, inside_source: r.get(2)? })
        })
    }

    pub fn build_modified(&self, id: &BuildId) -> Result<Vec<BuildModifiedRow>> {
        self.all("read build", "SELECT path, status, old_object, new_object FROM build_modified WHERE build_id = ?1 ORDER BY path", [id], |r| {
            Ok(BuildModifiedRow { path: r.get(0)?, status: r.get(1)?, old_object: r.get(2)?, new_object: r.get(3)? })
        })
    }

    /// The `build --check` records of a build, oldest first.
    pub fn checks_of(&self, id: &BuildId) -> Result<Vec<CheckRow>> {
        self.all(
            "read build",
            "SELECT id, check_result, finished FROM builds WHERE check_of = ?1 ORDER BY seq",
            [id],
            |r| {
                Ok(CheckRow {
                    id: r.get(0)?,
                    check_result: r.get(1)?,
                    finished: r.get(2)?,
                })
            },
        )
    }

    /// Builds of a commit (not `--check` rebuilds), oldest first.
    pub fn builds_of_commit(&self, commit: &CommitId) -> Result<Vec<BuildId>> {
        self.all(
            "read builds",
            "SELECT id FROM builds WHERE commit_id = ?1 AND check_of IS NULL ORDER BY seq",
            [commit],
            |r| r.get(0),
        )
    }

    /// Admissions of a commit that no build of that commit explains.
    pub fn unbuilt_admissions_of_commit(&self, commit: &CommitId) -> Result<Vec<AdmissionId>> {
        self.all("read admissions", "SELECT id FROM admissions WHERE commit_id = ?1 AND (build_id IS NULL OR build_id NOT IN (SELECT id FROM builds WHERE commit_id = ?1)) ORDER BY seq", [commit], |r| r.get(0))
    }

    pub fn builds_of_source(&self, source: &SourceId) -> Result<Vec<BuildId>> {
        self.all(
            "read builds",
            "SELECT id FROM builds WHERE source_id = ?1 ORDER BY seq",
            [source],
            |r| r.get(0),
        )
    }

    /// Where the clone a build ran in was.
    pub fn source_path(&self, id: &SourceId) -> Result<Option<String>> {
        self.one(
            "read source",
            "SELECT path FROM sources WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
    }

    // ------------------------------------------------------------ runs

    /// The object a run recorded at `path` in its folder.
    pub fn run_artifact(&self, id: &RunId, path: &str) -> Result<Option<ObjectId>> {
        self.one(
            "read run artifact",
            "SELECT object FROM run_artifacts WHERE run_id = ?1 AND path = ?2",
            params![id, path],
            |r| r.get(0),
        )
    }

    pub fn run(&self, id: &RunId) -> Result<Option<RunRow>> {
        self.row_of("read run", "runs r WHERE r.id = ?1", [id])
    }

    pub fn has_run(&self, id: &str) -> Result<bool> {
        Ok(self
            .one("read run", "SELECT 1 FROM runs WHERE id = ?1", [id], |_| {
                Ok(())
            })?
            .is_some())
    }

    pub fn runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        self.rows_of(
            "read runs",
            "runs r WHERE (?1 IS NULL OR r.status = ?1) AND (?2 IS NULL OR r.provider_object = ?2) AND (?3 IS NULL OR r.started >= ?3) ORDER BY r.seq",
            params![f.status, f.provider_object, f.since],
        )
    }

    pub fn runs_of_provider(&self, admission: &AdmissionId) -> Result<Vec<RunId>> {
        self.all(
            "read runs",
            "SELECT id FROM runs WHERE provider_admission = ?1 ORDER BY seq",
            [admission],
            |r| r.get(0),
        )
    }

    pub fn runs_of_model(&self, model: &ModelAdmissionId) -> Result<Vec<RunId>> {
        self.all(
            "read runs",
            "SELECT id FROM runs WHERE model_admission = ?1 ORDER BY seq",
            [model],
            |r| r.get(0),
        )
    }

    /// Runs offered these bytes as a provider that no admission covered.
    pub fn runs_offered_unadmitted(&self, object: &ObjectId) -> Result<Vec<RunId>> {
        self.all("read runs", "SELECT id FROM runs WHERE provider_object = ?1 AND provider_admission IS NULL ORDER BY seq", [object], |r| r.get(0))
    }

    /// Notes where a run's folder is, before the run is recorded (see schema 6).
    pub(crate) fn note_run_folder(&self, id: &RunId, path: &str) -> Result<()> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO run_folders (id, path, started) VALUES (?1, ?2, ?3)",
                params![id, path, super::now()],
            )
            .map(|_| ())
            .map_err(read_err("note the run folder"))
    }

    /// Every run folder noted when its run started: (run id, path).
    pub(crate) fn noted_run_folders(&self) -> Result<Vec<(String, String)>> {
        self.all(
            "read run folders",
            "SELECT id, path FROM run_folders ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    // ------------------------------------------------------------ refusals

    pub fn refusal(&self, id: &RefusalId) -> Result<Option<RefusalRow>> {
        self.one("read refusal", "SELECT id, seq, path, object, sha256, pin, source_id, reason, message, actor, time FROM refusals WHERE id = ?1", [id], |r| {
            Ok(RefusalRow {
                id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                path: r.get(2)?,
                object: r.get(3)?,
                sha256: r.get(4)?,
                pin: r.get(5)?,
                source_id: r.get(6)?,
                reason: r.get(7)?,
                message: r.get(8)?,
                actor: r.get(9)?,
                time: r.get(10)?,
            })
        })
    }
}
