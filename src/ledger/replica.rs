//! This host's side of a shared ledger: configured remotes, how far the local journal
//! agrees with each, and re-appending local events after events that arrived from a
//! remote (with their old form kept, so earlier checkpoints stay provable).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use serde::Serialize;

use super::events::Event;
use super::{
    append, chain_hash, head_of, insert_row, journal_rows_after, Head, JournalRow, Ledger,
};
use crate::error::{Error, Result};
use crate::id::ChainHash;

#[derive(Debug, Clone, Serialize)]
pub struct RemoteRow {
    pub name: String,
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub added: String,
    /// Local events 1..synced.seq are the remote's journal 1..synced.seq.
    pub synced: Head,
    pub synced_time: Option<String>,
}

/// What integrating a remote's events did to the local journal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrated {
    /// Remote events appended.
    pub pulled: u64,
    /// Local events re-appended after the remote's, as (old seq, new seq).
    pub moved: Vec<(u64, u64)>,
    /// Local events the remote already held (same event, other sequence number): (old, remote seq).
    pub already_remote: Vec<(u64, u64)>,
    pub head: Option<Head>,
}

/// An event without its sequence number: what stays the same when it is re-appended.
pub(crate) fn identity(event_text: &str) -> Result<Vec<u8>> {
    let mut e: Event = serde_json::from_str(event_text).map_err(|e| Error::Integrity {
        message: format!("journal event cannot be decoded: {e}"),
    })?;
    e.seq = 0;
    Ok(serde_jcs::to_vec(&e).expect("events serialise"))
}

const REMOTE_COLS: &str =
    "name, url, endpoint, region, added, synced_seq, synced_hash, synced_time";

fn remote_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RemoteRow> {
    Ok(RemoteRow {
        name: r.get(0)?,
        url: r.get(1)?,
        endpoint: r.get(2)?,
        region: r.get(3)?,
        added: r.get(4)?,
        synced: Head {
            seq: r.get::<_, i64>(5)? as u64,
            hash: r.get(6)?,
        },
        synced_time: r.get(7)?,
    })
}

impl Ledger {
    pub fn remote_add(
        &mut self,
        name: &str,
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<()> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO remotes (name, url, endpoint, region, added) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, url, endpoint, region, super::now()],
            )
            .map_err(Error::sql("add remote"))?;
        if n == 0 {
            return Err(Error::bad_input(
                format!("a remote named `{name}` already exists"),
                "pick another name, or `cto-ledger remote remove` it first",
            ));
        }
        Ok(())
    }

    pub fn remote_remove(&mut self, name: &str) -> Result<()> {
        self.remote(name)?;
        self.conn
            .execute("DELETE FROM remotes WHERE name = ?1", [name])
            .map_err(Error::sql("remove remote"))?;
        self.conn
            .execute("DELETE FROM remote_policies WHERE remote = ?1", [name])
            .map_err(Error::sql("remove remote"))?;
        Ok(())
    }

    pub fn remotes(&self) -> Result<Vec<RemoteRow>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {REMOTE_COLS} FROM remotes ORDER BY name"))
            .map_err(Error::sql("read remotes"))?;
        let rows = st
            .query_map([], remote_row)
            .map_err(Error::sql("read remotes"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sql("read remotes"))?;
        Ok(rows)
    }

    /// The remote named `name`; with `None`, the only one configured.
    pub fn remote(&self, name: &str) -> Result<RemoteRow> {
        self.conn
            .query_row(
                &format!("SELECT {REMOTE_COLS} FROM remotes WHERE name = ?1"),
                [name],
                remote_row,
            )
            .optional()
            .map_err(Error::sql("read remotes"))?
            .ok_or_else(|| Error::NotFound {
                what: "remote",
                input: name.to_string(),
                hint: Some("list remotes with `cto-ledger remote`, add one with `cto-ledger remote add NAME s3://BUCKET/PREFIX`".into()),
            })
    }

    /// Objects first named by an event after `seq` (what a push must upload first).
    pub fn objects_named_after(&self, seq: u64) -> Result<Vec<crate::id::ObjectId>> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM objects WHERE seq > ?1 ORDER BY seq")
            .map_err(Error::sql("read objects"))?;
        let ids = st
            .query_map([seq as i64], |r| r.get::<_, String>(0))
            .map_err(Error::sql("read objects"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sql("read objects"))?;
        ids.iter()
            .map(|s| {
                crate::id::ObjectId::parse(s).map_err(|e| Error::Integrity {
                    message: format!("objects table holds `{s}`, not an object id: {e}"),
                })
            })
            .collect()
    }

    pub fn rows_after(&self, seq: u64) -> Result<Vec<JournalRow>> {
        journal_rows_after(&self.conn, seq)
    }

    pub fn row_at(&self, seq: u64) -> Result<Option<JournalRow>> {
        self.conn
            .query_row(
                "SELECT seq, kind, time, event, prev_hash, hash FROM journal WHERE seq = ?1",
                [seq as i64],
                JournalRow::from_sql,
            )
            .optional()
            .map_err(Error::sql("read journal"))
    }

    /// Records that local event `head` is now also the remote's, if the local journal
    /// still holds exactly that event (a concurrent pull may have moved it).
    pub fn set_synced(&mut self, name: &str, head: &Head) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE remotes SET synced_seq = ?2, synced_hash = ?3, synced_time = ?4
                 WHERE name = ?1 AND synced_seq <= ?2
                   AND EXISTS (SELECT 1 FROM journal WHERE seq = ?2 AND hash = ?3)",
                params![name, head.seq as i64, head.hash, super::now()],
            )
            .map_err(Error::sql("record remote progress"))?;
        Ok(n == 1)
    }

    /// Puts the remote's events `remote` (which extend `base`) into the local journal.
    /// Local events after `base` that the remote lacks are re-appended after them, in
    /// their order; local events the remote already holds are not repeated. One
    /// transaction: on any failure the ledger is as it was.
    pub fn integrate(
        &mut self,
        _synced: crate::store::Synced<'_>,
        name: &str,
        base: &Head,
        remote: &[JournalRow],
        reason: &str,
    ) -> Result<Integrated> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sql("begin"))?;
        if base.seq > 0 {
            let have: Option<String> = tx
                .query_row(
                    "SELECT hash FROM journal WHERE seq = ?1",
                    [base.seq as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::sql("read journal"))?;
            if have != Some(base.hash.to_string()) {
                return Err(Error::Ledger {
                    path: self.path.clone(),
                    message: format!("event {} changed while the remote was read", base.seq),
                    hint: Some(
                        "another command moved the journal at the same time; run the command again"
                            .into(),
                    ),
                });
            }
        }
        let local = journal_rows_after(&tx, base.seq)?;
        let signed = super::tlog::signed_size(&tx)?;
        if !local.is_empty() && signed > base.seq {
            return Err(Error::Integrity {
                message: format!(
                    "remote `{name}` diverges from this ledger after event {}, but a signed checkpoint commits this ledger to its events up to {signed}; they cannot be re-numbered after the remote's, so nothing was taken from the remote",
                    base.seq
                ),
            });
        }
        let mut out = Integrated {
            pulled: remote.len() as u64,
            ..Default::default()
        };
        if local.is_empty() {
            for row in remote {
                insert_row(&tx, row)?;
                super::project::apply(&tx, &row.decode()?)
                    .map_err(|e| unprojectable(name, row.seq, e))?;
            }
        } else {
            reappend(&tx, name, reason, base, remote, &local, &mut out)?;
        }
        let synced = remote.last().map_or(Ok(base.clone()), JournalRow::head)?;
        tx.execute(
            "UPDATE remotes SET synced_seq = ?2, synced_hash = ?3, synced_time = ?4 WHERE name = ?1",
            params![name, synced.seq as i64, synced.hash, super::now()],
        )
        .map_err(Error::sql("record remote progress"))?;
        out.head = Some(head_of(&tx)?);
        tx.commit().map_err(Error::sql("commit"))?;
        crate::store::power_cut::after_commit();
        Ok(out)
    }

    /// Explains a checkpoint that no longer matches the journal because the events it
    /// covered were re-appended: `Ok(Some(notes))` when every event it covered is
    /// provably still in the journal, `Ok(None)` when no re-append explains it.
    pub fn explain_moved_checkpoint(&self, cp: &Head) -> Result<Option<Vec<String>>> {
        let rebase: Option<(i64, i64, String)> = self
            .conn
            .query_row(
                "SELECT e.rebase, b.base_seq, b.base_hash FROM rebased_events e JOIN rebases b ON b.id = e.rebase
                 WHERE e.old_seq = ?1 AND e.old_hash = ?2 ORDER BY e.rebase DESC LIMIT 1",
                params![cp.seq as i64, cp.hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(Error::sql("read rebases"))?;
        let Some((rebase, base_seq, base_hash)) = rebase else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare("SELECT old_seq, old_prev_hash, old_hash, old_event, new_seq FROM rebased_events WHERE rebase = ?1 AND old_seq <= ?2 ORDER BY old_seq")
            .map_err(Error::sql("read rebases"))?;
        let moved = st
            .query_map(params![rebase, cp.seq as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(Error::sql("read rebases"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::sql("read rebases"))?;
        // The old chain must run from the base to the checkpoint through the kept bytes...
        let mut prev = base_hash.clone();
        for (i, (old_seq, old_prev, old_hash, old_event, _)) in moved.iter().enumerate() {
            if *old_seq != base_seq + 1 + i as i64
                || *old_prev != prev
                || chain_hash(old_prev, old_event.as_bytes()).to_string() != *old_hash
            {
                return Ok(None);
            }
            prev = old_hash.clone();
        }
        if prev != cp.hash.to_string() {
            return Ok(None);
        }
        // ...the base must still be in the journal (or itself be explained)...
        let mut notes = Vec::new();
        let Ok(hash) = ChainHash::parse(&base_hash) else {
            return Ok(None);
        };
        let base = Head {
            seq: base_seq as u64,
            hash,
        };
        if base.seq > 0 {
            match self.row_at(base.seq)? {
                Some(r) if r.has_hash(&base.hash) => {}
                _ => match self.explain_moved_checkpoint(&base)? {
                    Some(n) => notes.extend(n),
                    None => return Ok(None),
                },
            }
        }
        // ...and every covered event must stand, unchanged but for its number, where recorded.
        for (_, _, _, old_event, new_seq) in &moved {
            let now = self.row_at(*new_seq as u64)?;
            if now.map(|r| identity(&r.event)).transpose()? != Some(identity(old_event)?) {
                return Ok(None);
            }
        }
        let first = moved.first().map(|m| m.4).unwrap_or_default();
        let last = moved.last().map(|m| m.4).unwrap_or_default();
        notes.push(format!(
            "checkpoint {}:{} covered {} event(s) after {} that were not yet on the remote; they were re-appended after other hosts' events and are now events {first}..{last}, unchanged but for their numbers; events up to {} are as the checkpoint saw them",
            cp.seq,
            &cp.hash.to_string()[..16],
            moved.len(),
            base.seq,
            base.seq
        ));
        Ok(Some(notes))
    }
}

/// The journal's append-only triggers, as the schema created them.
fn journal_triggers(tx: &Connection) -> Result<Vec<String>> {
    let mut st = tx
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'journal'")
        .map_err(Error::sql("read triggers"))?;
    let v = st
        .query_map([], |r| r.get(0))
        .map_err(Error::sql("read triggers"))?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(Error::sql("read triggers"))?;
    Ok(v)
}

/// Puts the remote's events after `base` and re-appends the local events the remote
/// lacks after them, keeping each moved event's old form (inside the caller's transaction).
fn reappend(
    tx: &Connection,
    name: &str,
    reason: &str,
    base: &Head,
    remote: &[JournalRow],
    local: &[JournalRow],
    out: &mut Integrated,
) -> Result<()> {
    let on_remote: HashMap<Vec<u8>, u64> = remote
        .iter()
        .map(|r| Ok((identity(&r.event)?, r.seq as u64)))
        .collect::<Result<_>>()?;
    // The append-only triggers guard published history; unpublished local events
    // are the one thing that may move. Recreate them exactly as the schema has them.
    let triggers = journal_triggers(tx)?;
    for t in [
        "journal_is_append_only_update",
        "journal_is_append_only_delete",
    ] {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}"))
            .map_err(Error::sql("move unpublished events"))?;
    }
    super::tiles::truncate(tx, base.seq)?;
    tx.execute("DELETE FROM journal WHERE seq > ?1", [base.seq as i64])
        .map_err(Error::sql("move unpublished events"))?;
    for row in remote {
        insert_row(tx, row)?;
    }
    let mut head = remote.last().map_or(Ok(base.clone()), JournalRow::head)?;
    let mut moved = Vec::new();
    for row in local {
        if let Some(&at) = on_remote.get(&identity(&row.event)?) {
            out.already_remote.push((row.seq as u64, at));
            moved.push((row, at));
            continue;
        }
        head = append(tx, &head, &mut row.decode()?)?;
        out.moved.push((row.seq as u64, head.seq));
        moved.push((row, head.seq));
    }
    for sql in &triggers {
        tx.execute_batch(sql)
            .map_err(Error::sql("restore journal triggers"))?;
    }
    let old_head = local.last().expect("not empty");
    tx.execute(
        "INSERT INTO rebases (time, remote, reason, base_seq, base_hash, old_head_seq, old_head_hash, new_head_seq, new_head_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![super::now(), name, reason, base.seq as i64, base.hash, old_head.seq, old_head.hash, head.seq as i64, head.hash],
    )
    .map_err(Error::sql("record rebase"))?;
    let rebase = tx.last_insert_rowid();
    for (row, new_seq) in moved {
        tx.execute(
            "INSERT INTO rebased_events (rebase, old_seq, old_prev_hash, old_hash, old_event, new_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![rebase, row.seq, row.prev_hash, row.hash, row.event, new_seq as i64],
        )
        .map_err(Error::sql("record rebase"))?;
    }
    // Only the events after the base moved or arrived: replay just those.
    super::unproject_after(tx, base.seq)?;
    for e in super::decode_all(&journal_rows_after(tx, base.seq)?)? {
        super::project::apply(tx, &e).map_err(|err| unprojectable(name, e.seq as i64, err))?;
    }
    // Another remote that had the moved events no longer agrees past the base.
    tx.execute(
        "UPDATE remotes SET synced_seq = ?2, synced_hash = ?3 WHERE name != ?1 AND synced_seq > ?2",
        params![name, base.seq as i64, base.hash],
    )
    .map_err(Error::sql("record remote progress"))?;
    Ok(())
}

/// A remote event the tables cannot take (it names a source, build or admission no event
/// before it recorded): the remote's fault, refused whole.
fn unprojectable(name: &str, seq: i64, e: Error) -> Error {
    match e {
        Error::Sql { action, source } => Error::Integrity {
            message: format!(
                "remote `{name}`: event {seq} cannot be taken ({action}: {source}): it names something no event before it records; nothing of that batch was taken from the remote"
            ),
        },
        other => other,
    }
}
