//! `pull`: the remote's new events into this ledger, every object they name fetched and
//! re-hashed first, and the signed checkpoints it published checked against them.

use std::io::Write;

use indicatif::ProgressBar;
use serde::Serialize;

use super::{parse_checkpoint_key, seq_name, transfer_all, Remote};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::{Event, ObjRec};
use crate::ledger::replica::Integrated;
use crate::ledger::vet::Vetting;
use crate::ledger::{Head, JournalRow};
use crate::store::s3::KeyInfo;
use crate::store::tree::{ObjKind, Tree};

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
    /// Keys under `checkpoints/` that are not notes signed by a recorded key, and why:
    /// they vouch for nothing, and `audit --remote` reports them.
    pub ignored_checkpoints: Vec<String>,
    /// How what the remote requires (`config/policies.json`) changed since it was last
    /// read here: `+ NAME ...` newly required, `- NAME ...` no longer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requirement_changes: Vec<String>,
}

/// Brings the local journal up to date with the remote: fetches and re-hashes every
/// object the new events name, then takes the events in one transaction.
/// The problems a witness policy finds with a signed note (`pull --quorum`).
pub(crate) type Quorum<'a> = &'a dyn Fn(&str) -> Result<Vec<String>>;

pub(crate) fn pull(
    home: &mut Home,
    remote: &mut Remote,
    progress: &ProgressBar,
    quorum: Option<Quorum<'_>>,
) -> Result<PullOut> {
    let (mut base, replaced) = remote.common_base(home)?;
    let keys = remote.s3.list("journal", Some(&seq_name(base.seq)))?;
    if let Some(q) = quorum.filter(|_| !keys.is_empty()) {
        require_quorum(home, remote, &keys, &base, q)?;
    }
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
        ignored_checkpoints: Vec::new(),
        requirement_changes: Vec::new(),
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
            super::batch_len(rest, pull_batch())
        } else {
            rest.len()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let step = take_batch(home, remote, chunk, &base, reason, progress);
        let (rows, done, objects, bytes) = match step {
            Ok(s) => s,
            Err(e) if out.pulled > 0 => {
                return Err(Error::AfterCommit {
                    committed: format!(
                        "this pull had already committed {} event(s) from the remote, through event {}; run `cto-ledger audit --remote` to see what is wrong there",
                        out.pulled, base.seq
                    ),
                    source: Box::new(e),
                })
            }
            Err(e) => return Err(e),
        };
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
    progress.finish_and_clear();
    remote.row = home.ledger.remote(&remote.row.name)?;
    out.head = home.ledger.head()?;
    out.synced = remote.row.synced.clone();
    (out.checkpoints, out.ignored_checkpoints) = take_checkpoints(home, remote)?;
    // Then what the remote requires: the policies every host must apply to make more.
    match super::policies::take(home, remote) {
        Ok(changes) => {
            out.requirement_changes = changes;
            Ok(out)
        }
        Err(e) if out.pulled > 0 => Err(Error::AfterCommit {
            committed: format!(
                "this pull committed {} event(s) from the remote, through event {}",
                out.pulled, out.head.seq
            ),
            source: Box::new(e),
        }),
        Err(e) => Err(e),
    }
}

/// One batch of the remote's entries: fetched, vetted, their objects fetched and
/// re-hashed, then integrated in one transaction.
fn take_batch(
    home: &mut Home,
    remote: &Remote,
    keys: &[KeyInfo],
    base: &Head,
    reason: &str,
    progress: &ProgressBar,
) -> Result<(Vec<JournalRow>, Integrated, u64, u64)> {
    let rows = remote.entries(keys, base)?;
    let (objects, bytes) = fetch_objects(home, remote, &rows, progress)?;
    let synced = home.store.sync()?;
    let done = home
        .ledger
        .integrate(synced, &remote.row.name, base, &rows, reason)?;
    Ok((rows, done, objects, bytes))
}

/// Before anything is taken: a checkpoint the remote published of its whole journal
/// must carry the witnesses' cosignatures the policy asks for, and be of exactly the
/// journal this pull would take: its size the remote's head, its origin this log's, its
/// root the root of the local events through `base` followed by the remote's (fetched
/// and chain-checked here). The witnesses cosigned that (origin, size, root) only after
/// checking the log's signature and consistency with what they saw: so what is taken is
/// what a quorum of them saw.
fn require_quorum(
    home: &Home,
    remote: &Remote,
    keys: &[KeyInfo],
    base: &Head,
    q: Quorum<'_>,
) -> Result<()> {
    let rows = remote.entries(keys, base)?;
    let head = base.seq + rows.len() as u64;
    let mut leaves = crate::tlog::leaves(&home.ledger, base.seq)?;
    for r in &rows {
        let mut h = [0u8; 32];
        hex::decode_to_slice(&r.hash, &mut h).map_err(|_| Error::Integrity {
            message: format!(
                "remote {}: event {} has a damaged hash",
                remote.url(),
                r.seq
            ),
        })?;
        leaves.push(crate::sign::merkle::leaf_hash(&h));
    }
    let root = crate::sign::merkle::root(&leaves);
    let first = match home.ledger.row_at(1)? {
        Some(r) => r.hash,
        None => rows.first().map(|r| r.hash.clone()).unwrap_or_default(),
    };
    let origin = crate::tlog::origin_of(&first);
    let mut why = Vec::new();
    for k in remote.s3.list("checkpoints", None)? {
        if parse_checkpoint_key(&k.key).is_none_or(|(size, _)| size != head) {
            continue;
        }
        let Some(b) = remote.get_listed_if_there(&k, super::MAX_CHECKPOINT_BYTES)? else {
            continue;
        };
        let text = String::from_utf8_lossy(&b).into_owned();
        let Ok(note) = crate::sign::note::SignedNote::parse(&text) else {
            why.push(format!("{}: not a signed note", k.key));
            continue;
        };
        let cp = &note.checkpoint;
        if cp.size != head || cp.origin != origin || cp.root != root {
            why.push(format!(
                "{}: a checkpoint of another tree (size {}, origin {}), not of the {head} events this pull would take",
                k.key,
                cp.size,
                crate::commands::text::shown(&cp.origin)
            ));
            continue;
        }
        let problems = q(&text)?;
        if problems.is_empty() {
            return Ok(());
        }
        why.push(format!("{}: {}", k.key, problems.join("; ")));
    }
    if why.is_empty() {
        why.push("it publishes no checkpoint of that size".into());
    }
    Err(Error::Integrity {
        message: format!(
            "remote {}: no checkpoint of its journal at size {head} carries the witnesses' cosignatures asked for ({}); nothing was taken from the remote",
            remote.url(),
            why.join("; ")
        ),
    })
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
/// keeps them. A note signed by a recorded key that commits to other events is refused
/// (the log showed someone another history); anything else under `checkpoints/` that is
/// not such a note vouches for nothing and is passed over, named in the second list.
fn take_checkpoints(home: &Home, remote: &Remote) -> Result<(Vec<u64>, Vec<String>)> {
    let name = &remote.row.name;
    let mut taken = Vec::new();
    let mut ignored = Vec::new();
    // Read the journal's leaves once, and only when there is a new note to check.
    let mut checker = None;
    let keys = match super::list_checkpoints(remote) {
        Ok(k) => k,
        Err(why) => {
            ignored.push(why);
            return Ok((taken, ignored));
        }
    };
    for k in keys {
        let Some((size, keyid16)) = parse_checkpoint_key(&k.key) else {
            ignored.push(format!("{}: not a checkpoint's name", k.key));
            continue;
        };
        if size > remote.row.synced.seq
            || home.ledger.has_remote_checkpoint(name, size, &keyid16)?
        {
            continue;
        }
        let text = match remote.get_listed_if_there(&k, super::MAX_CHECKPOINT_BYTES) {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(None) => continue,
            Err(Error::Integrity { message }) => {
                ignored.push(message);
                continue;
            }
            Err(e) => return Err(e),
        };
        let checker = match &mut checker {
            Some(c) => c,
            None => checker.insert(crate::tlog::NoteChecker::new(&home.ledger)?),
        };
        let c = match checker.check(&text) {
            Err(e) => {
                ignored.push(format!("{}: not a signed note: {e}", k.key));
                continue;
            }
            Ok(c) => c,
        };
        if c.contradicts {
            let before = match home.ledger.latest_remote_checkpoint(name)? {
                Some(s) => format!(" (this host saw its checkpoint of size {} before)", s.size),
                None => String::new(),
            };
            return Err(Error::Integrity {
                message: format!("remote {}: {} is signed by key {}, yet {}{before}; the checkpoint of size {} is not consistent with the remote's journal", remote.url(), k.key, &c.keyid.unwrap_or_default()[..16], c.problems.join("; "), c.size),
            });
        }
        let keyid = match (c.problems.first(), c.keyid) {
            (None, Some(keyid)) if c.size == size => keyid,
            (None, Some(_)) => {
                ignored.push(format!("{}: holds a checkpoint of size {}", k.key, c.size));
                continue;
            }
            (p, _) => {
                ignored.push(format!("{}: {}", k.key, p.cloned().unwrap_or_default()));
                continue;
            }
        };
        let row = crate::ledger::tlog::CheckpointRow {
            size,
            keyid,
            root: c.root,
            note: text,
            time: crate::ledger::now(),
        };
        home.ledger.save_remote_checkpoint(name, &row)?;
        taken.push(size);
    }
    Ok((taken, ignored))
}

/// Remote events taken per transaction when nothing local has to move:
/// `CTO_LEDGER_TEST_PULL_BATCH`, else 1,000.
fn pull_batch() -> usize {
    crate::env::test_number::<usize>("CTO_LEDGER_TEST_PULL_BATCH")
        .filter(|&n| n > 0)
        .unwrap_or(1000)
}

/// Copies into the local store every object the events name that it lacks, after
/// vetting what each event claims about objects ([`Vetting`]): each object is read only
/// as far as its recorded size and re-hashed against its id, SHA-256 and size, and each
/// tree must decode, its entries recorded objects, before any of it is committed.
fn fetch_objects(
    home: &Home,
    remote: &Remote,
    rows: &[JournalRow],
    progress: &ProgressBar,
) -> Result<(u64, u64)> {
    let mut vetting = Vetting::after(&home.ledger);
    let mut want = std::collections::BTreeMap::new();
    for row in rows {
        let e: Event = serde_json::from_str(&row.event).expect("checked by decode");
        if let Some(p) = vetting.event(&e)?.into_iter().next() {
            return Err(refused(remote, row.seq as u64, p));
        }
        for o in e.body.objects() {
            want.entry(o.id).or_insert((*o, row.seq as u64));
        }
    }
    // Objects this ledger records were checked when it first took them; any other
    // object is checked here, even one already in the store (left by a pull that was
    // refused): its bytes must be what this event records.
    let mut missing = Vec::new();
    let mut unrecorded = Vec::new();
    for (o, seq) in want.into_values() {
        if home.ledger.object(&o.id)?.is_some() {
            continue;
        }
        // Marked as relied on: `gc` keeps it while this pull commits the event naming it.
        match home.store.has_fresh(&o.id)? {
            true => unrecorded.push((o, seq)),
            false => missing.push((o, seq)),
        }
    }
    progress.set_length(missing.iter().map(|(o, _)| o.size).sum());
    let local = &home.store;
    let trees = std::sync::Mutex::new(Vec::new());
    for (o, seq) in &unrecorded {
        let mut buf = Vec::new();
        let sink: &mut dyn Write = match o.kind {
            ObjKind::Tree => &mut buf,
            ObjKind::Blob => &mut std::io::sink(),
        };
        if let Err(e) = local.copy_recorded(&o.meta(), sink) {
            let why = format!(
                "records object {}, but the copy this store already holds is not that object: {e}",
                o.id
            );
            return Err(refused(remote, *seq, why));
        }
        if o.kind == ObjKind::Tree {
            trees
                .lock()
                .expect("not poisoned")
                .push((*o, *seq, buf, false));
        }
    }
    let ids: Vec<crate::id::ObjectId> = missing.iter().map(|(o, _)| o.id).collect();
    remote.store.backend().prefetch(&ids)?;
    let bytes = transfer_all(&missing, |(o, seq)| {
        if o.kind == ObjKind::Tree {
            let mut buf = Vec::new();
            fetch_one(remote, o, *seq, &mut buf)?;
            trees
                .lock()
                .expect("not poisoned")
                .push((*o, *seq, buf, true));
        } else {
            let mut staged = local.backend().stage_for(&o.id)?;
            fetch_one(remote, o, *seq, &mut staged)?;
            staged.commit(&o.id)?;
        }
        progress.inc(o.size);
        Ok(Some(o.size))
    })?;
    for (o, seq, buf, fetched) in trees.into_inner().expect("not poisoned") {
        let problem = match Tree::decode(&buf) {
            Ok(t) => vetting
                .tree(&t)?
                .into_iter()
                .next()
                .map(|p| format!("whose {p}")),
            Err(why) => Some(format!("but its bytes are not a tree: {why}")),
        };
        if let Some(p) = problem {
            return Err(refused(remote, seq, format!("records tree {}, {p}", o.id)));
        }
        if fetched {
            let mut staged = local.backend().stage_for(&o.id)?;
            staged
                .write_all(&buf)
                .map_err(Error::io("write object", o.id.to_string()))?;
            staged.commit(&o.id)?;
        }
    }
    Ok((missing.len() as u64, bytes))
}

/// Copies one object the remote should hold into `sink`, as `copy_recorded` checks it.
fn fetch_one(remote: &Remote, o: &ObjRec, seq: u64, sink: &mut dyn Write) -> Result<()> {
    let key = remote.store.backend().locate(&o.id);
    match remote.store.copy_recorded(&o.meta(), sink) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(refused(remote, seq, format!("records object {} but the remote has no {key}", o.id))),
        Err(Error::Integrity { message }) => Err(refused(
            remote,
            seq,
            format!("records object {}, but the remote's {key} was modified behind the ledger's back: {message}", o.id),
        )),
        Err(e) => Err(e),
    }
}

/// The integrity failure that refuses event `seq` of the remote.
fn refused(remote: &Remote, seq: u64, problem: String) -> Error {
    Error::Integrity {
        message: format!(
            "remote {}: {} (event {seq}) {problem}; refused, nothing of that batch was taken from the remote",
            remote.url(),
            super::journal_key(seq)
        ),
    }
}
