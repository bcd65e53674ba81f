//! The SQLite ledger: migrations, the hash-chained journal and its projections.
//! This module is the only one that touches rusqlite.

mod chain;
pub mod events;
mod project;
pub(crate) mod query;
mod reads;
pub(crate) mod replica;
mod rows;
mod show;
mod sql_types;
mod stat_cache;
pub(crate) mod tiles;
pub(crate) mod tlog;
pub(crate) mod vet;

pub(crate) use chain::{check_row, ChainCheck};
pub(crate) use rows::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::id::ChainHash;
use crate::store::Synced;
use events::{Actor, Body, Event};

/// One migration: its name and the SQL of `schema/<name>.sql`.
macro_rules! migration {
    ($name:literal) => {
        ($name, include_str!(concat!("../../schema/", $name, ".sql")))
    };
}

/// Migrations, applied in order under `PRAGMA user_version`. Never edit one that shipped.
const MIGRATIONS: &[(&str, &str)] = &[
    migration!("0001_init"),
    migration!("0002_builds"),
    migration!("0003_stat_cache"),
    migration!("0004_remotes"),
    migration!("0005_tree_cache"),
    migration!("0006_run_folders"),
    migration!("0007_keys"),
    migration!("0008_run_sandbox"),
    migration!("0009_model_endpoints"),
    migration!("0010_run_starts"),
    migration!("0011_tlog_tiles"),
    migration!("0012_witnesses"),
    migration!("0013_policies"),
    migration!("0014_remote_policies"),
    migration!("0015_runs_by_seq"),
    migration!("0016_journal_hashes"),
    migration!("0017_stat_cache_stored"),
    migration!("0018_build_outputs_by_path"),
    migration!("0019_dir_cache"),
];

/// The migration after which `tlog_nodes` exists: a ledger migrated past it here gets
/// its tiles computed from its journal in the same transaction.
const TILES_MIGRATION: usize = 11;

/// The tables rebuilt from the journal, children before parents (for deletes).
pub(crate) const PROJECTIONS: &[&str] = &[
    "policy_decisions",
    "policy_events",
    "witness_events",
    "key_revocations",
    "keys",
    "run_artifacts",
    "run_starts",
    "build_created",
    "build_modified",
    "build_outputs",
    "runs",
    "revocations",
    "model_admissions",
    "refusals",
    "admission_modified",
    "admissions",
    "builds",
    "source_changes",
    "sources",
    "ingests",
    "objects",
];

/// Projection tables without a `seq` column: their rows belong to the parent row they
/// name (table, column, parent table). Every other projection has a `seq`.
const CHILDREN: &[(&str, &str, &str)] = &[
    ("run_artifacts", "run_id", "runs"),
    ("build_created", "build_id", "builds"),
    ("build_modified", "build_id", "builds"),
    ("build_outputs", "build_id", "builds"),
    ("admission_modified", "admission_id", "admissions"),
    ("source_changes", "source_id", "sources"),
];

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

/// The journal's head: what `checkpoint` prints and `audit --checkpoint` checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: ChainHash,
}

impl Head {
    /// Before the first event.
    pub const EMPTY: Head = Head {
        seq: 0,
        hash: ChainHash::GENESIS,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    ReadWrite,
}

fn ledger_err(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    if matches!(e.sqlite_error_code(), Some(DiskFull | SystemIoFailure)) {
        // The disk's failure, not the ledger's (exit 4; `cli` names the disk when full).
        return Error::Sql {
            action: "open",
            source: e,
        };
    }
    let (message, hint) = match e.sqlite_error_code() {
        Some(NotADatabase) => (
            "is not a SQLite database (or is encrypted or damaged)".to_string(),
            "move it aside and restore it from a backup; cto-ledger will not modify it",
        ),
        Some(DatabaseCorrupt) => (
            "is corrupt".to_string(),
            "move it aside and restore it from a backup; cto-ledger will not modify it",
        ),
        Some(CannotOpen) | Some(ReadOnly) | Some(PermissionDenied) => (
            format!("cannot be opened: {e}"),
            "check the path and its permissions",
        ),
        Some(DatabaseBusy) | Some(DatabaseLocked) => (
            format!("is busy: {e}"),
            "another process holds it; try again",
        ),
        _ => (format!("{e}"), "check the ledger with `cto-ledger audit`"),
    };
    Error::Ledger {
        path: path.to_path_buf(),
        message,
        hint: Some(hint.into()),
    }
}

/// Keeps `ledger.db-wal` (emptied) and `ledger.db-shm` when the last writer closes
/// (SQLite's persistent WAL), so read-only commands can still open the ledger on a
/// full disk: reading a WAL database needs its `-shm` file, and making one takes space.
fn persist_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_size_limit", 0)?;
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is this open connection's, "main" names its database, and
    // SQLITE_FCNTL_PERSIST_WAL reads and writes only the one int it is given.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::ffi::c_int).cast(),
        )
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        code => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some("cannot keep the write-ahead log between runs".into()),
        )),
    }
}

/// SHA-256(prev_hash || event), both as raw bytes.
pub(crate) fn chain_hash(prev_hex: &str, event: &[u8]) -> ChainHash {
    let mut h = Sha256::new();
    let mut prev = [0u8; 32];
    if hex::decode_to_slice(prev_hex, &mut prev).is_err() {
        // A malformed stored hash cannot chain; hash its text so the mismatch is reported.
        h.update(prev_hex.as_bytes());
    } else {
        h.update(prev);
    }
    h.update(event);
    ChainHash(h.finalize().into())
}

pub(crate) fn now() -> String {
    // Tests pin the clock so their output can be compared; documented in the README.
    if let Some(t) = crate::env::get("CTO_LEDGER_TEST_NOW") {
        return t;
    }
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Opens `ledger.db`. `ReadWrite` creates and migrates it; `ReadOnly` never writes.
    pub fn open(path: &Path, mode: Mode) -> Result<Ledger> {
        let exists = path.exists();
        if mode == Mode::ReadOnly && !exists {
            return Err(Error::Ledger {
                path: path.to_path_buf(),
                message: "does not exist".into(),
                hint: Some("run `cto-ledger init` (or any command that writes) first, or point --ledger at an existing ledger".into()),
            });
        }
        let flags = match mode {
            Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            Mode::ReadWrite => {
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
            }
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| ledger_err(path, e))?;
        conn.busy_timeout(Duration::from_secs(120))
            .map_err(|e| ledger_err(path, e))?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
        };
        let version: i64 = ledger
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| ledger_err(path, e))?;
        let latest = MIGRATIONS.len() as i64;
        if version > latest {
            return Err(Error::Ledger {
                path: path.to_path_buf(),
                message: format!("was written by a newer cto-ledger (schema {version}; this binary knows up to {latest}); it was not modified"),
                hint: Some("upgrade cto-ledger to read this ledger".into()),
            });
        }
        match mode {
            Mode::ReadWrite => {
                ledger
                    .conn
                    .pragma_update(None, "foreign_keys", "ON")
                    .map_err(|e| ledger_err(path, e))?;
                let jm: String = ledger
                    .conn
                    .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                    .map_err(|e| ledger_err(path, e))?;
                if !jm.eq_ignore_ascii_case("wal") {
                    return Err(Error::Ledger {
                        path: path.to_path_buf(),
                        message: format!("could not enter WAL mode (got {jm})"),
                        hint: None,
                    });
                }
                ledger
                    .conn
                    .pragma_update(None, "synchronous", "FULL")
                    .map_err(|e| ledger_err(path, e))?;
                persist_wal(&ledger.conn).map_err(|e| ledger_err(path, e))?;
                if version < latest {
                    ledger.migrate()?;
                }
            }
            Mode::ReadOnly => {
                ledger
                    .conn
                    .pragma_update(None, "query_only", "ON")
                    .map_err(|e| ledger_err(path, e))?;
                if version < latest {
                    return Err(Error::Ledger {
                        path: path.to_path_buf(),
                        message: format!(
                            "has schema {version}, older than this cto-ledger's {latest}"
                        ),
                        hint: Some(
                            "run any writing command (e.g. `cto-ledger init`) to upgrade it".into(),
                        ),
                    });
                }
            }
        }
        // Touch the schema so a damaged file is reported here, not mid-command.
        ledger
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| ledger_err(path, e))?;
        Ok(ledger)
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(|e| ledger_err(&path, e))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| ledger_err(&path, e))?;
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(|e| Error::Ledger {
                path: path.clone(),
                message: format!("migration {name} failed: {e}"),
                hint: None,
            })?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| ledger_err(&path, e))?;
        }
        if (version as usize) < TILES_MIGRATION {
            tiles::rebuild(&tx)?;
        }
        tx.commit().map_err(|e| ledger_err(&path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn head(&self) -> Result<Head> {
        head_of(&self.conn)
    }

    /// Appends events in one transaction: each gets the next sequence number and is
    /// chained to the one before; projections are updated in the same transaction.
    /// `Synced` proves the objects they name are durable (`Home::commit` makes one).
    pub fn commit(&mut self, synced: Synced<'_>, bodies: Vec<Body>) -> Result<Vec<Event>> {
        let events = self.commit_unless(synced, |_| Ok(false), bodies)?;
        Ok(events.expect("nothing stops an unconditional commit"))
    }

    /// Like `commit`, unless `already` (asked inside the same write transaction, so no
    /// other writer can come between the question and the commit) says the events are
    /// not needed; then nothing is written and `None` is returned.
    pub(crate) fn commit_unless(
        &mut self,
        _synced: Synced<'_>,
        already: impl FnOnce(&Ledger) -> Result<bool>,
        bodies: Vec<Body>,
    ) -> Result<Option<Vec<Event>>> {
        let actor = Actor::current();
        let time = now();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(Error::sql("begin"))?;
        if already(self)? {
            tx.rollback().map_err(Error::sql("roll back"))?;
            return Ok(None);
        }
        let mut head = head_of(&tx)?;
        let mut out = Vec::with_capacity(bodies.len());
        for body in bodies {
            let mut event = Event {
                seq: 0,
                time: time.clone(),
                actor: actor.clone(),
                body,
            };
            head = append(&tx, &head, &mut event)?;
            project::apply(&tx, &event)?;
            out.push(event);
        }
        tx.commit().map_err(Error::sql("commit"))?;
        crate::store::power_cut::after_commit();
        Ok(Some(out))
    }

    /// Every journal row in order, raw: (seq, kind, time, event text, prev_hash, hash).
    pub fn journal_rows(&self) -> Result<Vec<JournalRow>> {
        journal_rows(&self.conn)
    }

    /// Rebuilds every projection table from the journal, in one transaction.
    pub fn reindex(&mut self) -> Result<u64> {
        let rows = journal_rows(&self.conn)?;
        let events = decode_all(&rows)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sql("begin"))?;
        rebuild_projections(&tx, &events)?;
        tiles::rebuild(&tx)?;
        tx.commit().map_err(Error::sql("commit"))?;
        Ok(events.len() as u64)
    }

    /// Rebuilds the projections from the journal in memory and returns, per table,
    /// the rows that differ from what is stored: (table, description).
    pub fn diff_projections(&self) -> Result<Vec<(String, String)>> {
        let rows = journal_rows(&self.conn)?;
        let events = match decode_all(&rows) {
            Ok(e) => e,
            Err(err) => return Ok(vec![("journal".into(), format!("cannot replay: {err}"))]),
        };
        let mut fresh = Connection::open_in_memory().map_err(Error::sql("open scratch db"))?;
        {
            let tx = fresh.transaction().map_err(Error::sql("begin"))?;
            for (_, sql) in MIGRATIONS {
                tx.execute_batch(sql)
                    .map_err(Error::sql("scratch schema"))?;
            }
            for e in &events {
                project::apply(&tx, e)?;
            }
            tx.commit().map_err(Error::sql("commit"))?;
        }
        let mut findings = Vec::new();
        for t in PROJECTIONS {
            let want = table_rows(&fresh, t)?;
            let have = table_rows(&self.conn, t)?;
            let (mut wi, mut hi) = (want.iter().peekable(), have.iter().peekable());
            loop {
                match (wi.peek(), hi.peek()) {
                    (None, None) => break,
                    (Some(w), Some(h)) if w == h => {
                        wi.next();
                        hi.next();
                    }
                    (Some(w), Some(h)) if w[0] == h[0] => {
                        findings.push((t.to_string(), format!("row {} differs from the journal: stored {} but the journal says {}", w[0], h.join("|"), w.join("|"))));
                        wi.next();
                        hi.next();
                    }
                    (Some(w), h) if h.is_none() || w < h.unwrap() => {
                        findings.push((
                            t.to_string(),
                            format!("row {} is missing (the journal records it)", w.join("|")),
                        ));
                        wi.next();
                    }
                    (_, Some(h)) => {
                        findings.push((
                            t.to_string(),
                            format!("row {} is not backed by any journal event", h.join("|")),
                        ));
                        hi.next();
                    }
                    (Some(_), None) => unreachable!(),
                }
            }
        }
        Ok(findings)
    }
}

/// Appends `event` right after `head`, giving it the next sequence number and chaining
/// it to `head`; returns the new head.
/// The most bytes one event's canonical JSON may hold (an ingest of some 150,000 new
/// files). The journal refuses a larger one, so every host can take every event a remote
/// holds, and a remote's larger one is refused unread (`sync::MAX_ENTRY_BYTES`).
pub(crate) const MAX_EVENT_BYTES: u64 = 32 << 20;

fn append(tx: &Connection, head: &Head, event: &mut Event) -> Result<Head> {
    event.seq = head.seq + 1;
    let bytes = serde_jcs::to_vec(&*event).expect("events serialise");
    if bytes.len() as u64 > MAX_EVENT_BYTES {
        return Err(Error::bad_input(
            format!(
                "this {} event would hold {} bytes, more than the {} MiB one event may; nothing was committed",
                event.body.kind(),
                bytes.len(),
                MAX_EVENT_BYTES >> 20
            ),
            "record fewer files at once (ingest the folders one by one)",
        ));
    }
    let hash = chain_hash(&head.hash.to_string(), &bytes);
    insert_row(
        tx,
        &JournalRow {
            seq: event.seq as i64,
            kind: event.body.kind().to_string(),
            time: event.time.clone(),
            event: String::from_utf8(bytes).expect("JSON is UTF-8"),
            prev_hash: head.hash.to_string(),
            hash: hash.to_string(),
        },
    )?;
    Ok(Head {
        seq: event.seq,
        hash,
    })
}

/// Writes one journal row as it is (its chaining is the caller's to have checked).
fn insert_row(tx: &Connection, row: &JournalRow) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO journal (seq, kind, time, event, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(rusqlite::params![
            row.seq,
            row.kind,
            row.time,
            row.event,
            row.prev_hash,
            row.hash
        ])
    })
    .map_err(Error::sql("append to journal"))?;
    // The tree's tiles in the same transaction as the row.
    tiles::extend(tx, row.seq as u64)
}

/// Clears every projection and replays `events` into them (inside the caller's transaction).
fn rebuild_projections(tx: &Connection, events: &[Event]) -> Result<()> {
    tx.pragma_update(None, "defer_foreign_keys", "ON")
        .map_err(Error::sql("defer foreign keys"))?;
    for t in PROJECTIONS {
        tx.execute(&format!("DELETE FROM {t}"), [])
            .map_err(Error::sql("clear projection"))?;
    }
    for e in events {
        project::apply(tx, e)?;
    }
    Ok(())
}

/// Removes what events after `after` put into the projections (inside the caller's
/// transaction, foreign keys deferred), so they can be replayed in another order
/// without replaying the whole journal.
fn unproject_after(tx: &Connection, after: u64) -> Result<()> {
    tx.pragma_update(None, "defer_foreign_keys", "ON")
        .map_err(Error::sql("defer foreign keys"))?;
    // PROJECTIONS lists children before parents: a child's rows are found through its
    // parent's `seq` before the parent rows go.
    for t in PROJECTIONS {
        let sql = match CHILDREN.iter().find(|c| c.0 == *t) {
            Some((_, col, parent)) => {
                format!("DELETE FROM {t} WHERE {col} IN (SELECT id FROM {parent} WHERE seq > ?1)")
            }
            None => format!("DELETE FROM {t} WHERE seq > ?1"),
        };
        tx.execute(&sql, [after as i64])
            .map_err(Error::sql("clear projection"))?;
    }
    Ok(())
}

fn head_of(conn: &Connection) -> Result<Head> {
    let r = conn.query_row(
        "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, ChainHash>(1)?)),
    );
    match r {
        Ok((seq, hash)) => Ok(Head {
            seq: seq as u64,
            hash,
        }),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(Head::EMPTY),
        Err(e) => Err(Error::Sql {
            action: "read journal head",
            source: e,
        }),
    }
}

#[derive(Debug, Clone)]
pub struct JournalRow {
    pub seq: i64,
    pub kind: String,
    pub time: String,
    pub event: String,
    pub prev_hash: String,
    pub hash: String,
}

impl JournalRow {
    /// The journal's head at this row; its stored hash must be a chain hash.
    pub(crate) fn head(&self) -> Result<Head> {
        let hash = ChainHash::parse(&self.hash).map_err(|e| Error::Integrity {
            message: format!("journal event {}: {e}", self.seq),
        })?;
        Ok(Head {
            seq: self.seq as u64,
            hash,
        })
    }

    /// Whether this row's stored hash is `h`.
    pub(crate) fn has_hash(&self, h: &ChainHash) -> bool {
        ChainHash::parse(&self.hash).is_ok_and(|mine| mine == *h)
    }

    /// The event this row holds.
    pub fn decode(&self) -> Result<Event> {
        serde_json::from_str(&self.event).map_err(|e| Error::Integrity {
            message: format!("journal event {} cannot be decoded: {e}", self.seq),
        })
    }

    /// From `SELECT seq, kind, time, event, prev_hash, hash`.
    fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalRow> {
        Ok(JournalRow {
            seq: r.get(0)?,
            kind: r.get(1)?,
            time: r.get(2)?,
            event: r.get(3)?,
            prev_hash: r.get(4)?,
            hash: r.get(5)?,
        })
    }
}

fn journal_rows(conn: &Connection) -> Result<Vec<JournalRow>> {
    journal_rows_after(conn, 0)
}

fn journal_rows_after(conn: &Connection, after: u64) -> Result<Vec<JournalRow>> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, kind, time, event, prev_hash, hash FROM journal WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(Error::sql("read journal"))?;
    let rows = st
        .query_map([after as i64], JournalRow::from_sql)
        .map_err(Error::sql("read journal"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Error::sql("read journal"))?;
    Ok(rows)
}

fn decode_all(rows: &[JournalRow]) -> Result<Vec<Event>> {
    rows.iter().map(JournalRow::decode).collect()
}

/// All rows of a table as text, sorted, for comparison.
fn table_rows(conn: &Connection, table: &str) -> Result<Vec<Vec<String>>> {
    let mut st = conn
        .prepare(&format!("SELECT * FROM {table}"))
        .map_err(Error::sql("read projection"))?;
    let n = st.column_count();
    let mut rows: Vec<Vec<String>> = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(b) => hex::encode(b),
                    })
                })
                .collect()
        })
        .map_err(Error::sql("read projection"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(Error::sql("read projection"))?;
    rows.sort();
    Ok(rows)
}
