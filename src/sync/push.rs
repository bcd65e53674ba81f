//! `push`: local events the remote lacks, published after every object they name, each
//! by a create-only write; a host that loses the race pulls and goes again.

use serde::Serialize;

use super::{checkpoint_key, encode, journal_key, pull, transfer_all, Remote};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ObjectId;
use crate::ledger::Head;

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
    let mut row = crate::tlog::sign_checkpoint(home, key, synced)?;
    // The witnesses recorded for this log cosign what is published (those that refuse
    // or cannot be reached are left out; `checkpoint --sign` names them).
    let asking = crate::witness::client::Asking::recorded(home)?;
    crate::witness::client::cosign_kept(home, &mut row, &asking)?;
    remote.s3.put_create(
        &checkpoint_key(synced, &keyid),
        row.note.clone().into_bytes(),
    )?;
    publish_tiles(home, remote, &row)?;
    home.ledger.save_remote_checkpoint(&remote.row.name, &row)?;
    Ok(Some(synced))
}

/// The remote as a C2SP tlog-tiles log under its prefix: the tiles and entry bundles the
/// last published checkpoint did not already have whole (each path names fixed bytes, so
/// a create-only write that finds one there is done), then `checkpoint`, replaced only by
/// a larger tree. A remote whose tiles were never written (an older cto-ledger pushed)
/// gets all of them.
fn publish_tiles(
    home: &Home,
    remote: &Remote,
    row: &crate::ledger::tlog::CheckpointRow,
) -> Result<()> {
    let seen = home
        .ledger
        .latest_remote_checkpoint(&remote.row.name)?
        .map_or(0, |c| c.size);
    let width = crate::ledger::tiles::WIDTH;
    let last_full = (seen / width).checked_sub(1);
    let from = match last_full {
        Some(n) => {
            let key = format!("tile/0/{}", crate::ledger::tiles::index_path(n));
            if remote.s3.head(&key)?.is_some() {
                seen
            } else {
                0
            }
        }
        None => seen,
    };
    for (path, bytes) in crate::ledger::tiles::tile_files(home.ledger.conn(), from, row.size)? {
        // A path names fixed bytes: what another writer put there is kept only if it is
        // those bytes (a tile planted ahead of the log is replaced).
        if !remote.s3.put_create(&path, bytes.clone())?
            && remote.s3.get_at_most(&path, bytes.len() as u64)?.as_deref() != Some(&bytes[..])
        {
            remote.s3.put_replace(&path, bytes)?;
        }
    }
    // `checkpoint` stays only if it is a larger tree of this very journal.
    let head = home.ledger.head()?.seq;
    let origin = crate::tlog::origin(&home.ledger)?;
    let larger = remote
        .s3
        .get_at_most("checkpoint", super::MAX_CHECKPOINT_BYTES)?
        .and_then(|b| crate::sign::note::SignedNote::parse(&String::from_utf8_lossy(&b)).ok())
        .map(|n| n.checkpoint)
        .filter(|c| c.size > row.size && c.size <= head && c.origin == origin)
        .is_some_and(|c| crate::tlog::root_of(&home.ledger, c.size).is_ok_and(|r| r == c.root));
    if !larger {
        remote
            .s3
            .put_replace("checkpoint", row.note.clone().into_bytes())?;
    }
    Ok(())
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
    /// How what the remote requires changed, as its pulls read it (see `PullOut`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requirement_changes: Vec<String>,
}

/// How many times another host may win the race for the next sequence number before
/// push gives up (each loss pulls the winner's events first).
const MAX_ROUNDS: u32 = 200;

/// Publishes the local events the remote lacks, after every object they name.
pub(crate) fn push(
    home: &mut Home,
    remote: &mut Remote,
    progress: &indicatif::ProgressBar,
) -> Result<PushOut> {
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
        requirement_changes: Vec::new(),
    };
    let signer = push_signer(home)?;
    for round in 0..MAX_ROUNDS {
        let p = pull(home, remote, progress, None)?;
        out.pulled += p.pulled;
        out.moved.extend(p.moved);
        out.requirement_changes.extend(p.requirement_changes);
        super::policies::check_push(home, remote)?;
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
            let there = remote.s3.get_at_most(&key, entry.len() as u64)?;
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
    // Small objects go up many to a PUT, as packs; the rest one key each.
    let mut small = Vec::new();
    let mut large = Vec::new();
    for id in ids {
        match home.ledger.object(&id)? {
            Some(o) if (o.size as usize) < crate::store::pack::SMALL_MAX => small.push(id),
            o => large.push((id, o)),
        }
    }
    let mut packed = Vec::with_capacity(small.len());
    let mut packed_bytes = 0u64;
    for id in small {
        if !listed && remote.store.has(&id)? {
            continue;
        }
        // Re-hashed on the way out: a damaged local copy is never published.
        let b = local.get_verified(&id)?;
        packed_bytes += b.len() as u64;
        packed.push((id, b));
    }
    if !packed.is_empty() {
        remote.store.backend().put_packed(&packed)?;
    }
    let ids = large;
    let uploaded = std::sync::atomic::AtomicU64::new(packed.len() as u64);
    let bytes = packed_bytes
        + transfer_all(&ids, |(id, recorded)| {
            if !listed && remote.store.has(id)? {
                return Ok(None);
            }
            // Re-hashed on the way out: a damaged local copy is never published.
            let size = match upload_loose_file(local, remote, id, recorded.as_ref())? {
                Some(n) => n,
                None => {
                    let mut staged = remote.store.backend().stage_for(id)?;
                    let m = local.copy_verified(id, &mut staged)?;
                    staged.commit(id)?;
                    m.size
                }
            };
            uploaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(size))
        })?;
    Ok((uploaded.into_inner(), bytes))
}

/// A large object the local store keeps as a file of its own goes up straight from that
/// file, in parts, after its bytes re-hash to its id and recorded SHA-256 (no staging
/// copy). `None` when there is no such file, to copy it as any other object.
fn upload_loose_file(
    store: &crate::store::Store,
    remote: &Remote,
    id: &ObjectId,
    recorded: Option<&crate::ledger::ObjectRow>,
) -> Result<Option<u64>> {
    let Some(local) = store.backend().local() else {
        return Ok(None);
    };
    let path = local.path_of(id);
    let Ok(mut file) = crate::store::open_regular(&path) else {
        return Ok(None);
    };
    let m = crate::store::hash_file(&path)?;
    if m.id != *id || recorded.is_some_and(|r| r.sha256 != m.sha256 || r.size != m.size) {
        return Err(Error::Integrity {
            message: format!(
                "object {id} is corrupt: {} hashes to {}; nothing of it was published",
                path.display(),
                m.id
            ),
        });
    }
    remote
        .s3
        .put_file_multipart(&crate::store::s3::object_key(id), &mut file)?;
    Ok(Some(m.size))
}
