//! The stat cache: files (and directories) an ingest may skip re-reading because their
//! stat is what it was when their digests were recorded, as git's index trusts it.

use super::Ledger;
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};
use crate::store::tree::StatKey;
use rusqlite::OptionalExtension;

/// The stat cache loaded for one ingest: rows under a path prefix, trusted only when
/// the file's mtime is at least 2 s older than the moment the row was recorded
/// (a file changed within the same tick could otherwise keep a stale entry).
pub struct LoadedStatCache {
    rows: PathIndex<(StatKey, ObjectMeta, i64)>,
    trees: PathIndex<([u8; 32], ObjectMeta)>,
}

/// Paths kept in one buffer and found through their hashes, sorted, with a table of where
/// each run of leading hash bits starts: loading and dropping the cache of a 17,000-file
/// tree costs a few allocations, not one per file, and a lookup touches one short run.
struct PathIndex<V> {
    bytes: Vec<u8>,
    /// (hash of the path, start in `bytes`, length, value), sorted by hash once loaded.
    entries: Vec<(u64, usize, usize, V)>,
    /// `starts[b]..starts[b + 1]` are the entries whose hash has leading bits `b`.
    starts: Vec<usize>,
    bits: u32,
}

impl<V> PathIndex<V> {
    fn new() -> Self {
        PathIndex {
            bytes: Vec::new(),
            entries: Vec::new(),
            starts: vec![0, 0],
            bits: 0,
        }
    }

    fn hash(path: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        h.write(path);
        h.finish()
    }

    fn bucket(&self, h: u64) -> usize {
        h.checked_shr(64 - self.bits).unwrap_or(0) as usize
    }

    fn push(&mut self, path: &[u8], v: V) {
        self.entries
            .push((Self::hash(path), self.bytes.len(), path.len(), v));
        self.bytes.extend_from_slice(path);
    }

    fn sorted(mut self) -> Self {
        self.entries.sort_unstable_by_key(|e| e.0);
        self.bits = self
            .entries
            .len()
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        let mut starts = vec![0; (1 << self.bits) + 1];
        for e in &self.entries {
            starts[self.bucket(e.0) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        self.starts = starts;
        self
    }

    fn get(&self, path: &[u8]) -> Option<&V> {
        let h = Self::hash(path);
        let b = self.bucket(h);
        self.entries[self.starts[b]..self.starts[b + 1]]
            .iter()
            .find(|e| e.0 == h && &self.bytes[e.1..e.1 + e.2] == path)
            .map(|e| &e.3)
    }
}

const RACY_NS: i64 = 2_000_000_000;

/// Column `i` as bytes borrowed from SQLite's buffer (no copy: cache rows are read by
/// the thousand on every ingest).
fn blob_at<'r>(r: &'r rusqlite::Row<'_>, i: usize, action: &'static str) -> Result<&'r [u8]> {
    r.get_ref(i)
        .and_then(|v| v.as_blob().map_err(Into::into))
        .map_err(Error::sql(action))
}

/// Column `i` as a 32-byte digest; `None` when it is not one (the row is then skipped).
fn digest_at(r: &rusqlite::Row<'_>, i: usize, action: &'static str) -> Result<Option<[u8; 32]>> {
    let v = r.get_ref(i).map_err(Error::sql(action))?;
    Ok(v.as_blob().ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
}

/// Whether a row recorded at `recorded` (ns) with stat `row` vouches for a file whose stat
/// is now `now`: the same stat, and a file last changed more than 2 s before the row.
fn trusted(row: &StatKey, now: &StatKey, recorded: i64) -> bool {
    row == now && now.mtime_ns < recorded - RACY_NS && now.ctime_ns < recorded - RACY_NS
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The columns of a stat-cache row, in the order [`row_at`] reads them.
const ROW: &str = "SELECT path, dev, ino, size, mtime_ns, ctime_ns, mode, object, sha256, recorded_ns FROM stat_cache";

/// A row selected by [`ROW`]: (stat, digests, when recorded); `None` when its digests are
/// not 32 bytes each (the row is then skipped).
fn row_at(
    r: &rusqlite::Row<'_>,
    action: &'static str,
) -> Result<Option<(StatKey, ObjectMeta, i64)>> {
    let (Some(id), Some(sha256)) = (digest_at(r, 7, action)?, digest_at(r, 8, action)?) else {
        return Ok(None);
    };
    let get = |i| r.get::<_, i64>(i).map_err(Error::sql(action));
    let key = StatKey {
        dev: get(1)? as u64,
        ino: get(2)? as u64,
        size: get(3)? as u64,
        mtime_ns: get(4)?,
        ctime_ns: get(5)?,
        mode: get(6)? as u32,
    };
    let meta = ObjectMeta {
        id: ObjectId(id),
        sha256: Sha256Digest(sha256),
        size: key.size,
    };
    Ok(Some((key, meta, get(9)?)))
}

/// Writes one stat-cache row; `stored` says whether the journal names its object.
fn put_row(
    db: &rusqlite::Connection,
    r: &crate::store::tree::StatRow,
    recorded_ns: i64,
    stored: bool,
) -> Result<()> {
    let k = &r.key;
    db.prepare_cached("INSERT OR REPLACE INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, mode, object, sha256, recorded_ns, stored) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
        .and_then(|mut st| {
            st.execute(rusqlite::params![
                r.path,
                k.dev as i64,
                k.ino as i64,
                k.size as i64,
                k.mtime_ns,
                k.ctime_ns,
                k.mode as i64,
                &r.meta.id.0[..],
                &r.meta.sha256.0[..],
                recorded_ns,
                stored as i64
            ])
        })
        .map(|_| ())
        .map_err(Error::sql("write stat cache"))
}

impl crate::store::tree::StatCache for LoadedStatCache {
    fn get(&self, path: &std::path::Path, key: &StatKey) -> Option<ObjectMeta> {
        use std::os::unix::ffi::OsStrExt;
        let (k, m, recorded) = self.rows.get(path.as_os_str().as_bytes())?;
        trusted(k, key, *recorded).then_some(*m)
    }

    fn like(&self, path: &std::path::Path, key: &StatKey) -> Option<ObjectMeta> {
        use std::os::unix::ffi::OsStrExt;
        let (_, m, _) = self.rows.get(path.as_os_str().as_bytes())?;
        (m.size == key.size).then_some(*m)
    }

    fn tree(&self, dir: &std::path::Path, fingerprint: &[u8; 32]) -> Option<ObjectMeta> {
        use std::os::unix::ffi::OsStrExt;
        let (fp, m) = self.trees.get(dir.as_os_str().as_bytes())?;
        (fp == fingerprint).then_some(*m)
    }
}

impl Ledger {
    pub fn load_stat_cache(&self, prefix: &[u8]) -> Result<LoadedStatCache> {
        let mut upper = prefix.to_vec();
        upper.push(0xff);
        let mut st = self
            .conn()
            .prepare_cached(&format!(
                "{ROW} WHERE path >= ?1 AND path < ?2 AND stored = 1"
            ))
            .map_err(Error::sql("read stat cache"))?;
        let mut rows = st
            .query(rusqlite::params![prefix, upper])
            .map_err(Error::sql("read stat cache"))?;
        let mut map = PathIndex::new();
        const STAT: &str = "read stat cache";
        while let Some(r) = rows.next().map_err(Error::sql(STAT))? {
            if let Some(row) = row_at(r, STAT)? {
                map.push(blob_at(r, 0, STAT)?, row);
            }
        }
        drop(rows);
        let mut st = self
            .conn()
            .prepare_cached("SELECT path, fingerprint, object, sha256, size FROM tree_cache WHERE path >= ?1 AND path < ?2")
            .map_err(Error::sql("read tree cache"))?;
        let mut rows = st
            .query(rusqlite::params![prefix, upper])
            .map_err(Error::sql("read tree cache"))?;
        let mut trees = PathIndex::new();
        const TREE: &str = "read tree cache";
        while let Some(r) = rows.next().map_err(Error::sql(TREE))? {
            let (Some(fp), Some(id), Some(sha256)) = (
                digest_at(r, 1, TREE)?,
                digest_at(r, 2, TREE)?,
                digest_at(r, 3, TREE)?,
            ) else {
                continue;
            };
            let path = blob_at(r, 0, TREE)?;
            let size = r.get::<_, i64>(4).map_err(Error::sql(TREE))? as u64;
            trees.push(
                path,
                (
                    fp,
                    ObjectMeta {
                        id: ObjectId(id),
                        sha256: Sha256Digest(sha256),
                        size,
                    },
                ),
            );
        }
        Ok(LoadedStatCache {
            rows: map.sorted(),
            trees: trees.sorted(),
        })
    }

    /// Records what was just read and encoded, after the journal committed it.
    pub fn save_stat_cache(
        &mut self,
        rows: &[crate::store::tree::StatRow],
        trees: &[crate::store::tree::TreeRow],
    ) -> Result<()> {
        if rows.is_empty() && trees.is_empty() {
            return Ok(());
        }
        let now_ns = now_ns();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(Error::sql("begin"))?;
        {
            for r in rows {
                put_row(&tx, r, now_ns, true)?;
            }
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO tree_cache (path, fingerprint, object, sha256, size) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(Error::sql("write tree cache"))?;
            for t in trees {
                st.execute(rusqlite::params![
                    t.path,
                    &t.fingerprint[..],
                    &t.meta.id.0[..],
                    &t.meta.sha256.0[..],
                    t.meta.size as i64
                ])
                .map_err(Error::sql("write tree cache"))?;
            }
        }
        tx.commit().map_err(Error::sql("commit"))
    }
}

impl Ledger {
    /// The digests of the file at `path` (absolute, resolved), read from it unless a
    /// stat-cache row vouches for its current stat (the stat cache's rules). What is read
    /// is recorded as a row with `stored = 0` when `record` (a dry run records nothing):
    /// it names the file's bytes and vouches for nothing in the store, so `ingest` never
    /// takes it.
    pub fn file_digest(&mut self, path: &std::path::Path, record: bool) -> Result<ObjectMeta> {
        use std::os::unix::ffi::OsStrExt;
        let meta = std::fs::metadata(path).map_err(Error::io("stat", path))?;
        let key = StatKey::of(&meta);
        let p = path.as_os_str().as_bytes();
        const READ: &str = "read stat cache";
        let row = self
            .conn()
            .prepare_cached(&format!("{ROW} WHERE path = ?1"))
            .and_then(|mut st| st.query_row([p], |r| Ok(row_at(r, READ))).optional())
            .map_err(Error::sql(READ))?
            .transpose()?
            .flatten();
        if let Some((row, m, recorded)) = row {
            if trusted(&row, &key, recorded) {
                return Ok(m);
            }
        }
        let m = crate::store::hash_file(path)?;
        // Recorded only if nothing changed the file while it was read.
        let unchanged = std::fs::metadata(path).is_ok_and(|now| StatKey::of(&now) == key);
        if record && unchanged && m.size == key.size {
            let row = crate::store::tree::StatRow {
                path: p.to_vec(),
                key,
                meta: m,
            };
            put_row(self.conn(), &row, now_ns(), false)?;
        }
        Ok(m)
    }
}
