//! `pull`: the remote's new events into this ledger, every object they name fetched and
//! re-hashed first, and the signed checkpoints it published checked against them.

use serde::Serialize;

use super::{parse_checkpoint_key, seq_name, transfer_all, Remote};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::Event;
use crate::ledger::{Head, JournalRow};
use crate::store::s3::object_key;

#[derive(Debug, Serialize)]
pub(crate) struct PullOut {
    pub remote: String,
    pub url: String,
    pub pulled: u64,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    /// Local events re-appended after the remote's (old seq, new seq).
    pub moved: Vec<(u64, u64)>,
    /// Local events the remote already held (old seq, remote seq).
    pub already_remote: Vec<(u64, u64)>,
    /// The remote no longer held events this host had seen there (a server that did not
    /// honour a create-only write, or a remote rewritten behind the ledger's back).
    pub remote_replaced: bool,
    pub head: Head,
    pub synced: Head,
    /// Signed checkpoints the remote published that this pull checked and kept: tree sizes.
    pub checkpoints: Vec<u64>,
}

/// Brings the local journal up to date with the remote: fetches and re-hashes every
/// object the new events name, then takes the events in one transaction.
pub(crate) fn pull(home: &mut Home, remote: &mut Remote) -> Result<PullOut> {
    let (mut base, replaced) = remote.common_base(home)?;
    let keys = remote.s3.list("journal", Some(&seq_name(base.seq)))?;
    let reason = if replaced { "replaced" } else { "behind" };
    let mut out = PullOut {
        remote: remote.row.name.clone(),
        url: remote.row.url.clone(),
        pulled: 0,
        objects_fetched: 0,
        bytes_fetched: 0,
        moved: Vec::new(),
        already_remote: Vec::new(),
        remote_replaced: replaced,
        head: home.ledger.head()?,
        synced: remote.row.synced.clone(),
        checkpoints: Vec::new(),
    };
    if replaced {
        refuse_rewritten(home, remote, &base)?;
    }
    let mut rest = &keys[..];
    // A remote that lost events moves local ones even when it has nothing new.
    let mut pending = !rest.is_empty() || replaced;
    while pending {
        // With no local events after the base, the remote's events are appended in
        // batches, each committed on its own, so a long journal never sits in memory.
        // Local events to re-append move once, in one transaction with everything after
        // the base, so a checkpoint taken before stays provable through that one move.
        let n = if !replaced && home.ledger.head()?.seq == base.seq {
            pull_batch().min(rest.len())
        } else {
            rest.len()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let rows = remote.entries(chunk, &base)?;
        let (objects, bytes) = fetch_objects(home, remote, &rows)?;
        let synced = home.store.sync()?;
        let done = home
            .ledger
            .integrate(synced, &remote.row.name, &base, &rows, reason)?;
        out.pulled += done.pulled;
        out.objects_fetched += objects;
        out.bytes_fetched += bytes;
        out.moved.extend(done.moved);
        out.already_remote.extend(done.already_remote);
        if let Some(last) = rows.last() {
            base = last.head()?;
        }
        pending = !rest.is_empty();
    }
    remote.row = home.ledger.remote(&remote.row.name)?;
    out.head = home.ledger.head()?;
    out.synced = remote.row.synced.clone();
    out.checkpoints = take_checkpoints(home, remote)?;
    Ok(out)
}

/// The remote no longer holds events this host saw there. That is an outage to repair
/// (its writers re-publish) unless the remote had signed a checkpoint over them: a
/// signed log that drops signed events has rewritten its history.
fn refuse_rewritten(home: &Home, remote: &Remote, base: &Head) -> Result<()> {
    let Some(seen) = home.ledger.latest_remote_checkpoint(&remote.row.name)? else {
        return Ok(());
    };
    if seen.size <= base.seq {
        return Ok(());
    }
    let newest = remote
        .s3
        .list("checkpoints", None)?
        .iter()
        .filter_map(|k| parse_checkpoint_key(&k.key))
        .map(|(size, _)| size)
        .max();
    let now = match newest {
        Some(n) => format!("its newest checkpoint has size {n}"),
        None => "it publishes no checkpoint now".into(),
    };
    Err(Error::Integrity {
        message: format!(
            "remote {}: history was rewritten: this host saw its signed checkpoint of size {} (root {}, {}), but the remote's journal now diverges after event {}, and {now}; a checkpoint of size {} is not consistent with it; nothing was taken from the remote",
            remote.url(),
            seen.size,
            &seen.root[..16],
            seen.time,
            base.seq,
            newest.map_or("?".to_string(), |n| n.to_string()),
        ),
    })
}

/// Fetches the signed checkpoints the remote published since the last pull, checks each
/// against the journal it covers (now local: 1..synced are the remote's events) and
/// keeps them. One that does not verify, or commits to other events, is refused.
fn take_checkpoints(home: &Home, remote: &Remote) -> Result<Vec<u64>> {
    let name = &remote.row.name;
    let mut taken = Vec::new();
    // Read the journal's leaves once, and only when there is a new note to check.
    let mut checker = None;
    for k in remote.s3.list("checkpoints", None)? {
        let Some((size, keyid16)) = parse_checkpoint_key(&k.key) else {
            continue;
        };
        if size > remote.row.synced.seq
            || home.ledger.has_remote_checkpoint(name, size, &keyid16)?
        {
            continue;
        }
        let text = String::from_utf8(remote.get_listed(&k.key)?).unwrap_or_default();
        let checker = match &mut checker {
            Some(c) => c,
            None => checker.insert(crate::tlog::NoteChecker::new(&home.ledger)?),
        };
        let check = match checker.check(&text) {
            Err(e) => Err(format!("is not a signed note: {e}")),
            Ok(c) if c.size != size => Err(format!("holds a checkpoint of size {}", c.size)),
            Ok(c) => match (c.problems.into_iter().next(), c.keyid) {
                (None, Some(keyid)) => Ok((keyid, c.root)),
                (p, _) => Err(p.unwrap_or_default()),
            },
        };
        let (keyid, root) = match check {
            Ok(signed) => signed,
            Err(p) => {
                let before = match home.ledger.latest_remote_checkpoint(name)? {
                    Some(s) => format!(" (this host saw its checkpoint of size {} before)", s.size),
                    None => String::new(),
                };
                return Err(Error::Integrity {
                    message: format!("remote {}: {} {p}{before}; the checkpoint of size {size} is not consistent with the remote's journal", remote.url(), k.key),
                });
            }
        };
        let row = crate::ledger::tlog::CheckpointRow {
            size,
            keyid,
            root,
            note: text,
            time: crate::ledger::now(),
        };
        home.ledger.save_remote_checkpoint(name, &row)?;
        taken.push(size);
    }
    Ok(taken)
}

/// Remote events taken per transaction when nothing local has to move:
/// `CTO_LEDGER_TEST_PULL_BATCH`, else 1,000.
fn pull_batch() -> usize {
    crate::env::test_number::<usize>("CTO_LEDGER_TEST_PULL_BATCH")
        .filter(|&n| n > 0)
        .unwrap_or(1000)
}

/// Copies into the local store every object the events name that it lacks, re-hashing
/// each one against the id, SHA-256 and size the event records.
fn fetch_objects(home: &Home, remote: &Remote, rows: &[JournalRow]) -> Result<(u64, u64)> {
    let mut want = std::collections::BTreeMap::new();
    for row in rows {
        let e: Event = serde_json::from_str(&row.event).expect("checked by decode");
        for o in e.body.objects() {
            want.entry(o.id).or_insert((*o, row.seq));
        }
    }
    let missing: Vec<_> = want
        .into_values()
        .filter_map(|(o, seq)| match home.store.has(&o.id) {
            Ok(true) => None,
            Ok(false) => Some(Ok((o, seq))),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_>>()?;
    let local = &home.store;
    let bytes = transfer_all(&missing, |(o, seq)| {
        let key = object_key(&o.id);
        let mut staged = local.backend().stage_for(&o.id)?;
        let got = remote
            .store
            .copy_verified_if_present(&o.id, &mut staged)
            .map_err(|e| match e {
                Error::Integrity { message } => Error::Integrity {
                    message: format!("remote {}: {key} was modified behind the ledger's back ({message}); rejected, nothing was taken from the remote", remote.url()),
                },
                other => other,
            })?
            .ok_or_else(|| Error::Integrity {
                message: format!("remote {}: event {seq} names object {} but the remote has no {key}; nothing was taken from the remote", remote.url(), o.id),
            })?;
        if got.sha256 != o.sha256 || got.size != o.size {
            return Err(Error::Integrity {
                message: format!("remote {}: {key} hashes to its id but not to the SHA-256/size event {seq} records; rejected, nothing was taken from the remote", remote.url()),
            });
        }
        staged.commit(&o.id)?;
        Ok(Some(got.size))
    })?;
    Ok((missing.len() as u64, bytes))
}
