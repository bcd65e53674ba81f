//! REF resolution (README, "Commands": REF) and the generic row reads that only `show` and `sql` use.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::Ledger;
use crate::error::{Error, Result};
use crate::id::{
    AdmissionId, BuildId, CommitId, DigestPrefix, IdParseError, ModelAdmissionId, ObjectId,
    ObjectMeta, RefusalId, RevocationId, RunId, Sha256Digest, SourceId,
};

/// A node of the provenance graph, as named by a REF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Node {
    Object(ObjectId),
    Admission(AdmissionId),
    ModelAdmission(ModelAdmissionId),
    Source(SourceId),
    Commit(CommitId),
    Run(RunId),
    Refusal(RefusalId),
    Revocation(RevocationId),
    Build(BuildId),
}

impl Node {
    pub fn label(&self) -> String {
        match self {
            Node::Object(id) => id.to_string(),
            Node::Commit(c) => format!("commit:{c}"),
            Node::Run(r) => format!("run:{r}"),
            Node::Admission(i) => i.to_string(),
            Node::Build(i) => i.to_string(),
            Node::ModelAdmission(i) => i.to_string(),
            Node::Source(i) => i.to_string(),
            Node::Refusal(i) => i.to_string(),
            Node::Revocation(i) => i.to_string(),
        }
    }

    /// The node a recorded id names, by its prefix; `None` when it has no known prefix.
    pub fn from_id(id: &str) -> Option<std::result::Result<Node, IdParseError>> {
        let n = if id.starts_with(AdmissionId::PREFIX) {
            AdmissionId::parse(id).map(Node::Admission)
        } else if id.starts_with(ModelAdmissionId::PREFIX) {
            ModelAdmissionId::parse(id).map(Node::ModelAdmission)
        } else if id.starts_with(SourceId::PREFIX) {
            SourceId::parse(id).map(Node::Source)
        } else if id.starts_with(RefusalId::PREFIX) {
            RefusalId::parse(id).map(Node::Refusal)
        } else if id.starts_with(RevocationId::PREFIX) {
            RevocationId::parse(id).map(Node::Revocation)
        } else if id.starts_with(BuildId::PREFIX) {
            BuildId::parse(id).map(Node::Build)
        } else {
            return None;
        };
        Some(n)
    }
}

/// The tables whose ids carry each prefix.
const ID_TABLES: &[(&str, &str)] = &[
    (AdmissionId::PREFIX, "admissions"),
    (ModelAdmissionId::PREFIX, "model_admissions"),
    (SourceId::PREFIX, "sources"),
    (RefusalId::PREFIX, "refusals"),
    (RevocationId::PREFIX, "revocations"),
    (BuildId::PREFIX, "builds"),
];

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A row as a JSON object, column names as keys; JSON-typed columns decoded.
fn row_json(r: &Row) -> rusqlite::Result<Value> {
    let mut m = Map::new();
    let stmt = r.as_ref();
    for i in 0..stmt.column_count() {
        let name = stmt.column_name(i)?.to_string();
        let v = match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Value::Null,
            rusqlite::types::ValueRef::Integer(v) => json!(v),
            rusqlite::types::ValueRef::Real(v) => json!(v),
            rusqlite::types::ValueRef::Text(t) => {
                let s = String::from_utf8_lossy(t).into_owned();
                if ["decisions", "argv", "tools", "env", "check_outputs"].contains(&name.as_str()) {
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                } else {
                    Value::String(s)
                }
            }
            rusqlite::types::ValueRef::Blob(b) => Value::String(hex::encode(b)),
        };
        m.insert(name, v);
    }
    Ok(Value::Object(m))
}

/// Turns the stored ids a lookup found into one node, or says why not.
fn unique<T>(
    r: &str,
    what: &'static str,
    found: Vec<T>,
    mk: impl FnOnce(T) -> Node,
    show: impl Fn(&T) -> String,
) -> Result<Node> {
    match found.len() {
        0 => Err(Error::NotFound {
            what,
            input: r.to_string(),
            hint: Some(
                match what {
                    "run" => "list runs with `cto-ledger runs`; a run is run:ID, run:latest, run:latest:pass or run:latest:fail",
                    "commit" => "list recorded sources with `cto-ledger log --kind source`",
                    _ => "list what exists with `cto-ledger log`",
                }
                .into(),
            ),
        }),
        1 => Ok(mk(found.into_iter().next().expect("one"))),
        _ => Err(Error::Ambiguous {
            input: r.to_string(),
            candidates: found.iter().map(show).collect(),
        }),
    }
}

/// Hashes a file given as a REF.
type HashPath<'a> = dyn Fn(&std::path::Path) -> Result<ObjectMeta> + 'a;

impl Ledger {
    /// Every row of a query as a JSON object (for `show`, which prints whatever a table has).
    pub(crate) fn rows(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Value>> {
        let mut st = self
            .conn()
            .prepare_cached(sql)
            .map_err(Error::sql("query"))?;
        let rows = st
            .query_map(p, row_json)
            .map_err(Error::sql("query"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sql("query"))?;
        Ok(rows)
    }

    pub(super) fn row(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Option<Value>> {
        Ok(self.rows(sql, p)?.into_iter().next())
    }

    fn strings(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<String>> {
        let mut st = self
            .conn()
            .prepare_cached(sql)
            .map_err(Error::sql("query"))?;
        let v = st
            .query_map(p, |r| r.get::<_, String>(0))
            .map_err(Error::sql("query"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sql("query"))?;
        Ok(v)
    }

    pub fn object_meta(&self, id: &ObjectId) -> Result<Option<ObjectMeta>> {
        self.conn()
            .query_row(
                "SELECT sha256, size FROM objects WHERE id = ?1",
                params![id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(Error::sql("read object"))?
            .map(|(sha, size)| {
                let sha256 = Sha256Digest::parse(&sha).map_err(|e| Error::Integrity {
                    message: format!("objects row for {id}: {e}"),
                })?;
                Ok(ObjectMeta {
                    id: *id,
                    sha256,
                    size: size as u64,
                })
            })
            .transpose()
    }

    pub fn has_objects(&self, ids: &[ObjectId]) -> Result<Vec<bool>> {
        let mut st = self
            .conn()
            .prepare_cached("SELECT 1 FROM objects WHERE id = ?1")
            .map_err(Error::sql("query"))?;
        ids.iter()
            .map(|id| st.exists(params![id]).map_err(Error::sql("query")))
            .collect()
    }

    /// Objects whose BLAKE3 or SHA-256 digest starts with the prefix.
    fn objects_by_prefix(&self, p: &DigestPrefix) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        if p.algo != Some("sha256") {
            let pat = format!("blake3:{}%", like_escape(&p.hex));
            out.extend(self.strings(
                "SELECT id FROM objects WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 20",
                &[&pat],
            )?);
        }
        if p.algo != Some("blake3") {
            let pat = format!("sha256:{}%", like_escape(&p.hex));
            out.extend(self.strings(
                "SELECT id FROM objects WHERE sha256 LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 20",
                &[&pat],
            )?);
        }
        out.sort();
        out.dedup();
        out.iter()
            .map(|s| {
                ObjectId::parse(s).map_err(|e| Error::Integrity {
                    message: e.to_string(),
                })
            })
            .collect()
    }

    pub fn commits_by_prefix(&self, prefix: &str) -> Result<Vec<CommitId>> {
        let pat = format!("{}%", like_escape(&prefix.to_ascii_lowercase()));
        self.strings("SELECT DISTINCT commit_id FROM sources WHERE commit_id LIKE ?1 ESCAPE '\\' ORDER BY commit_id", &[&pat])?
            .iter()
            .map(|c| {
                CommitId::parse(c).map_err(|e| Error::Integrity {
                    message: format!("sources row: {e}"),
                })
            })
            .collect()
    }

    /// Resolves a REF (README, "Commands": REF). `hash_path` hashes a file path given as REF.
    pub fn resolve(
        &self,
        r: &str,
        hash_path: &dyn Fn(&std::path::Path) -> Result<ObjectMeta>,
    ) -> Result<Node> {
        self.resolve_with(r, Some(hash_path))
    }

    /// Resolves a REF only as something recorded (an id, a digest, a name): never as a
    /// file path, nor looking on this machine whether one exists (for a REF from a
    /// request, which must learn nothing about the server's files).
    pub(crate) fn resolve_recorded(&self, r: &str) -> Result<Node> {
        self.resolve_with(r, None)
    }

    fn resolve_with(&self, r: &str, hash_path: Option<&HashPath>) -> Result<Node> {
        let r = r.trim();
        if r.is_empty() {
            return Err(Error::bad_input(
                "an empty REF was given",
                "give a digest, run:ID, commit:PREFIX, an admission name or a file path",
            ));
        }
        if let Some(id) = r.strip_prefix("run:") {
            return self.resolve_run(r, id);
        }
        if let Some(c) = r.strip_prefix("commit:") {
            return self.resolve_commit(r, c);
        }
        if let Some((_, table)) = ID_TABLES.iter().find(|(p, _)| r.starts_with(p)) {
            return self.resolve_id(r, table);
        }
        if r.starts_with("blake3:") || r.starts_with("sha256:") {
            return self.resolve_digest(r);
        }
        if let Some(n) = self.resolve_name(r)? {
            return Ok(n);
        }
        let path = std::path::Path::new(r);
        if let Some(hash_path) = hash_path.filter(|_| path.exists()) {
            return self.resolve_path(r, path, hash_path);
        }
        if let Some(p) = DigestPrefix::parse(r, 4) {
            return self.resolve_hex(r, &p);
        }
        Err(Error::NotFound {
            what: "REF",
            input: r.to_string(),
            hint: Some("give a digest (blake3:/sha256: or a hex prefix), run:ID, commit:PREFIX, an admission name, an id, or an existing file path".into()),
        })
    }

    fn resolve_run(&self, r: &str, id: &str) -> Result<Node> {
        // `run:latest`, `run:latest:pass`, `run:latest:fail`: the newest recorded run (of
        // that verdict), by journal order.
        let latest = match id {
            "latest" => Some("SELECT id FROM runs ORDER BY seq DESC LIMIT 1"),
            "latest:pass" => {
                Some("SELECT id FROM runs WHERE verdict = 'pass' ORDER BY seq DESC LIMIT 1")
            }
            "latest:fail" => {
                Some("SELECT id FROM runs WHERE verdict = 'fail' ORDER BY seq DESC LIMIT 1")
            }
            _ => None,
        };
        let mut found = match latest {
            Some(sql) => self.strings(sql, &[])?,
            None => self.strings("SELECT id FROM runs WHERE id = ?1", &[&id])?,
        };
        if latest.is_some() && found.is_empty() {
            return Err(Error::NotFound {
                what: "run",
                input: r.to_string(),
                hint: Some("no such run is recorded yet: see `cto-ledger runs`".into()),
            });
        }
        if found.is_empty() && latest.is_none() {
            let pat = format!("{}%", like_escape(id));
            found = self.strings(
                "SELECT id FROM runs WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 20",
                &[&pat],
            )?;
        }
        if found.is_empty() {
            let newest = self.strings("SELECT id FROM runs ORDER BY seq DESC LIMIT 3", &[])?;
            if !newest.is_empty() {
                let named: Vec<String> = newest.iter().map(|i| format!("run:{i}")).collect();
                return Err(Error::NotFound {
                    what: "run",
                    input: r.to_string(),
                    hint: Some(format!(
                        "the newest runs are {} (all: `cto-ledger runs`)",
                        named.join(", ")
                    )),
                });
            }
        }
        let found = found
            .iter()
            .map(|s| RunId::parse(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Integrity {
                message: format!("runs row: {e}"),
            })?;
        unique(r, "run", found, Node::Run, |i| i.to_string())
    }

    fn resolve_commit(&self, r: &str, c: &str) -> Result<Node> {
        if c.len() < 4 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::bad_input(
                format!("`{r}` is not a commit prefix"),
                "write commit:<at least 4 hex digits>",
            ));
        }
        unique(r, "commit", self.commits_by_prefix(c)?, Node::Commit, |c| {
            c.to_string()
        })
    }

    fn resolve_id(&self, r: &str, table: &str) -> Result<Node> {
        let pat = format!("{}%", like_escape(r));
        let found = self.strings(
            &format!("SELECT id FROM {table} WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 20"),
            &[&pat],
        )?;
        let nodes = found
            .iter()
            .map(|id| match Node::from_id(id) {
                Some(Ok(n)) => Ok(n),
                _ => Err(Error::Integrity {
                    message: format!("{table} row has a malformed id `{id}`"),
                }),
            })
            .collect::<Result<Vec<Node>>>()?;
        unique(r, "id", nodes, |n| n, Node::label)
    }

    fn resolve_digest(&self, r: &str) -> Result<Node> {
        let p = DigestPrefix::parse(r, 1).ok_or_else(|| {
            Error::bad_input(
                format!("`{r}` is not a digest"),
                "write blake3:<hex> or sha256:<hex>",
            )
        })?;
        unique(
            r,
            "digest",
            self.objects_by_prefix(&p)?,
            Node::Object,
            |o| o.to_string(),
        )
    }

    /// An admission name (the newest admission with it), or a PROVIDER/MODEL pair.
    fn resolve_name(&self, r: &str) -> Result<Option<Node>> {
        if let Some(id) = self.admission_by_name(r)? {
            return Ok(Some(Node::Admission(id)));
        }
        if let Some((p, m)) = r.split_once('/') {
            if let Some(m) = self.model_admission_of(p, m, false)? {
                return Ok(Some(Node::ModelAdmission(m.id)));
            }
        }
        Ok(None)
    }

    fn resolve_path(
        &self,
        r: &str,
        path: &std::path::Path,
        hash_path: &dyn Fn(&std::path::Path) -> Result<ObjectMeta>,
    ) -> Result<Node> {
        if path.is_dir() {
            return Err(Error::bad_input(
                format!("{r} is a directory"),
                "give a file, or ingest the directory and use its tree digest",
            ));
        }
        let m = hash_path(path)?;
        if self.object_meta(&m.id)?.is_some() {
            return Ok(Node::Object(m.id));
        }
        Err(Error::NotFound {
            what: "file",
            input: format!("{r} ({}, {})", m.sha256, m.id),
            hint: Some("ingest or admit it first".into()),
        })
    }

    /// A bare hex prefix: an object's digest or a commit.
    fn resolve_hex(&self, r: &str, p: &DigestPrefix) -> Result<Node> {
        let mut found: Vec<Node> = self
            .objects_by_prefix(p)?
            .into_iter()
            .map(Node::Object)
            .collect();
        found.extend(
            self.commits_by_prefix(&p.hex)?
                .into_iter()
                .map(Node::Commit),
        );
        unique(r, "hex prefix", found, |n| n, Node::label)
    }
}

/// Pragmas a query may use (as `PRAGMA x(t)` or `pragma_x('t')`): those that describe the
/// schema, whose argument names a table or index; `user_version` only read, never set.
fn schema_pragma(name: &str, value: Option<&str>) -> bool {
    const DESCRIBE: &[&str] = &[
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
    ];
    let name = name.to_ascii_lowercase();
    DESCRIBE.contains(&name.as_str()) || (name == "user_version" && value.is_none())
}

/// Result of `cto-ledger sql`: column names and rows.
#[derive(Debug, Serialize)]
pub struct SqlOut {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Ledger {
    /// Runs one read-only query. SQLite decides what is read-only, not the query's first
    /// word: the connection is read-only and `query_only`, an authorizer allows reading
    /// tables, functions and a few schema pragmas and denies everything else (writes,
    /// `ATTACH`, transactions, pragmas that set), and the statement must be read-only.
    pub fn sql_readonly(&mut self, q: &str) -> Result<SqlOut> {
        use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
        if q.trim().is_empty() {
            return Err(Error::bad_input(
                "sql: the query is empty",
                "give one read-only statement, e.g. cto-ledger sql \"SELECT count(*) FROM runs\"",
            ));
        }
        let allow = |ctx: AuthContext<'_>| match ctx.action {
            AuthAction::Select
            | AuthAction::Read { .. }
            | AuthAction::Function { .. }
            | AuthAction::Recursive => Authorization::Allow,
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } if schema_pragma(pragma_name, pragma_value) => Authorization::Allow,
            _ => Authorization::Deny,
        };
        self.conn_mut()
            .authorizer(Some(allow))
            .map_err(Error::sql("set the query authorizer"))?;
        let out = self.run_readonly(q);
        self.conn_mut()
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
            .map_err(Error::sql("clear the query authorizer"))?;
        out
    }

    fn run_readonly(&self, q: &str) -> Result<SqlOut> {
        let refuse = |why: &str| {
            Error::bad_input(
                format!("sql refused: {why}"),
                "give one read-only statement (SELECT, WITH or VALUES); the ledger was not touched",
            )
        };
        let mut st = self.conn().prepare(q).map_err(|e| match e {
            rusqlite::Error::MultipleStatement => refuse("more than one statement"),
            rusqlite::Error::SqliteFailure(f, ref m)
                if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied
                    || m.as_deref() == Some("not authorized") =>
            {
                refuse("the statement does more than read (writes, ATTACH, transactions and setting pragmas are not allowed)")
            }
            other => Error::bad_input(
                format!("sql: {other}"),
                "check the query against docs/ledger.md",
            ),
        })?;
        if !st.readonly() {
            return Err(refuse("the statement writes"));
        }
        let columns: Vec<String> = st.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(v) => json!(v),
                            rusqlite::types::ValueRef::Real(v) => json!(v),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::String(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => Value::String(hex::encode(b)),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| {
                Error::bad_input(
                    format!("sql: {e}"),
                    "check the query against docs/ledger.md",
                )
            })?;
        Ok(SqlOut { columns, rows })
    }
}
