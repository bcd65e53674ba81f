//! The directory cache (per directory an ingest encoded, its record: see
//! [`crate::store::tree::dircache`]) and the stat cache of single files hashed but not
//! stored (a build's tools, the executable offered to `run stage2`), both trusted as git's
//! index is: a file whose stat is what it was when recorded is not read again.

use super::Ledger;
use crate::error::{Error, Result};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};
use crate::store::tree::dircache::{trusted, DirRow};
use crate::store::tree::StatKey;
use rusqlite::OptionalExtension;

/// The directory cache loaded for one ingest: the records of directories under a path
/// prefix, in one buffer, found by path.
pub struct LoadedDirCache {
    records: Vec<u8>,
    /// (when written, start in `records`, length) by directory path
    dirs: PathIndex<(i64, usize, usize)>,
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

/// Column `i` as bytes borrowed from SQLite's buffer (no copy).
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

/// Writes one stat-cache row, for a file hashed and not stored (`stored = 0`).
fn put_row(
    db: &rusqlite::Connection,
    r: &crate::store::tree::StatRow,
    recorded_ns: i64,
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
                0
            ])
        })
        .map(|_| ())
        .map_err(Error::sql("write stat cache"))
}

impl crate::store::tree::DirCache for LoadedDirCache {
    fn dir(&self, dir: &std::path::Path) -> Option<(&[u8], i64)> {
        use std::os::unix::ffi::OsStrExt;
        let (recorded, start, len) = self.dirs.get(dir.as_os_str().as_bytes())?;
        Some((&self.records[*start..start + len], *recorded))
    }
}

/// How much of `ledger.db` SQLite may map while the directory cache is read: its pages
/// are then copied out of the mapping, not read with a system call each (a 17,000-file
/// tree's 2 MB of records load in 1 ms, not 2.6).
const MAP_FOR_LOAD: i64 = 1 << 30;

impl Ledger {
    /// The records of every directory under `prefix` (a path's bytes).
    pub fn load_dir_cache(&self, prefix: &[u8]) -> Result<LoadedDirCache> {
        const READ: &str = "read directory cache";
        let mut upper = prefix.to_vec();
        upper.push(0xff);
        let map = |size: i64| {
            self.conn()
                .pragma_update(None, "mmap_size", size)
                .map_err(Error::sql(READ))
        };
        map(MAP_FOR_LOAD)?;
        let loaded = self.read_dir_cache(prefix, &upper);
        map(0)?;
        loaded
    }

    fn read_dir_cache(&self, lower: &[u8], upper: &[u8]) -> Result<LoadedDirCache> {
        const READ: &str = "read directory cache";
        let mut st = self
            .conn()
            .prepare_cached(
                "SELECT path, recorded_ns, record FROM dir_cache WHERE path >= ?1 AND path < ?2",
            )
            .map_err(Error::sql(READ))?;
        let mut rows = st
            .query(rusqlite::params![lower, upper])
            .map_err(Error::sql(READ))?;
        let (mut records, mut dirs) = (Vec::new(), PathIndex::new());
        while let Some(r) = rows.next().map_err(Error::sql(READ))? {
            let recorded = r.get::<_, i64>(1).map_err(Error::sql(READ))?;
            let record = blob_at(r, 2, READ)?;
            dirs.push(
                blob_at(r, 0, READ)?,
                (recorded, records.len(), record.len()),
            );
            records.extend_from_slice(record);
        }
        Ok(LoadedDirCache {
            records,
            dirs: dirs.sorted(),
        })
    }

    /// Writes the records of the directories an ingest encoded, after the journal
    /// committed their trees (and the files they vouch for).
    pub fn save_dir_cache(&mut self, rows: &[DirRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        const WRITE: &str = "write directory cache";
        let now_ns = now_ns();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(Error::sql("begin"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dir_cache (path, recorded_ns, record) VALUES (?1, ?2, ?3)",
                )
                .map_err(Error::sql(WRITE))?;
            for r in rows {
                st.execute(rusqlite::params![r.path, now_ns, r.record])
                    .map_err(Error::sql(WRITE))?;
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
            put_row(self.conn(), &row, now_ns())?;
        }
        Ok(m)
    }
}
