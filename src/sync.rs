//! One ledger for many hosts, on S3-compatible object storage.
//!
//! The remote holds objects by id (`objects/..`) and the journal as one key per event
//! (`journal/<seq, 20 digits>`). An event is published only by a create-only write
//! (`If-None-Match: *`): whoever writes `journal/<n>` first owns sequence number `n`, and
//! everyone else pulls it and re-appends their own events after it. Objects go up before
//! the events that name them, and every object or event that comes down is re-hashed
//! before it is trusted. Each host's SQLite is a replica that `pull` brings up to date.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use indicatif::ProgressBar;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audit::{rehash, Expected, Finding};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::events::Event;
use crate::ledger::replica::RemoteRow;
use crate::ledger::{check_row, ChainCheck, Head, JournalRow};
use crate::state::AuditCheck;
use crate::store::s3::{object_key, RemoteSpec, S3Backend, S3};
use crate::store::Store;

/// Names a remote may have: like git's, short and safe in messages.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(
            format!("remote name `{name}` is not valid"),
            "use letters, digits, `-`, `_` and `.` (e.g. `origin`)",
        ))
    }
}

/// The remote's form of one journal event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    seq: u64,
    prev_hash: String,
    hash: String,
    /// The event's canonical JSON, byte for byte as it was hashed.
    event: String,
}

fn journal_key(seq: u64) -> String {
    format!("journal/{}", seq_name(seq))
}

fn seq_name(seq: u64) -> String {
    format!("{seq:020}")
}

fn encode(row: &JournalRow) -> Vec<u8> {
    serde_jcs::to_vec(&Entry {
        seq: row.seq as u64,
        prev_hash: row.prev_hash.clone(),
        hash: row.hash.clone(),
        event: row.event.clone(),
    })
    .expect("entries serialise")
}

/// Parses and checks one remote entry: its key, its form and its own hash. Chaining to
/// the previous entry is the caller's check.
fn decode(key: &str, bytes: &[u8], url: &str) -> Result<JournalRow> {
    let bad = |why: String| Error::Integrity {
        message: format!("remote {url}: {key} {why}; nothing was taken from the remote"),
    };
    let e: Entry =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("is not a journal entry: {e}")))?;
    if serde_jcs::to_vec(&e).ok().as_deref() != Some(bytes) {
        return Err(bad("is not in canonical form".into()));
    }
    if key != journal_key(e.seq) {
        return Err(bad(format!("holds event {}", e.seq)));
    }
    let is_hash =
        |h: &str| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hash(&e.hash) || !is_hash(&e.prev_hash) {
        return Err(bad(
            "holds a hash that is not 64 lowercase hex digits".into()
        ));
    }
    let event: Event = serde_json::from_str(&e.event)
        .map_err(|err| bad(format!("holds an event that cannot be decoded: {err}")))?;
    let row = JournalRow {
        seq: e.seq as i64,
        kind: event.body.kind().to_string(),
        time: event.time.clone(),
        event: e.event,
        prev_hash: e.prev_hash,
        hash: e.hash,
    };
    let problems = check_row(&row, row.seq, &row.prev_hash);
    if let Some(p) = problems.first() {
        return Err(bad(format!("is damaged: {p}")));
    }
    Ok(row)
}

/// A configured remote, connected.
pub(crate) struct Remote {
    pub row: RemoteRow,
    s3: Arc<S3>,
    store: Store,
}

impl Remote {
    pub(crate) fn connect(row: RemoteRow) -> Result<Remote> {
        let s3 = S3::connect(&spec(&row))?;
        let store = Store::new(Box::new(S3Backend::new(s3.clone())));
        Ok(Remote { row, s3, store })
    }

    fn url(&self) -> &str {
        self.s3.url()
    }

    /// The entries under `keys` (the keys right after event `from`, in order), each
    /// checked, and chained from `from`.
    fn entries(&self, keys: &[crate::store::s3::KeyInfo], from: &Head) -> Result<Vec<JournalRow>> {
        let fetched: Vec<Result<JournalRow>> = transfer_pool()?.install(|| {
            keys.par_iter()
                .map(|k| decode(&k.key, &self.get_listed(&k.key)?, self.url()))
                .collect()
        });
        let mut chain = ChainCheck::after(from);
        let mut out = Vec::with_capacity(fetched.len());
        for r in fetched {
            let row = r?;
            if let Some(problem) = chain.next(&row).into_iter().next() {
                return Err(Error::Integrity {
                    message: format!(
                        "remote {}: {}: {problem}; nothing was taken from the remote",
                        self.url(),
                        journal_key(row.seq as u64)
                    ),
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    /// The bytes of a key that a listing just returned.
    fn get_listed(&self, key: &str) -> Result<Vec<u8>> {
        self.s3.get(key)?.ok_or_else(|| Error::Remote {
            remote: self.url().into(),
            message: format!("{key} was listed but is gone"),
            hint: Some("run the command again".into()),
        })
    }

    fn entry(&self, seq: u64) -> Result<Option<JournalRow>> {
        let key = journal_key(seq);
        self.s3
            .get(&key)?
            .map(|b| decode(&key, &b, self.url()))
            .transpose()
    }

    /// Where the local journal and the remote's last agree, walking back from the
    /// recorded mark if the remote no longer holds what it once did.
    fn common_base(&self, home: &Home) -> Result<(Head, bool)> {
        let mut mark = self.row.synced.clone();
        let mut replaced = false;
        while mark.seq > 0 {
            if self
                .entry(mark.seq)?
                .is_some_and(|e| e.has_hash(&mark.hash))
            {
                break;
            }
            replaced = true;
            mark = match home.ledger.row_at(mark.seq - 1)? {
                Some(r) => r.head()?,
                None => Head::EMPTY,
            };
        }
        Ok((mark, replaced))
    }
}

fn spec(row: &RemoteRow) -> RemoteSpec {
    RemoteSpec {
        url: row.url.clone(),
        endpoint: row.endpoint.clone(),
        region: row.region.clone(),
    }
}

/// `remote add`: checks the URL and records it; the remote is not contacted.
pub(crate) fn add(
    home: &mut Home,
    name: &str,
    url: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<RemoteRow> {
    check_name(name)?;
    RemoteSpec::bucket_and_prefix(url)?;
    if let Some(e) = endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::bad_input(
                format!("endpoint `{e}` is not an http:// or https:// URL"),
                "give it as http://HOST:PORT (e.g. a local MinIO or s3s-fs) or https://HOST",
            ));
        }
    }
    home.ledger.remote_add(name, url, endpoint, region)?;
    home.ledger.remote(name)
}

/// The one remote to use when the user named none.
pub(crate) fn pick(home: &Home, name: Option<&str>) -> Result<RemoteRow> {
    if let Some(n) = name {
        return home.ledger.remote(n);
    }
    let mut all = home.ledger.remotes()?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(Error::bad_input(
            "no remote is configured",
            "add one with `cto-ledger remote add NAME s3://BUCKET/PREFIX [--endpoint URL]`",
        )),
        _ => Err(Error::bad_input(
            format!(
                "{} remotes are configured ({}); say which",
                all.len(),
                all.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "name the remote, e.g. `cto-ledger push origin`",
        )),
    }
}

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

fn checkpoint_key(size: u64, keyid: &str) -> String {
    format!("checkpoints/{}-{}", seq_name(size), &keyid[..16])
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

/// `checkpoints/<size>-<keyid prefix>`.
fn parse_checkpoint_key(key: &str) -> Option<(u64, String)> {
    let (size, keyid) = key.strip_prefix("checkpoints/")?.split_once('-')?;
    Some((size.parse().ok()?, keyid.to_string()))
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

/// This host's signing key for `push`, when it has one recorded here. A key file that
/// cannot be read safely is an error (before anything is published); a key this
/// ledger does not know, or that was retired or revoked, signs nothing.
fn push_signer(home: &Home) -> Result<Option<crate::sign::keys::SecretKey>> {
    let path = crate::sign::keys::key_path()?;
    if !path.exists() {
        return Ok(None);
    }
    let key = crate::sign::keys::load(&path, &home.dir)?;
    let current = crate::tlog::current_key(home, &key, &path).is_ok();
    Ok(current.then_some(key))
}

/// Signs the remote's journal as this host now holds it and publishes the note,
/// unless this key already signed that size there.
fn publish_checkpoint(
    home: &Home,
    remote: &Remote,
    key: &crate::sign::keys::SecretKey,
) -> Result<Option<u64>> {
    let synced = remote.row.synced.seq;
    let keyid = key.public().keyid();
    if synced == 0
        || home
            .ledger
            .has_remote_checkpoint(&remote.row.name, synced, &keyid)?
    {
        return Ok(None);
    }
    let row = crate::tlog::sign_checkpoint(home, key, synced)?;
    remote.s3.put_create(
        &checkpoint_key(synced, &keyid),
        row.note.clone().into_bytes(),
    )?;
    home.ledger.save_remote_checkpoint(&remote.row.name, &row)?;
    Ok(Some(synced))
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

/// Runs `f` over `items` with many transfers in flight; the first error stops the rest
/// (a server that went away fails the command in seconds, not once per object).
/// Returns the bytes moved, summed from `f`'s `Some`.
fn transfer_all<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<Option<u64>> + Sync) -> Result<u64> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let failed = AtomicBool::new(false);
    let bytes = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None);
    transfer_pool()?.install(|| {
        items.par_iter().for_each(|item| {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            match f(item) {
                Ok(n) => {
                    bytes.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
                }
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().expect("not poisoned").get_or_insert(e);
                }
            }
        })
    });
    match first_error.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(bytes.into_inner()),
    }
}

/// Transfers wait on the network, not the CPU: more of them in flight than cores.
fn transfer_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(8)
        .build()
        .map_err(|e| Error::Remote {
            remote: String::new(),
            message: format!("cannot start transfer threads: {e}"),
            hint: None,
        })
}

#[derive(Debug, Serialize)]
pub(crate) struct PushOut {
    pub remote: String,
    pub url: String,
    pub published: u64,
    pub objects_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Times another host took the next sequence number first (we pulled and went again).
    pub conflicts: u64,
    /// Of those, how many the server itself refused (`If-None-Match: *` answered 412).
    pub creates_refused: u64,
    pub pulled: u64,
    pub moved: Vec<(u64, u64)>,
    pub head: Head,
    /// The tree size of the signed checkpoint this push published, if it signed one.
    pub checkpoint: Option<u64>,
}

/// How many times another host may win the race for the next sequence number before
/// push gives up (each loss pulls the winner's events first).
const MAX_ROUNDS: u32 = 200;

/// Publishes the local events the remote lacks, after every object they name.
pub(crate) fn push(home: &mut Home, remote: &mut Remote) -> Result<PushOut> {
    let mut out = PushOut {
        remote: remote.row.name.clone(),
        url: remote.row.url.clone(),
        published: 0,
        objects_uploaded: 0,
        bytes_uploaded: 0,
        conflicts: 0,
        creates_refused: 0,
        pulled: 0,
        moved: Vec::new(),
        head: home.ledger.head()?,
        checkpoint: None,
    };
    let signer = push_signer(home)?;
    for round in 0..MAX_ROUNDS {
        let p = pull(home, remote)?;
        out.pulled += p.pulled;
        out.moved.extend(p.moved);
        let synced = remote.row.synced.clone();
        let pending = home.ledger.rows_after(synced.seq)?;
        if pending.is_empty() {
            out.head = home.ledger.head()?;
            if let Some(k) = &signer {
                out.checkpoint = publish_checkpoint(home, remote, k)?;
            }
            return Ok(out);
        }
        let (n, bytes) = upload_objects(home, remote, synced.seq)?;
        out.objects_uploaded += n;
        out.bytes_uploaded += bytes;
        let mut lost = false;
        for row in &pending {
            let key = journal_key(row.seq as u64);
            let entry = encode(row);
            let created = remote.s3.put_create(&key, entry.clone())?;
            // Read back even on success: a server whose create-only check is not atomic
            // can let two writers both "create" the same key; the later rename wins.
            // (An existing key holding exactly our entry is our own earlier attempt.)
            let there = remote.s3.get(&key)?;
            if there.as_deref() != Some(&entry[..]) {
                if !created {
                    out.creates_refused += 1;
                }
                lost = true;
                break;
            }
            let head = row.head()?;
            if !home.ledger.set_synced(&remote.row.name, &head)? {
                // Another command moved the local journal meanwhile; start over.
                lost = true;
                break;
            }
            remote.row.synced = head;
            out.published += 1;
        }
        if !lost {
            out.head = home.ledger.head()?;
            if let Some(k) = &signer {
                out.checkpoint = publish_checkpoint(home, remote, k)?;
            }
            return Ok(out);
        }
        out.conflicts += 1;
        // Let the winner finish its run of events before racing again.
        std::thread::sleep(std::time::Duration::from_millis(
            5 + (round as u64 * 7 + std::process::id() as u64) % 40,
        ));
    }
    Err(Error::Remote {
        remote: remote.url().into(),
        message: format!(
            "other hosts took every sequence number this push tried, {MAX_ROUNDS} times in a row"
        ),
        hint: Some("run `cto-ledger push` again; the local events are safe".into()),
    })
}

const LIST_OVER: usize = 256;

/// Uploads every object first named by a local event after `after` that the remote lacks.
fn upload_objects(home: &Home, remote: &Remote, after: u64) -> Result<(u64, u64)> {
    let mut ids = home.ledger.objects_named_after(after)?;
    // One LIST page answers for 1,000 objects; past a few hundred, listing beats a HEAD each.
    let listed = ids.len() > LIST_OVER;
    if listed {
        let there: std::collections::HashSet<ObjectId> =
            remote.store.backend().list()?.objects.into_iter().collect();
        ids.retain(|id| !there.contains(id));
    }
    let local = &home.store;
    let uploaded = std::sync::atomic::AtomicU64::new(0);
    let bytes = transfer_all(&ids, |id| {
        if !listed && remote.store.has(id)? {
            return Ok(None);
        }
        let mut staged = remote.store.backend().stage_for(id)?;
        // Re-hashed on the way out: a damaged local copy is never published.
        let m = local.copy_verified(id, &mut staged)?;
        staged.commit(id)?;
        uploaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(m.size))
    })?;
    Ok((uploaded.into_inner(), bytes))
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusOut {
    pub remote: String,
    pub url: String,
    pub endpoint: Option<String>,
    pub synced: Head,
    pub local_head: Head,
    /// `None` when the remote was not contacted (offline).
    pub remote_head: Option<Head>,
    /// Local events the remote lacks.
    pub ahead: u64,
    /// Remote events this ledger lacks (when contacted).
    pub behind: Option<u64>,
    pub error: Option<String>,
}

pub(crate) fn status(home: &Home, row: RemoteRow, contact: bool) -> Result<StatusOut> {
    let local_head = home.ledger.head()?;
    let mut out = StatusOut {
        remote: row.name.clone(),
        url: row.url.clone(),
        endpoint: row.endpoint.clone(),
        synced: row.synced.clone(),
        ahead: local_head.seq - row.synced.seq,
        local_head,
        remote_head: None,
        behind: None,
        error: None,
    };
    if !contact {
        return Ok(out);
    }
    let found = Remote::connect(row).and_then(|r| {
        let keys = r.s3.list("journal", Some(&seq_name(r.row.synced.seq)))?;
        let head = match keys.last() {
            Some(k) => decode(&k.key, &r.get_listed(&k.key)?, r.url())?.head()?,
            None => r.row.synced.clone(),
        };
        Ok((head, keys.len() as u64))
    });
    match found {
        Ok((head, behind)) => {
            out.remote_head = Some(head);
            out.behind = Some(behind);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    Ok(out)
}

#[derive(Debug, Serialize, Default)]
pub(crate) struct RemoteAuditOut {
    pub ok: bool,
    pub remote: String,
    pub url: String,
    pub events: u64,
    pub head: Option<Head>,
    pub objects_named: u64,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub full: bool,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// About how many objects `audit --remote` re-hashes without `--full`: every k-th in id
/// order (ids are hashes, so that is a spread over everything) from a random start, so
/// that no object is left out of every audit.
const SAMPLE: usize = 256;

/// Checks the remote on its own terms: one unbroken chain from the first event, every
/// object it names present, and (a sample of, or with `full` every) object re-hashed.
pub(crate) fn audit(home: &Home, remote: &Remote, full: bool) -> Result<RemoteAuditOut> {
    let mut out = RemoteAuditOut {
        remote: remote.row.name.clone(),
        url: remote.row.url.clone(),
        full,
        ..Default::default()
    };
    let named = audit_chain(remote, &mut out)?;
    audit_synced(home, remote, &mut out)?;
    audit_objects(remote, &named, &mut out)?;
    out.ok = out.findings.is_empty();
    Ok(out)
}

/// The chain, entry by entry (not stopping at the first problem); returns every object
/// the entries name, with the event that first named it.
fn audit_chain(remote: &Remote, out: &mut RemoteAuditOut) -> Result<BTreeMap<ObjectId, Expected>> {
    let finding = |key: String, m: String| Finding::new(AuditCheck::RemoteJournal, key, m);
    let keys = remote.s3.list("journal", None)?;
    let bodies: Vec<(String, Result<Option<Vec<u8>>>)> = keys
        .par_iter()
        .map(|k| (k.key.clone(), remote.s3.get(&k.key)))
        .collect();
    let mut chain = ChainCheck::new();
    let mut named = BTreeMap::new();
    for (key, bytes) in bodies {
        let row = match bytes?.map(|b| decode(&key, &b, remote.url())) {
            Some(Ok(r)) => r,
            None => {
                out.findings.push(finding(key, "listed but gone".into()));
                chain.skip();
                continue;
            }
            Some(Err(e)) => {
                out.findings.push(finding(key, e.to_string()));
                chain.skip();
                continue;
            }
        };
        for problem in chain.next(&row) {
            out.findings.push(finding(key.clone(), problem));
        }
        let e: Event = serde_json::from_str(&row.event).expect("checked by decode");
        for o in e.body.objects() {
            named.entry(o.id).or_insert(Expected {
                id: o.id,
                sha256: Some(o.sha256),
                size: o.size,
                seq: row.seq as u64,
            });
        }
        out.head = Some(row.head()?);
        out.events += 1;
    }
    Ok(named)
}

/// This host's published events are still the remote's.
fn audit_synced(home: &Home, remote: &Remote, out: &mut RemoteAuditOut) -> Result<()> {
    let synced = &remote.row.synced;
    if synced.seq == 0 {
        return Ok(());
    }
    match home.ledger.row_at(synced.seq)? {
        Some(local) if local.has_hash(&synced.hash) => {}
        _ => out.notes.push(format!("this ledger's record of the remote (event {}) no longer matches its own journal; `cto-ledger pull` re-synchronises", synced.seq)),
    }
    if out.events < synced.seq {
        out.findings.push(Finding::new(
            AuditCheck::RemoteJournal,
            remote.url(),
            format!(
                "ends at event {} but this host saw it reach event {}: the remote lost events",
                out.events, synced.seq
            ),
        ));
    }
    Ok(())
}

/// A start in `0..stride` that differs from one audit to the next.
fn sample_offset(stride: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (blake3::hash(&nanos.to_le_bytes()).as_bytes()[0] as usize + std::process::id() as usize)
        % stride
}

/// Every named object is there; re-hash all of them (`full`) or a sample.
fn audit_objects(
    remote: &Remote,
    named: &BTreeMap<ObjectId, Expected>,
    out: &mut RemoteAuditOut,
) -> Result<()> {
    let listing = remote.store.backend().list()?;
    let present: BTreeSet<ObjectId> = listing.objects.iter().copied().collect();
    for (name, why) in listing.anomalies {
        out.findings
            .push(Finding::new(AuditCheck::RemoteStore, name, why));
    }
    out.objects_named = named.len() as u64;
    let stride = (named.len() / SAMPLE).max(1);
    let offset = sample_offset(stride);
    let mut to_check = Vec::new();
    for (i, (id, o)) in named.iter().enumerate() {
        if !present.contains(id) {
            out.findings.push(Finding::new(
                AuditCheck::RemoteObject,
                object_key(id),
                format!("named by event {} but missing from the remote", o.seq),
            ));
        } else if full_or_sampled(out.full, named.len(), i, stride, offset) {
            to_check.push(*o);
        }
    }
    let pool = transfer_pool()?;
    let found = pool.install(|| {
        rehash(
            &remote.store,
            &to_check,
            AuditCheck::RemoteObject,
            object_key,
            &ProgressBar::hidden(),
        )
    });
    out.findings.extend(found);
    out.objects_checked = to_check.len() as u64;
    out.bytes_checked = to_check.iter().map(|o| o.size).sum();
    if !out.full && to_check.len() < named.len() {
        out.notes.push(format!(
            "re-hashed a sample of {} of {} objects; `--full` re-hashes every one",
            to_check.len(),
            named.len()
        ));
    }
    let stray = present.iter().filter(|id| !named.contains_key(id)).count();
    if stray > 0 {
        out.notes.push(format!("{stray} object(s) on the remote are named by no event (uploaded by a push that stopped before publishing); harmless, the next push publishes them"));
    }
    Ok(())
}

fn full_or_sampled(full: bool, n: usize, i: usize, stride: usize, offset: usize) -> bool {
    full || n <= SAMPLE || i % stride == offset
}
