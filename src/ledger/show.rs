//! The `show` document: any node with every column its tables hold and its neighbours.
//! The one reader (with `sql`) that keeps generic rows: it prints whatever a table has.

use serde_json::{json, Value};

use super::query::Node;
use super::Ledger;
use crate::error::Result;
use crate::id::{BuildId, ObjectId, Revocable};

impl Ledger {
    /// The node as one JSON document: `{"type": ..., <type>: {...}}`.
    pub fn describe(&self, node: &Node) -> Result<Value> {
        Ok(match node {
            Node::Object(id) => json!({"type": "object", "object": self.describe_object(id)?}),
            Node::Admission(id) => {
                let mut a = self
                    .row("SELECT * FROM admissions WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                a["modified_files"] = json!(self.rows("SELECT path, status, object FROM admission_modified WHERE admission_id = ?1 ORDER BY path", &[id])?);
                a["source"] = self.row("SELECT id, url, commit_id, branch, path, tree_id, snapshot FROM sources WHERE id = ?1", &[&a["source_id"].as_str().unwrap_or_default()])?.unwrap_or(Value::Null);
                a["revocation"] = json!(self.revocation_of(&Revocable::Admission(id.clone()))?);
                if let Some(b) = a["build_id"].as_str().and_then(|b| BuildId::parse(b).ok()) {
                    a["build"] = self.describe_build(&b)?;
                }
                a["runs"] = json!(self.rows("SELECT id, status, verdict FROM runs WHERE provider_admission = ?1 ORDER BY seq", &[id])?);
                json!({"type": "admission", "admission": a})
            }
            Node::ModelAdmission(id) => {
                let mut m = self
                    .row("SELECT * FROM model_admissions WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                m["revocation"] = json!(self.revocation_of(&Revocable::Model(id.clone()))?);
                m["runs"] = json!(self.rows(
                    "SELECT id, status, verdict FROM runs WHERE model_admission = ?1 ORDER BY seq",
                    &[id]
                )?);
                json!({"type": "model_admission", "model_admission": m})
            }
            Node::Source(id) => {
                let mut s = self
                    .row("SELECT * FROM sources WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                s["changes"] = json!(self.rows("SELECT path, status, object FROM source_changes WHERE source_id = ?1 ORDER BY path", &[id])?);
                s["admissions"] = json!(self.rows(
                    "SELECT id, name, object FROM admissions WHERE source_id = ?1 ORDER BY seq",
                    &[id]
                )?);
                json!({"type": "source", "source": s})
            }
            Node::Commit(c) => {
                let sources = self.rows("SELECT id, url, path, branch, time FROM sources WHERE commit_id = ?1 ORDER BY seq", &[c])?;
                let adm = self.rows("SELECT id, name, object, sha256 FROM admissions WHERE commit_id = ?1 ORDER BY seq", &[c])?;
                json!({"type": "commit", "commit": {"id": c, "sources": sources, "admissions": adm}})
            }
            Node::Run(id) => {
                let mut run = self
                    .row("SELECT * FROM runs WHERE id = ?1", &[id])?
                    .unwrap_or(Value::Null);
                run["artifacts"] = json!(self.rows(
                    "SELECT path, object FROM run_artifacts WHERE run_id = ?1 ORDER BY path",
                    &[id]
                )?);
                if let Some(a) = run["provider_admission"].as_str().map(str::to_string) {
                    run["provider"] = self.row("SELECT a.id, a.name, a.pin, a.commit_id, s.url FROM admissions a LEFT JOIN sources s ON s.id = a.source_id WHERE a.id = ?1", &[&a])?.unwrap_or(Value::Null);
                }
                json!({"type": "run", "run": run})
            }
            Node::Refusal(id) => {
                json!({"type": "refusal", "refusal": self.row("SELECT * FROM refusals WHERE id = ?1", &[id])?})
            }
            Node::Revocation(id) => {
                json!({"type": "revocation", "revocation": self.row("SELECT * FROM revocations WHERE id = ?1", &[id])?})
            }
            Node::Build(id) => json!({"type": "build", "build": self.describe_build(id)?}),
        })
    }

    fn describe_object(&self, id: &ObjectId) -> Result<Value> {
        let mut o = self
            .row(
                "SELECT id, sha256, size, kind, seq FROM objects WHERE id = ?1",
                &[id],
            )?
            .unwrap_or(Value::Null);
        let (live, revoked): (Vec<_>, Vec<_>) = self
            .admissions_of_object(id)?
            .into_iter()
            .partition(|a| a.revocation.is_none());
        o["admissions"] = json!(live);
        o["revoked_admissions"] = json!(revoked);
        o["ingests"] = json!(self.rows(
            "SELECT seq, path, label FROM ingests WHERE object = ?1 ORDER BY seq",
            &[id]
        )?);
        o["runs_using_as_provider"] = json!(self.rows(
            "SELECT id, status, verdict FROM runs WHERE provider_object = ?1 ORDER BY seq",
            &[id]
        )?);
        o["run_artifacts"] = json!(self.rows(
            "SELECT run_id, path FROM run_artifacts WHERE object = ?1 ORDER BY run_id, path",
            &[id]
        )?);
        o["refusals"] = json!(self.rows(
            "SELECT id, reason, message, time FROM refusals WHERE object = ?1 ORDER BY seq",
            &[id]
        )?);
        o["source_changes"] = json!(self.rows(
            "SELECT source_id, path, status FROM source_changes WHERE object = ?1",
            &[id]
        )?);
        Ok(o)
    }

    /// A build with its outputs, modified files, created files, checks and admissions.
    fn describe_build(&self, id: &BuildId) -> Result<Value> {
        let mut b = self
            .row("SELECT * FROM builds WHERE id = ?1", &[id])?
            .unwrap_or(Value::Null);
        b["source"] = self
            .row(
                "SELECT id, url, path, commit_id, branch FROM sources WHERE id = ?1",
                &[&b["source_id"].as_str().unwrap_or_default()],
            )?
            .unwrap_or(Value::Null);
        b["outputs"] = json!(self.rows("SELECT path, object, sha256, size, kind, inside_source, ignored FROM build_outputs WHERE build_id = ?1 ORDER BY path", &[id])?);
        b["modified"] = json!(self.rows("SELECT path, status, old_object, new_object FROM build_modified WHERE build_id = ?1 ORDER BY path", &[id])?);
        b["created"] = json!(self.rows(
            "SELECT path FROM build_created WHERE build_id = ?1 ORDER BY path",
            &[id]
        )?);
        b["checks"] = json!(self.rows("SELECT id, check_result, check_outputs, finished FROM builds WHERE check_of = ?1 ORDER BY seq", &[id])?);
        b["admissions"] = json!(self.rows(
            "SELECT id, name, sha256 FROM admissions WHERE build_id = ?1 ORDER BY seq",
            &[id]
        )?);
        Ok(b)
    }
}
