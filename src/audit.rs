//! `audit`: the checks that say whether a ledger can be trusted, each finding named.
//! The local audit and the remote one (`sync::audit`) share the chain walk
//! ([`ChainCheck`](crate::ledger::ChainCheck)) and [`rehash`].

use std::collections::BTreeSet;
use std::fs;

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{ChainHash, ObjectId, ObjectMeta, Revocable, Sha256Digest};
use crate::ledger::vet::{tree_problems, Record};
use crate::ledger::{ChainCheck, Head, RunFilter, RunRow};
use crate::state::{AuditCheck, Lane, RunStatus};
use crate::store::tree::{ObjKind, Tree};
use crate::store::Store;

mod store;
use store::check_store;

#[derive(Serialize, Debug)]
pub(crate) struct Finding {
    pub check: AuditCheck,
    pub subject: String,
    pub message: String,
}

impl Finding {
    pub(crate) fn new(
        check: AuditCheck,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

#[derive(Serialize, Default)]
pub(crate) struct AuditOut {
    pub ok: bool,
    pub head: Option<Head>,
    pub events: u64,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub runs_checked: u64,
    pub findings: Vec<Finding>,
    /// Not failures: objects present in the store that no event names (left by an interrupted command).
    pub notes: Vec<String>,
}

/// What the journal says an object is: re-hashing must find exactly this.
#[derive(Clone, Copy)]
pub(crate) struct Expected {
    pub(crate) id: ObjectId,
    /// `None` when the recorded text is not a SHA-256 digest (itself a finding).
    pub(crate) sha256: Option<Sha256Digest>,
    pub(crate) size: u64,
    pub(crate) kind: ObjKind,
    /// The event that first named it.
    pub(crate) seq: u64,
}

impl Expected {
    pub(crate) fn record(&self) -> Record {
        Record {
            kind: self.kind,
            size: self.size,
            sha256: self.sha256,
        }
    }
}

/// Every expected object by id: what a tree's entries are held to.
pub(crate) type Records = std::collections::HashMap<ObjectId, Expected>;

/// Re-hashes every expected object in `store` (both digests and the size), in parallel;
/// one finding per object that is missing, unreadable or not what was recorded. A tree
/// must also decode, and each of its entries be one of `records`, as the entry says.
pub(crate) fn rehash(
    store: &Store,
    objects: &[Expected],
    records: &Records,
    check: AuditCheck,
    subject: impl Fn(&ObjectId) -> String + Sync,
    progress: &ProgressBar,
) -> Vec<Finding> {
    let one = |o: &Expected| -> Option<Finding> {
        progress.inc(1);
        let found = |message: String| Some(Finding::new(check, subject(&o.id), message));
        let read = match o.kind {
            ObjKind::Blob => store.rehash(&o.id).map(|m| m.map(|m| (m, Vec::new()))),
            ObjKind::Tree => store.read_at_most(&o.id, o.size),
        };
        let (m, bytes) = match read {
            Ok(Some(found)) => found,
            Ok(None) => {
                return found(format!(
                    "named by event {} but missing from the store",
                    o.seq
                ))
            }
            Err(e) => return found(format!("unreadable: {e}")),
        };
        let mut bad = differences(o, &m);
        if bad.is_empty() && o.kind == ObjKind::Tree {
            bad = match Tree::decode(&bytes) {
                Err(why) => vec![format!(
                    "recorded as a tree, but its bytes are not one: {why}"
                )],
                Ok(t) => tree_problems(&t, &|id| Ok(records.get(id).map(Expected::record)))
                    .unwrap_or_default(),
            };
        }
        (!bad.is_empty()).then(|| {
            Finding::new(
                check,
                subject(&o.id),
                format!("corrupt: {}", bad.join("; ")),
            )
        })
    };
    objects.par_iter().filter_map(one).collect()
}

/// How the bytes found (`m`) differ from what was recorded.
fn differences(o: &Expected, m: &ObjectMeta) -> Vec<String> {
    let mut bad = Vec::new();
    if m.id != o.id {
        bad.push(format!(
            "modified behind the ledger's back: its bytes hash to {}",
            m.id
        ));
    }
    match o.sha256 {
        Some(s) if s == m.sha256 => {}
        Some(s) => bad.push(format!("SHA-256 is {}, recorded {s}", m.sha256)),
        None => bad.push(format!(
            "SHA-256 is {}, the recorded one is not a digest",
            m.sha256
        )),
    }
    if m.size != o.size {
        bad.push(format!("size is {}, recorded {}", m.size, o.size));
    }
    bad
}

/// What `audit --checkpoint` was given: a head printed by `checkpoint`, or a signed
/// note from `checkpoint --sign` (the file's path and text).
pub(crate) enum CheckpointArg {
    Head(Head),
    Note(std::path::PathBuf, String),
}

/// SEQ:HASH, else the path of a signed note (which must parse as one).
pub(crate) fn checkpoint_arg(s: &str) -> Result<CheckpointArg> {
    if let Ok(h) = parse_checkpoint(s) {
        return Ok(CheckpointArg::Head(h));
    }
    let path = std::path::PathBuf::from(s);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) if !path.exists() => return parse_checkpoint(s).map(CheckpointArg::Head),
        Err(e) => {
            return Err(Error::bad_input(
                format!("checkpoint file {} cannot be read: {e}", path.display()),
                "pass SEQ:HASH from `cto-ledger checkpoint` or a note from `checkpoint --sign`",
            ))
        }
    };
    crate::sign::note::SignedNote::parse(&text).map_err(|e| {
        Error::bad_input(
            format!(
                "checkpoint file {} is not a signed note: {e}",
                path.display()
            ),
            "pass the note printed by `cto-ledger checkpoint --sign`",
        )
    })?;
    Ok(CheckpointArg::Note(path, text))
}

pub(crate) fn parse_checkpoint(s: &str) -> Result<Head> {
    let bad = || {
        Error::bad_input(
            format!("checkpoint `{s}` is not SEQ:HASH"),
            "pass the value printed by `cto-ledger checkpoint`, e.g. 42:9f86d0...",
        )
    };
    let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Head {
        seq,
        hash: ChainHash::parse(&hash.to_ascii_lowercase()).map_err(|_| bad())?,
    })
}

/// Every local check; `checkpoint`, when given, must still be extended by the journal.
pub(crate) fn audit(
    home: &Home,
    checkpoint: Option<&CheckpointArg>,
    progress: &ProgressBar,
) -> Result<AuditOut> {
    let mut out = AuditOut::default();
    check_chain(home, &mut out)?;
    let given_note = match checkpoint {
        Some(CheckpointArg::Head(cp)) => {
            check_checkpoint(home, cp, &mut out)?;
            None
        }
        Some(CheckpointArg::Note(path, text)) => Some((path.display().to_string(), text.clone())),
        None => None,
    };
    check_notes(home, given_note, &mut out)?;
    for (table, m) in home.ledger.diff_projections()? {
        out.findings
            .push(Finding::new(AuditCheck::Projection, table, m));
    }
    // The log's tiles against the tree the journal makes (`reindex` rebuilds them).
    for m in crate::ledger::tiles::check(home.ledger.conn())? {
        out.findings.push(Finding::new(
            AuditCheck::Projection,
            "tlog_nodes",
            format!("{m}; `cto-ledger reindex` rebuilds the tiles"),
        ));
    }
    let known = check_objects(home, &mut out, progress)?;
    check_store(home, &known, &mut out)?;
    check_home(home, &known, &mut out)?;
    check_runs(home, &mut out)?;
    unrecorded_runs(home, &mut out)?;
    crate::keyring::check_key_file(home, &mut out)?;
    out.ok = out.findings.is_empty();
    Ok(out)
}

/// The journal is one unbroken chain.
fn check_chain(home: &Home, out: &mut AuditOut) -> Result<()> {
    let rows = home.ledger.journal_rows()?;
    let mut chain = ChainCheck::new();
    for row in &rows {
        for m in chain.next(row) {
            out.findings.push(Finding::new(
                AuditCheck::Journal,
                format!("event {}", row.seq),
                m,
            ));
        }
    }
    out.events = rows.len() as u64;
    // A damaged last row is a finding above; the head is then unknown.
    out.head = rows.last().and_then(|r| r.head().ok());
    Ok(())
}

/// The ledger still extends an earlier checkpoint. Events that were local-only when it
/// was taken may have been re-appended after another host's by push/pull: prove that instead.
fn check_checkpoint(home: &Home, cp: &Head, out: &mut AuditOut) -> Result<()> {
    let row = home.ledger.row_at(cp.seq)?;
    if row.as_ref().is_some_and(|r| r.has_hash(&cp.hash)) {
        return Ok(());
    }
    if let Some(notes) = home.ledger.explain_moved_checkpoint(cp)? {
        out.notes.extend(notes);
        return Ok(());
    }
    let subject = format!("{}:{}", cp.seq, cp.hash);
    let message = match row {
        None => format!("the journal ends at event {} but the checkpoint is at event {}: the journal was truncated", out.events, cp.seq),
        Some(r) => format!("event {} now hashes to {}, not the checkpoint's {}: history was rewritten", cp.seq, r.hash, cp.hash),
    };
    out.findings
        .push(Finding::new(AuditCheck::Checkpoint, subject, message));
    Ok(())
}

/// Signed notes are signed by a recorded key and commit to the journal's first events:
/// the one given with `--checkpoint FILE`, and every one kept in the ledger (made here,
/// or seen on a remote) unless the chain is broken (the tree cannot be computed then).
fn check_notes(home: &Home, given: Option<(String, String)>, out: &mut AuditOut) -> Result<()> {
    let mut notes: Vec<(String, String)> = given.into_iter().collect();
    if !out.findings.iter().any(|f| f.check == AuditCheck::Journal) {
        for c in home.ledger.checkpoints()? {
            let key = crate::commands::text::prefix(&c.keyid, 16);
            let subject = format!("signed checkpoint of size {} (key {key})", c.size);
            notes.push((subject, c.note));
        }
        for remote in home.ledger.remotes()? {
            for c in home.ledger.remote_checkpoints(&remote.name)? {
                let subject = format!(
                    "checkpoint of size {} seen on remote {}",
                    c.size, remote.name
                );
                notes.push((subject, c.note));
            }
        }
    }
    if notes.is_empty() {
        return Ok(());
    }
    let checker = crate::tlog::NoteChecker::new(&home.ledger)?;
    for (subject, text) in notes {
        let problems = match checker.check(&text) {
            Ok(c) => c.problems,
            Err(e) => vec![format!("not a signed note: {e}")],
        };
        for p in problems {
            out.findings
                .push(Finding::new(AuditCheck::Checkpoint, subject.clone(), p));
        }
    }
    Ok(())
}

/// Every object re-hashes to both recorded digests; returns the ids the ledger records.
fn check_objects(
    home: &Home,
    out: &mut AuditOut,
    progress: &ProgressBar,
) -> Result<BTreeSet<String>> {
    let rows = home.ledger.stored_objects()?;
    progress.set_length(rows.len() as u64);
    let mut expected = Vec::with_capacity(rows.len());
    for o in &rows {
        match ObjectId::parse(&o.id) {
            Ok(id) => expected.push(Expected {
                id,
                sha256: Sha256Digest::parse(&o.sha256).ok(),
                size: o.size as u64,
                kind: ObjKind::parse(&o.kind).unwrap_or(ObjKind::Blob),
                seq: o.seq as u64,
            }),
            Err(_) => out.findings.push(Finding::new(
                AuditCheck::Object,
                o.id.clone(),
                "recorded id is not a BLAKE3 digest",
            )),
        }
    }
    let records: Records = expected.iter().map(|e| (e.id, *e)).collect();
    out.findings.extend(rehash(
        &home.store,
        &expected,
        &records,
        AuditCheck::Object,
        |id| id.to_string(),
        progress,
    ));
    progress.finish_and_clear();
    out.objects_checked = rows.len() as u64;
    out.bytes_checked = rows.iter().map(|o| o.size.max(0) as u64).sum();
    Ok(rows.into_iter().map(|o| o.id).collect())
}

/// What cto-ledger itself puts in the ledger home, top level: the database and its
/// journal files, the store, run folders, the provider executables, and the temporary
/// folders of a running `build` (`build-logs-*`, `build-check-*`), and those being deleted
/// (`trash-*`).
const HOME_ENTRIES: [&str; 7] = [
    "ledger.db",
    "ledger.db-wal",
    "ledger.db-shm",
    "ledger.db-journal",
    "objects",
    "runs",
    "exec",
];
const HOME_TEMP_PREFIXES: [&str; 2] = ["build-logs-", "build-check-"];

/// The ledger home holds only what cto-ledger writes there: anything else (a file a
/// provider planted, say) is a finding, as is an `exec/` file no recorded object names.
fn check_home(home: &Home, known: &BTreeSet<String>, out: &mut AuditOut) -> Result<()> {
    let list = |dir: &std::path::Path| -> Result<Vec<(String, fs::FileType)>> {
        Ok(entries(dir)?
            .into_iter()
            .map(|(n, t)| (String::from_utf8_lossy(&n).into_owned(), t))
            .collect())
    };
    let mut find = |path: std::path::PathBuf, m: &str| {
        out.findings.push(Finding::new(
            AuditCheck::Home,
            path.display().to_string(),
            m.to_string(),
        ))
    };
    for (name, t) in list(&home.dir)? {
        let path = home.dir.join(&name);
        if HOME_TEMP_PREFIXES.iter().any(|p| name.starts_with(p)) && t.is_dir() {
            out.notes.push(format!(
                "{} is a running (or killed) build's temporary folder",
                path.display()
            ));
        } else if name.starts_with(crate::home::TRASH_PREFIX) && t.is_dir() {
            out.notes.push(format!(
                "{} is a finished build check's scratch folder, being deleted (the next check deletes it if that was stopped)",
                path.display()
            ));
        } else if !HOME_ENTRIES.contains(&name.as_str()) {
            find(path, "unexpected entry in the ledger home: cto-ledger writes nothing by this name, so something else (a provider run without the sandbox, another program) put it here; look at it, then remove it");
        } else if (name == "objects" || name == "runs" || name == "exec") != t.is_dir() {
            find(path, "has the wrong file type for its name");
        }
    }
    for (name, t) in list(&home.dir.join("runs"))? {
        if !t.is_dir() {
            find(
                home.dir.join("runs").join(name),
                "unexpected file among the run folders",
            );
        }
    }
    for (name, t) in list(&home.dir.join("exec"))? {
        let path = home.dir.join("exec").join(&name);
        if name.starts_with(".exec-") {
            out.notes.push(format!(
                "{} is a provider executable being made (or left by a killed run)",
                path.display()
            ));
        } else if !t.is_file() || !known.contains(&format!("blake3:{name}")) {
            find(path, "not a provider executable cto-ledger made: exec/ holds only files named by a recorded object's BLAKE3 id");
        }
    }
    Ok(())
}

/// Every run left a final report and used an admitted, unrevoked provider (and model),
/// and its folder, where it still is, holds what was recorded.
/// How long past its timeout an attempt may still be running (its harness recording it)
/// before a `run_start` with no `run` is a finding.
const UNFINISHED_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Every attempt a `run_start` registered has its `run`: one that does not, once past its
/// timeout, was killed or hidden (its folder removed, its `run_folders` row deleted), and
/// the signed history says so.
fn check_unfinished(home: &Home, out: &mut AuditOut) -> Result<()> {
    let now = chrono::DateTime::parse_from_rfc3339(&crate::ledger::now()).ok();
    for u in home.ledger.unfinished_runs()? {
        let started = chrono::DateTime::parse_from_rfc3339(&u.started).ok();
        let due = started
            .map(|t| t + chrono::TimeDelta::milliseconds(u.timeout_ms as i64) + UNFINISHED_GRACE);
        let folder = std::path::Path::new(&u.run_dir);
        if let (Some(now), Some(due)) = (now, due) {
            if now < due && folder.is_dir() {
                out.notes.push(format!("run:{} (registered in event {}) is in progress or its harness just died; it is due by {due}", u.id, u.seq));
                continue;
            }
        }
        let where_ = if folder.is_dir() {
            format!(
                "its folder {} is still there: `cto-ledger recover` records it",
                folder.display()
            )
        } else {
            format!("its folder {} is gone", folder.display())
        };
        out.findings.push(Finding::new(
            AuditCheck::Run,
            format!("run:{}", u.id),
            format!(
                "started, never finished: registered in event {} ({}, provider {}, model {}), and no run event ended it; {where_}",
                u.seq,
                u.started,
                u.provider_admission.as_ref().map_or("unadmitted".into(), |a| a.to_string()),
                u.model.as_deref().unwrap_or("none")
            ),
        ));
    }
    Ok(())
}

fn check_runs(home: &Home, out: &mut AuditOut) -> Result<()> {
    check_unfinished(home, out)?;
    let runs = home.ledger.runs(&RunFilter::default())?;
    out.runs_checked = runs.len() as u64;
    for r in runs {
        check_run_folder(home, &r, out)?;
        let id = format!("run:{}", r.id);
        let mut find = |m: String| {
            out.findings
                .push(Finding::new(AuditCheck::Run, id.clone(), m))
        };
        if r.report_object.is_none() {
            find("has no report.json object".into());
        }
        if r.status == RunStatus::Started {
            find("report.json was never finalised (status started)".into());
        }
        if r.status == RunStatus::Blocked || !r.provider_started {
            continue; // the provider never started
        }
        let mut used = vec![("provider", r.provider_admission.map(Revocable::Admission))];
        if r.lane != Lane::Fake {
            used.push(("model", r.model_admission.map(Revocable::Model)));
        }
        for (what, admission) in used {
            let Some(adm) = admission else {
                find(format!("ran a {what} with no admission"));
                continue;
            };
            if let Some(rev) = home
                .ledger
                .revocation_of(&adm)?
                .filter(|rev| rev.seq < r.seq)
            {
                find(format!(
                    "ran {what} admission {adm} after it was revoked by {}",
                    rev.id
                ));
            }
        }
    }
    Ok(())
}

/// A recorded run folder still on disk holds exactly the tree its run recorded: a file
/// planted in it (or changed, or removed) after the run is a finding.
fn check_run_folder(home: &Home, r: &RunRow, out: &mut AuditOut) -> Result<()> {
    let (Some(tree), dir) = (r.tree_object, std::path::PathBuf::from(&r.run_dir)) else {
        return Ok(());
    };
    if !dir.is_dir() {
        return Ok(()); // removed by its owner; its evidence is in the store
    }
    let mut diffs = Vec::new();
    // A recorded tree the store cannot give back is a finding of its own (the object
    // check names what is missing); the audit goes on to every other run and check.
    match compare_folder(&home.store, &tree, &dir, "", &mut diffs) {
        Ok(()) => {}
        Err(Error::Integrity { message }) => {
            out.findings.push(Finding::new(
                AuditCheck::Run,
                format!("run:{}", r.id),
                format!("its folder cannot be compared with its recorded tree {tree}: {message}"),
            ));
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    // A part the run said it could not record is on disk but not in the tree: the
    // run's own account, not a change after the fact.
    for (part, why) in unrecorded_parts(home, r) {
        let planted = format!("planted {part}");
        if let Some(i) = diffs.iter().position(|d| *d == planted) {
            diffs.remove(i);
            out.notes.push(format!(
                "run:{}: its folder's part `{part}` was not recorded when the run was ({why}); it is on disk only",
                r.id
            ));
        }
    }
    if !diffs.is_empty() {
        let shown: Vec<&str> = diffs.iter().take(5).map(String::as_str).collect();
        let more = if diffs.len() > 5 {
            format!(" and {} more", diffs.len() - 5)
        } else {
            String::new()
        };
        out.findings.push(Finding::new(
            AuditCheck::Run,
            format!("run:{}", r.id),
            format!(
                "its folder {} changed after it was recorded: {}{more}; the recorded tree is the evidence (`cto-ledger restore {tree} DIR`)",
                dir.display(),
                shown.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The names (as bytes) and types of what is in `dir`, by name; nothing if it is gone.
fn entries(dir: &std::path::Path) -> Result<Vec<(Vec<u8>, fs::FileType)>> {
    use std::os::unix::ffi::OsStrExt;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(Error::io("list", dir))?;
        let t = e.file_type().map_err(Error::io_entry("stat", &e))?;
        v.push((e.file_name().as_bytes().to_vec(), t));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Differences between folder `dir` and tree `id`, as `planted|changed|missing PATH`.
fn compare_folder(
    store: &Store,
    id: &ObjectId,
    dir: &std::path::Path,
    rel: &str,
    diffs: &mut Vec<String>,
) -> Result<()> {
    use crate::store::tree::{self, Kind};
    let t = tree::load(store, id)?;
    let on_disk = entries(dir)?;
    let name = |n: &[u8]| format!("{rel}{}", String::from_utf8_lossy(n));
    for (n, _) in &on_disk {
        if !t.entries.iter().any(|e| &e.name == n) {
            diffs.push(format!("planted {}", name(n)));
        }
    }
    for e in &t.entries {
        let Some((_, ft)) = on_disk.iter().find(|(n, _)| *n == e.name) else {
            diffs.push(format!("missing {}", name(&e.name)));
            continue;
        };
        use std::os::unix::ffi::OsStrExt;
        let p = dir.join(std::ffi::OsStr::from_bytes(&e.name));
        let same = match (e.kind, e.object) {
            (Kind::Dir, Some(sub)) if ft.is_dir() => {
                compare_folder(store, &sub, &p, &format!("{}/", name(&e.name)), diffs)?;
                true
            }
            (Kind::File, Some(obj)) if ft.is_file() => {
                crate::store::object_id_of_file(&p).is_ok_and(|got| got == obj)
            }
            (Kind::Symlink, _) if ft.is_symlink() => fs::read_link(&p)
                .is_ok_and(|l| Some(l.as_os_str().as_bytes()) == e.target.as_deref()),
            (k, _) if k.is_special() => Kind::special_of(ft) == Some(k),
            _ => false,
        };
        if !same {
            diffs.push(format!("changed {}", name(&e.name)));
        }
    }
    Ok(())
}

/// The parts of a run's folder its report says could not be recorded, with why.
fn unrecorded_parts(home: &Home, r: &RunRow) -> Vec<(String, String)> {
    let Some(report) = r.report_object else {
        return Vec::new();
    };
    let Ok(bytes) = home.store.get_verified(&report) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    v["unrecorded"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let path = u["path"].as_str()?.to_string();
            let why = u["error"].as_str().unwrap_or_default();
            let why: String = why.chars().take(160).collect();
            Some((path, why))
        })
        .collect()
}

/// Run folders that no `run` event records (under `<home>/runs`, or noted anywhere when
/// their run started). A folder whose cto-ledger process is still alive is in
/// progress, not a finding.
fn unrecorded_runs(home: &Home, out: &mut AuditOut) -> Result<()> {
    for (name, dir) in crate::stage2::unrecorded_run_folders(home)? {
        let report = fs::read(dir.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let status = report
            .as_ref()
            .and_then(|v| v["status"].as_str().map(str::to_string));
        let pid = report.as_ref().and_then(|v| v["harness_pid"].as_u64());
        if crate::stage2::harness_alive(pid) {
            out.notes.push(format!("run folder {name} is in progress"));
            continue;
        }
        let message = match status {
            Some(s) => format!("run folder is not recorded in the ledger (the harness stopped before finishing); its report.json says {s}; `cto-ledger recover` records it as interrupted"),
            None => "run folder is not recorded in the ledger and has no readable report.json".into(),
        };
        out.findings.push(Finding::new(
            AuditCheck::Run,
            dir.display().to_string(),
            message,
        ));
    }
    Ok(())
}
