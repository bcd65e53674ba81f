//! Typed reads of the projection tables: every query the commands need, each returning
//! the row types of [`super::rows`].

use rusqlite::{params, OptionalExtension as _};

use super::rows::*;
use super::Ledger;
use crate::error::Result;
use crate::id::{
    AdmissionId, BuildId, CommitId, ModelAdmissionId, ObjectId, ObjectMeta, RefusalId, Revocable,
    RevocationId, RunId, SourceId,
};
use crate::state::AdmissionScope;

impl Ledger {
    // ------------------------------------------------------------ objects

    pub fn object(&self, id: &ObjectId) -> Result<Option<ObjectRow>> {
        self.row_of("read object", "objects WHERE id = ?1", [id])
    }

    /// Every `objects` row as stored, in id order (audit re-hashes each).
    pub fn stored_objects(&self) -> Result<Vec<StoredObject>> {
        self.all(
            "read objects",
            "SELECT id, sha256, size, seq, kind FROM objects ORDER BY id",
            [],
            |r| {
                Ok(StoredObject {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get(2)?,
                    seq: r.get(3)?,
                    kind: r.get(4)?,
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
        Ok(self.builds_producing(object, commit)?.into_iter().next())
    }

    /// Every admission's name by its id.
    pub fn admission_names(&self) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(self
            .all(
                "read admissions",
                "SELECT id, name FROM admissions",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// Every succeeded build with these bytes among its outputs (from `commit`, when
    /// given), newest first, checks after the builds they checked.
    pub fn builds_producing(
        &self,
        object: &ObjectId,
        commit: Option<&CommitId>,
    ) -> Result<Vec<BuildId>> {
        self.all(
            "read builds",
            "SELECT b.id FROM builds b JOIN build_outputs o ON o.build_id = b.id
             WHERE o.object = ?1 AND b.status = 'succeeded' AND (?2 IS NULL OR b.commit_id = ?2)
             GROUP BY b.id ORDER BY b.check_of IS NOT NULL, MAX(b.seq) DESC",
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

    /// The file the newest build that recorded an output at `path` (absolute) got there.
    pub fn last_output_at(&self, path: &str) -> Result<Option<ObjectMeta>> {
        let id: Option<ObjectId> = self.one(
            "read build outputs",
            "SELECT o.object FROM build_outputs o JOIN builds b ON b.id = o.build_id WHERE o.path = ?1 AND o.kind = 'blob' ORDER BY b.seq DESC LIMIT 1",
            [path],
            |r| r.get(0),
        )?;
        match id {
            Some(id) => self.object_meta(&id),
            None => Ok(None),
        }
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

    /// One page of runs, newest first, unfinished attempts among them; and how many
    /// match in all.
    pub(crate) fn runs_page(&self, f: &RunPage) -> Result<(Vec<RunRow>, u64)> {
        // Only the filters given, each a fixed fragment with its value bound: a filter
        // written `?1 IS NULL OR ...` cannot use an index, and a provider's 100 runs
        // among 100,000 were then found by reading half the table.
        let mut clauses: Vec<&str> = Vec::new();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        for (clause, value) in [
            (
                "r.status = ?",
                f.status.as_ref().map(|v| v as &dyn rusqlite::ToSql),
            ),
            ("r.verdict = ?", f.verdict.as_ref().map(|v| v as _)),
            ("r.fixture = ?", f.fixture.as_ref().map(|v| v as _)),
            ("r.model = ?", f.model.as_ref().map(|v| v as _)),
            (
                "r.provider_object = ?",
                f.provider_object.as_ref().map(|v| v as _),
            ),
        ] {
            if let Some(v) = value {
                clauses.push(clause);
                values.push(v);
            }
        }
        let matching = match clauses.is_empty() {
            true => "1".to_string(),
            false => clauses.join(" AND "),
        };
        let total: i64 = self
            .one(
                "count runs",
                &format!("SELECT count(*) FROM runs r WHERE {matching}"),
                values.as_slice(),
                |r| r.get(0),
            )?
            .unwrap_or(0);
        let before = f.before.map_or(i64::MAX, |b| b as i64);
        let limit = f.limit as i64;
        values.extend([&before as &dyn rusqlite::ToSql, &limit]);
        let rows = self.rows_of(
            "read runs",
            &format!("runs r WHERE {matching} AND r.seq < ? ORDER BY r.seq DESC LIMIT ?"),
            values.as_slice(),
        )?;
        let (mut rows, mut total) = (rows, total as u64);
        // Attempts registered and never ended are runs too: status `unfinished`.
        for r in self.unfinished_runs()?.iter().map(|u| u.as_run()) {
            if f.matches(&r) {
                total += 1;
                if f.before.is_none_or(|b| r.seq < b) {
                    rows.push(r);
                }
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.seq));
        rows.truncate(f.limit as usize);
        Ok((rows, total))
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

    /// The digest of the `run_start` that registered run `id`, if one did.
    pub(crate) fn run_start_digest(&self, id: &RunId) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT digest FROM run_starts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read_err("read run starts"))
    }

    /// The journal event that registered run `id`, if one did.
    pub(crate) fn run_start_seq(&self, id: &RunId) -> Result<Option<u64>> {
        let seq: Option<i64> = self
            .conn()
            .query_row("SELECT seq FROM run_starts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read_err("read run starts"))?;
        Ok(seq.map(|s| s as u64))
    }

    /// Attempts registered by a `run_start` that no `run` event ended.
    pub(crate) fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>> {
        self.all(
            "read run starts",
            "SELECT s.id, s.seq, s.fixture, s.lane, s.provider_object, s.provider_admission, s.model, s.time, s.timeout_ms, s.run_dir
             FROM run_starts s WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = s.id) ORDER BY s.seq",
            [],
            |r| {
                Ok(UnfinishedRun {
                    id: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    fixture: r.get(2)?,
                    lane: r.get(3)?,
                    provider_object: r.get(4)?,
                    provider_admission: r.get(5)?,
                    model: r.get(6)?,
                    started: r.get(7)?,
                    timeout_ms: r.get::<_, i64>(8)? as u64,
                    run_dir: r.get(9)?,
                })
            },
        )
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
