//! One ledger for many hosts, on S3-compatible object storage.
//!
//! The remote holds objects by id (`objects/..`) and the journal as one key per event
//! (`journal/<seq, 20 digits>`). An event is published only by a create-only write
//! (`If-None-Match: *`): whoever writes `journal/<n>` first owns sequence number `n`, and
//! everyone else pulls it and re-appends their own events after it. Objects go up before
//! the events that name them, and every object or event that comes down is re-hashed
//! before it is trusted. Each host's SQLite is a replica that `pull` brings up to date.

mod audit;
mod config;
mod policies;
mod pull;
mod push;

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::ledger::events::Event;
use crate::ledger::replica::RemoteRow;
use crate::ledger::{check_row, ChainCheck, Head, JournalRow};
use crate::store::s3::{KeyInfo, RemoteSpec, S3Backend, S3};
use crate::store::Store;

pub(crate) use audit::{audit, RemoteAuditOut};
pub(crate) use config::{add, pick, statuses, StatusOut};
pub(crate) use policies::{require, RemotePolicies};
pub(crate) use pull::{pull, PullOut, Quorum};
pub(crate) use push::{push, PushOut};

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

/// The most bytes one journal entry may hold: the event's canonical JSON (at most
/// [`MAX_EVENT_BYTES`](crate::ledger::MAX_EVENT_BYTES)) escaped as a JSON string, which at
/// worst doubles it, and the entry's own fields. A remote key longer than this is refused
/// before it is read.
pub(crate) const MAX_ENTRY_BYTES: u64 = 2 * crate::ledger::MAX_EVENT_BYTES + 4096;

/// The most bytes a published checkpoint note may hold (a note with a few signatures
/// is under 1 KiB).
pub(crate) const MAX_CHECKPOINT_BYTES: u64 = 64 << 10;

/// Entries fetched into memory at once while pulling, by their listed sizes: a long or
/// large journal is taken in batches of at most this much (and at least one entry).
const BATCH_BYTES: u64 = 64 << 20;

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
    pub(super) s3: Arc<S3>,
    pub(super) store: Store,
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
    fn entries(&self, keys: &[KeyInfo], from: &Head) -> Result<Vec<JournalRow>> {
        let fetched: Vec<Result<JournalRow>> = transfer_pool()?.install(|| {
            keys.par_iter()
                .map(|k| decode(&k.key, &self.get_listed(k, MAX_ENTRY_BYTES)?, self.url()))
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

    /// The bytes of a key that a listing just returned, read only as far as its listed
    /// size (and at most `max`): a key larger than either is refused unread.
    fn get_listed(&self, k: &KeyInfo, max: u64) -> Result<Vec<u8>> {
        self.get_listed_if_there(k, max)?
            .ok_or_else(|| Error::Remote {
                remote: self.url().into(),
                message: format!("{} was listed but is gone", k.key),
                hint: Some("run the command again".into()),
            })
    }

    /// As [`Remote::get_listed`], with `Ok(None)` when the key is gone.
    fn get_listed_if_there(&self, k: &KeyInfo, max: u64) -> Result<Option<Vec<u8>>> {
        let too_big = |size: String| {
            Error::Integrity {
            message: format!(
                "remote {}: {} holds {size}, more than the {max} a key there may hold; nothing was taken from the remote",
                self.url(),
                k.key
            ),
        }
        };
        if k.size > max {
            return Err(too_big(format!("{} bytes", k.size)));
        }
        let Some(bytes) = self.s3.get_at_most(&k.key, k.size)? else {
            return Ok(None);
        };
        if bytes.len() as u64 > k.size {
            return Err(too_big(format!(
                "more than the {} bytes its listing gives",
                k.size
            )));
        }
        Ok(Some(bytes))
    }

    fn entry(&self, seq: u64) -> Result<Option<JournalRow>> {
        let key = journal_key(seq);
        let Some(bytes) = self.s3.get_at_most(&key, MAX_ENTRY_BYTES)? else {
            return Ok(None);
        };
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(Error::Integrity {
                message: format!("remote {}: {key} holds more than the {MAX_ENTRY_BYTES} bytes a journal entry may; nothing was taken from the remote", self.url()),
            });
        }
        decode(&key, &bytes, self.url()).map(Some)
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

fn checkpoint_key(size: u64, keyid: &str) -> String {
    format!("checkpoints/{}-{}", seq_name(size), &keyid[..16])
}

/// `checkpoints/<size>-<keyid prefix>`.
/// The keys under `checkpoints/`, or why they could not be listed (a key the S3 client
/// cannot even name, such as one holding control characters): checkpoints vouch for the
/// log but are not the log, so a listing that fails blocks neither push nor pull.
fn list_checkpoints(remote: &Remote) -> std::result::Result<Vec<KeyInfo>, String> {
    remote.s3.list("checkpoints", None).map_err(|e| {
        format!("checkpoints/: could not be listed, so no checkpoint was taken from it: {e}")
    })
}

fn parse_checkpoint_key(key: &str) -> Option<(u64, String)> {
    let (size, keyid) = key.strip_prefix("checkpoints/")?.split_once('-')?;
    Some((size.parse().ok()?, keyid.to_string()))
}

/// How many of `keys` (from the first) to take into memory at once: up to `count`, and
/// no more than [`BATCH_BYTES`] by their listed sizes, but always at least one.
fn batch_len(keys: &[KeyInfo], count: usize) -> usize {
    let mut bytes = 0u64;
    let mut n = 0;
    for k in keys.iter().take(count) {
        bytes = bytes.saturating_add(k.size);
        if n > 0 && bytes > BATCH_BYTES {
            break;
        }
        n += 1;
    }
    n
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
