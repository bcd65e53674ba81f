//! A remote's packs: small objects many to a key, `packs/<blake3>.pack` (the local
//! store's format) with its index beside it as `packs/<blake3>.idx`. Everything here is
//! read from a remote and hostile: sizes are bounded before anything is fetched, every
//! index entry is checked against its pack's listed size, and every object read from a
//! pack is re-hashed by the store above.

use std::collections::HashMap;
use std::sync::Arc;

use super::S3Backend;
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// A pack fetched whole, once, however many threads ask for it.
pub(super) type Fetched = Arc<std::sync::OnceLock<Arc<Vec<u8>>>>;

/// A remote pack may be at most this large (what `push` writes is at most `PACK_PUT`).
const REMOTE_PACK_MAX: u64 = 64 << 20;
/// How many packs a remote may hold before `pull` refuses to read their indexes.
const REMOTE_PACKS_MAX: usize = 100_000;
/// Packs `push` writes gather objects up to this many bytes.
pub(crate) const PACK_PUT: usize = 16 << 20;
/// Fetched packs kept in memory at once.
const FETCHED_MAX: usize = 4;

/// Where each packed object of a remote is: (pack key, offset, length).
#[derive(Default)]
pub(crate) struct RemotePacks {
    pub(super) at: HashMap<ObjectId, (String, u64, u64)>,
    /// Keys under `packs/` that are not a well-formed pack with its index.
    pub(super) anomalies: Vec<(String, String)>,
}

/// Parses a remote pack index (48 bytes per object) against its pack's size.
fn parse_remote_index(
    bytes: &[u8],
    pack_size: u64,
) -> std::result::Result<Vec<(ObjectId, u64, u64)>, String> {
    if !bytes.len().is_multiple_of(48) {
        return Err(format!(
            "{} bytes is not a whole number of 48-byte entries",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(48)
        .map(|e| {
            let id = ObjectId(e[..32].try_into().expect("32 bytes"));
            let off = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
            let n = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
            if off < 8 || off.checked_add(n).is_none_or(|end| end > pack_size) {
                return Err(format!(
                    "places object {id} at {off}+{n}, outside its {pack_size}-byte pack"
                ));
            }
            Ok((id, off, n))
        })
        .collect()
}

impl S3Backend {
    /// The remote's pack indexes: every `packs/H.idx` whose `packs/H.pack` is listed,
    /// each bounded and checked against its pack's size before any entry counts.
    pub(super) fn remote_packs(&self) -> Result<Arc<RemotePacks>> {
        let mut slot = self.packs.lock().expect("not poisoned");
        if let Some(p) = &*slot {
            return Ok(p.clone());
        }
        let keys = self.s3.list("packs", None)?;
        if keys.len() > 2 * REMOTE_PACKS_MAX {
            return Err(Error::Remote {
                remote: self.s3.url.clone(),
                message: format!(
                    "the remote lists {} keys under packs/, more than cto-ledger reads ({})",
                    keys.len(),
                    2 * REMOTE_PACKS_MAX
                ),
                hint: Some(
                    "the remote was not written by cto-ledger's push; check who writes to it"
                        .into(),
                ),
            });
        }
        let sizes: HashMap<&str, u64> = keys.iter().map(|k| (k.key.as_str(), k.size)).collect();
        let mut out = RemotePacks::default();
        for k in &keys {
            let name = k.key.strip_prefix("packs/").unwrap_or(&k.key);
            let stem = name
                .strip_suffix(".pack")
                .or_else(|| name.strip_suffix(".idx"));
            let valid =
                stem.is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            if !valid {
                out.anomalies
                    .push((k.key.clone(), "not a pack or pack index name".into()));
                continue;
            }
            let Some(stem) = name.strip_suffix(".idx") else {
                continue;
            };
            let pack_key = format!("packs/{stem}.pack");
            let Some(&pack_size) = sizes.get(pack_key.as_str()) else {
                out.anomalies
                    .push((k.key.clone(), "an index whose pack is absent".into()));
                continue;
            };
            if pack_size > REMOTE_PACK_MAX || k.size > pack_size {
                out.anomalies.push((k.key.clone(), format!("a pack of {pack_size} bytes (at most {REMOTE_PACK_MAX}) with an index of {}", k.size)));
                continue;
            }
            let Some(bytes) = self.s3.get_at_most(&k.key, k.size)? else {
                continue;
            };
            match parse_remote_index(&bytes[..bytes.len().min(k.size as usize)], pack_size) {
                Ok(entries) => {
                    for (id, off, n) in entries {
                        out.at.entry(id).or_insert((pack_key.clone(), off, n));
                    }
                }
                Err(why) => out
                    .anomalies
                    .push((k.key.clone(), format!("damaged pack index: {why}"))),
            }
        }
        let p = Arc::new(out);
        *slot = Some(p.clone());
        Ok(p)
    }

    /// A packed object's bytes, from its pack fetched whole once (unverified: the store
    /// re-hashes what it reads).
    pub(super) fn read_packed(&self, key: &str, off: u64, n: u64) -> Result<Option<Vec<u8>>> {
        let cell = {
            let mut f = self.fetched.lock().expect("not poisoned");
            if f.len() >= FETCHED_MAX && !f.contains_key(key) {
                let evict = f.keys().next().cloned().expect("not empty");
                f.remove(&evict);
            }
            f.entry(key.to_string()).or_default().clone()
        };
        let pack = match cell.get() {
            Some(p) => p.clone(),
            None => {
                let Some(bytes) = self.s3.get_at_most(key, REMOTE_PACK_MAX)? else {
                    return Ok(None);
                };
                cell.get_or_init(|| Arc::new(bytes)).clone()
            }
        };
        Ok(pack
            .get(off as usize..(off + n) as usize)
            .map(<[u8]>::to_vec))
    }

    /// Sends small objects as packs of up to [`PACK_PUT`] bytes: each pack, then its
    /// index (a reader never takes an index whose pack is not there). `objects` are
    /// (id, verified bytes). Returns how many packs were written.
    pub(super) fn put_packs(&self, objects: &[(ObjectId, Vec<u8>)]) -> Result<u64> {
        let mut n = 0;
        let mut start = 0;
        while start < objects.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < objects.len() && (end == start || bytes + objects[end].1.len() <= PACK_PUT)
            {
                bytes += objects[end].1.len();
                end += 1;
            }
            let refs: Vec<(ObjectId, &[u8])> = objects[start..end]
                .iter()
                .map(|(id, b)| (*id, &b[..]))
                .collect();
            let (pack, index) = crate::store::pack::encode(&refs);
            let stem = blake3::hash(&pack).to_hex();
            let idx = crate::store::pack::index_bytes(&index);
            // Content-addressed keys: one that exists holds these bytes (or is damaged,
            // which every reader's re-hash finds).
            self.s3.put_create(&format!("packs/{stem}.pack"), pack)?;
            self.s3.put_create(&format!("packs/{stem}.idx"), idx)?;
            n += 1;
            start = end;
        }
        *self.packs.lock().expect("not poisoned") = None;
        Ok(n)
    }
}
