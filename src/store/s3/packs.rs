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

/// Objects taken from packs fetched whole by [`S3Backend::prefetch`], verified, waiting
/// for the read that asks for them.
pub(super) type Prefetched = HashMap<ObjectId, Vec<u8>>;

/// A remote pack may be at most this large (what `push` writes is at most `PACK_PUT`).
const REMOTE_PACK_MAX: u64 = 64 << 20;
/// How many packs a remote may hold before `pull` refuses to read their indexes.
const REMOTE_PACKS_MAX: usize = 100_000;
/// Packs `push` writes gather objects up to this many bytes.
pub(crate) const PACK_PUT: usize = 16 << 20;
/// Places kept per object from the remote's indexes.
const PLACES_MAX: usize = 4;
/// Index bytes a pull reads from a remote at most (2.8 million small objects).
const REMOTE_INDEX_BYTES_MAX: u64 = 128 << 20;
/// Bytes of objects `prefetch` keeps waiting at once.
const PREFETCH_MAX: u64 = 256 << 20;

/// Where each packed object of a remote is: every (pack key, offset, length) an index
/// gives for it, so one forged index cannot hide a good copy.
#[derive(Default)]
pub(crate) struct RemotePacks {
    pub(super) at: HashMap<ObjectId, Vec<(Arc<str>, u64, u64)>>,
    /// Each pack's size as listed.
    sizes: HashMap<String, u64>,
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
            if n >= crate::store::pack::SMALL_MAX as u64 {
                return Err(format!(
                    "gives object {id} {n} bytes, more than a packed object holds"
                ));
            }
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
        let mut index_bytes = 0u64;
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
            let pack_key: Arc<str> = Arc::from(format!("packs/{stem}.pack"));
            let Some(&pack_size) = sizes.get(&*pack_key) else {
                out.anomalies
                    .push((k.key.clone(), "an index whose pack is absent".into()));
                continue;
            };
            if pack_size > REMOTE_PACK_MAX || k.size > pack_size {
                out.anomalies.push((k.key.clone(), format!("a pack of {pack_size} bytes (at most {REMOTE_PACK_MAX}) with an index of {}", k.size)));
                continue;
            }
            index_bytes += k.size;
            if index_bytes > REMOTE_INDEX_BYTES_MAX {
                return Err(Error::Remote {
                    remote: self.s3.url.clone(),
                    message: format!("the remote's pack indexes under packs/ hold more than {REMOTE_INDEX_BYTES_MAX} bytes ({} objects), more than cto-ledger reads", REMOTE_INDEX_BYTES_MAX / 48),
                    hint: Some("a remote cto-ledger pushed to holds one 48-byte entry per small object; check who writes to it, and remove index keys no host wrote".into()),
                });
            }
            let Some(bytes) = self.s3.get_at_most(&k.key, k.size)? else {
                continue;
            };
            match parse_remote_index(&bytes[..bytes.len().min(k.size as usize)], pack_size) {
                Ok(entries) => {
                    for (id, off, n) in entries {
                        // Each place costs a GET when an earlier one fails: a few copies
                        // are normal (hosts that pushed the same object), more are forged.
                        let places = out.at.entry(id).or_default();
                        if places.len() < PLACES_MAX {
                            places.push((pack_key.clone(), off, n));
                        }
                    }
                    out.sizes.insert(pack_key.to_string(), pack_size);
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

    /// A packed object's bytes: waiting from a prefetch, or read from each place an index
    /// gives for it by a ranged GET until one hashes to its id (the store verifies again;
    /// when none does, the first place's bytes go up to fail there, naming it).
    pub(super) fn read_packed(&self, id: &ObjectId) -> Result<Option<Vec<u8>>> {
        if let Some(b) = self.prefetched.lock().expect("not poisoned").remove(id) {
            return Ok(Some(b));
        }
        let packs = self.remote_packs()?;
        let Some(places) = packs.at.get(id) else {
            return Ok(None);
        };
        let mut first = None;
        for (key, off, n) in places {
            // An empty object needs no request (and an empty range is not one S3 serves).
            let got = if *n == 0 {
                Some(Vec::new())
            } else {
                self.s3.get_range(key, *off..off + n)?
            };
            let Some(b) = got else {
                continue;
            };
            if blake3::hash(&b).as_bytes() == &id.0 {
                return Ok(Some(b));
            }
            first.get_or_insert(b);
        }
        Ok(first)
    }

    /// Fetches, one ranged GET per pack, the stretch of each pack that holds the objects
    /// `ids` when they take at least half of it (plus 1 MiB), and keeps those objects
    /// (those that verify) for the reads that follow: a pull of a tree costs a GET per
    /// pack, not per object, and a remote that scatters objects over large packs costs
    /// ranged GETs of about their own bytes, never whole packs for each.
    pub(super) fn prefetch(&self, ids: &[ObjectId]) -> Result<()> {
        let packs = self.remote_packs()?;
        let mut by_pack: std::collections::BTreeMap<&str, Vec<(ObjectId, u64, u64)>> =
            Default::default();
        for id in ids {
            if let Some((key, off, n)) = packs.at.get(id).and_then(|p| p.first()) {
                by_pack.entry(key).or_default().push((*id, *off, *n));
            }
        }
        let mut budget = PREFETCH_MAX;
        for (key, objects) in by_pack {
            let wanted: u64 = objects.iter().map(|o| o.2).sum();
            let lo = objects.iter().map(|o| o.1).min().unwrap_or(0);
            let hi = objects.iter().map(|o| o.1 + o.2).max().unwrap_or(0);
            if hi == lo || hi - lo > wanted.saturating_mul(2) + (1 << 20) || hi - lo > budget {
                continue;
            }
            let Some(stretch) = self.s3.get_range(key, lo..hi)? else {
                continue;
            };
            let mut waiting = self.prefetched.lock().expect("not poisoned");
            for (id, off, n) in objects {
                let Some(b) = stretch.get((off - lo) as usize..(off - lo + n) as usize) else {
                    continue;
                };
                if blake3::hash(b).as_bytes() == &id.0 {
                    budget = budget.saturating_sub(n);
                    waiting.insert(id, b.to_vec());
                }
            }
        }
        Ok(())
    }

    /// Every index entry whose bytes in its pack do not hash to its id, each pack fetched
    /// whole once (for `audit --remote --full`).
    pub(super) fn damaged_copies(&self) -> Result<Vec<(String, String)>> {
        let packs = self.remote_packs()?;
        let mut by_pack: std::collections::BTreeMap<&str, Vec<(ObjectId, u64, u64)>> =
            Default::default();
        for (id, places) in &packs.at {
            for (key, off, n) in places {
                by_pack.entry(key).or_default().push((*id, *off, *n));
            }
        }
        let mut out = Vec::new();
        for (key, objects) in by_pack {
            let size = packs.sizes.get(key).copied().unwrap_or(0);
            let pack = self.s3.get_at_most(key, size)?.unwrap_or_default();
            for (id, off, n) in objects {
                let ok = pack
                    .get(off as usize..(off + n) as usize)
                    .is_some_and(|b| blake3::hash(b).as_bytes() == &id.0);
                if !ok {
                    out.push((
                        format!("{key} (bytes {off}+{n})"),
                        crate::store::damaged_copy_message(&id),
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
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
