//! `audit --remote`: the remote checked on its own terms: one unbroken chain, every
//! object it names present, and a sample (or with `--full`, every one) re-hashed.

use std::collections::{BTreeMap, BTreeSet};

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use super::{batch_len, decode, transfer_pool, Remote, MAX_ENTRY_BYTES};
use crate::audit::{rehash, Expected, Finding, Records};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::events::Event;
use crate::ledger::vet::Vetting;
use crate::ledger::{ChainCheck, Head};
use crate::state::AuditCheck;
use crate::store::s3::object_key;

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
    audit_checkpoints(home, remote, &mut out)?;
    out.ok = out.findings.is_empty();
    Ok(out)
}

/// The chain, entry by entry (not stopping at the first problem), each event vetted
/// against the records before it; returns every object the entries record.
fn audit_chain(remote: &Remote, out: &mut RemoteAuditOut) -> Result<Records> {
    let finding = |key: &str, m: String| Finding::new(AuditCheck::RemoteJournal, key, m);
    let keys = remote.s3.list("journal", None)?;
    let mut chain = ChainCheck::new();
    let mut vetting = Vetting::from_start();
    let mut named = Records::new();
    let mut rest = &keys[..];
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(batch_len(rest, usize::MAX));
        rest = tail;
        let bodies: Vec<Result<Option<Vec<u8>>>> = transfer_pool()?.install(|| {
            batch
                .par_iter()
                .map(|k| remote.get_listed_if_there(k, MAX_ENTRY_BYTES))
                .collect()
        });
        for (k, bytes) in batch.iter().zip(bodies) {
            let row = match bytes.map(|b| b.map(|b| decode(&k.key, &b, remote.url()))) {
                Ok(Some(Ok(r))) => r,
                Ok(None) => {
                    out.findings.push(finding(&k.key, "listed but gone".into()));
                    chain.skip();
                    continue;
                }
                Ok(Some(Err(e))) | Err(e @ Error::Integrity { .. }) => {
                    out.findings.push(finding(&k.key, e.to_string()));
                    chain.skip();
                    continue;
                }
                Err(e) => return Err(e),
            };
            for problem in chain.next(&row) {
                out.findings.push(finding(&k.key, problem));
            }
            let e: Event = serde_json::from_str(&row.event).expect("checked by decode");
            for problem in vetting.event(&e)? {
                out.findings.push(finding(&k.key, problem));
            }
            for o in e.body.objects() {
                named.entry(o.id).or_insert(Expected {
                    id: o.id,
                    sha256: Some(o.sha256),
                    size: o.size,
                    kind: o.kind,
                    seq: row.seq as u64,
                });
            }
            out.head = Some(row.head()?);
            out.events += 1;
        }
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

/// Every key under `checkpoints/` is a note signed by a key this ledger records, of the
/// size its name gives, committing to the journal this host pulled from the remote.
/// (`push` and `pull` pass over the others: only this audit names them.)
fn audit_checkpoints(home: &Home, remote: &Remote, out: &mut RemoteAuditOut) -> Result<()> {
    let finding = |key: &str, m: String| Finding::new(AuditCheck::RemoteCheckpoint, key, m);
    let checker = crate::tlog::NoteChecker::new(&home.ledger)?;
    let mut later = 0;
    let keys = match super::list_checkpoints(remote) {
        Ok(k) => k,
        Err(why) => {
            out.findings.push(finding("checkpoints/", why));
            return Ok(());
        }
    };
    for k in keys {
        let Some((size, _)) = super::parse_checkpoint_key(&k.key) else {
            out.findings.push(finding(
                &k.key,
                "is not named checkpoints/<size>-<key id>".into(),
            ));
            continue;
        };
        if size > remote.row.synced.seq {
            later += 1;
            continue;
        }
        let text = match remote.get_listed_if_there(&k, super::MAX_CHECKPOINT_BYTES) {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(None) => continue,
            Err(e @ Error::Integrity { .. }) => {
                out.findings.push(finding(&k.key, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        match checker.check(&text) {
            Err(e) => out
                .findings
                .push(finding(&k.key, format!("is not a signed note: {e}"))),
            Ok(c) if c.size != size => out.findings.push(finding(
                &k.key,
                format!("holds a checkpoint of size {}", c.size),
            )),
            Ok(c) => out
                .findings
                .extend(c.problems.into_iter().map(|p| finding(&k.key, p))),
        }
    }
    if later > 0 {
        out.notes.push(format!("{later} checkpoint(s) cover events this host has not pulled; `cto-ledger pull` checks them"));
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
fn audit_objects(remote: &Remote, named: &Records, out: &mut RemoteAuditOut) -> Result<()> {
    let listing = remote.store.backend().list()?;
    let present: BTreeSet<ObjectId> = listing.objects.iter().copied().collect();
    for (name, why) in listing.anomalies {
        out.findings
            .push(Finding::new(AuditCheck::RemoteStore, name, why));
    }
    if out.full {
        for (at, why) in remote.store.backend().damaged_copies()? {
            out.findings
                .push(Finding::new(AuditCheck::RemoteStore, at, why));
        }
    }
    out.objects_named = named.len() as u64;
    let stride = (named.len() / SAMPLE).max(1);
    let offset = sample_offset(stride);
    let mut to_check = Vec::new();
    let by_id: BTreeMap<&ObjectId, &Expected> = named.iter().collect();
    for (i, (id, o)) in by_id.into_iter().enumerate() {
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
            named,
            AuditCheck::RemoteObject,
            |id| remote.store.backend().locate(id),
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
