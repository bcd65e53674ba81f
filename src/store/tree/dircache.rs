//! The directory cache's records: per directory an ingest read, its entries as they were
//! (each file with its stat and digests, each link's target, each subdirectory's tree) and
//! the tree they encoded to, so an unchanged directory is matched entry by entry during the
//! walk and neither its files nor its manifest are read, built or hashed again. A record
//! is this host's own bookkeeping, never evidence: one whose checksum fails or that does
//! not parse is ignored.

use super::{Kind, StatKey};
use crate::id::{ObjectId, ObjectMeta, Sha256Digest};

/// Layout version, the record's first byte; a record of another is not read. Version 2
/// added the checksum (a version 1 record is passed over and rewritten).
const VERSION: u8 = 2;
/// The version byte and the BLAKE3 of the bytes after the checksum.
const HEADER: usize = 33;

/// A file is trusted only if it last changed more than this before its record was written:
/// one changed in the same instant it was read could keep its stat with other bytes.
pub const RACY_NS: i64 = 2_000_000_000;

/// Whether a record written at `recorded` (ns) with stat `row` vouches for a file whose
/// stat is now `now`: the same stat, and a file last changed more than 2 s before the record.
pub fn trusted(row: &StatKey, now: &StatKey, recorded: i64) -> bool {
    let settled = recorded.saturating_sub(RACY_NS);
    row == now && now.mtime_ns < settled && now.ctime_ns < settled
}

/// A directory's record, to be written once the journal has committed its tree.
#[derive(Debug, Clone)]
pub struct DirRow {
    pub path: Vec<u8>,
    pub record: Vec<u8>,
}

/// One entry of a record, borrowed from it.
pub(super) enum Was<'a> {
    File(StatKey, ObjectMeta),
    Dir(ObjectId),
    Link(&'a [u8]),
    Special(Kind),
}

/// A parsed record: the tree, and its entries sorted by name.
pub(super) struct Record<'a> {
    pub tree: ObjectMeta,
    pub entries: Vec<(&'a [u8], Was<'a>)>,
}

/// An entry to record: what [`encode`] writes for one name.
pub(super) enum Now<'a> {
    File(&'a StatKey, &'a ObjectMeta),
    Dir(&'a ObjectId),
    Link(&'a [u8]),
    Special(Kind),
}

fn kind_byte(k: Kind) -> u8 {
    match k {
        Kind::File => 1,
        Kind::Dir => 2,
        Kind::Symlink => 3,
        Kind::Fifo => 4,
        Kind::Socket => 5,
        Kind::CharDevice => 6,
        Kind::BlockDevice => 7,
    }
}

fn special_of_byte(b: u8) -> Option<Kind> {
    Some(match b {
        4 => Kind::Fifo,
        5 => Kind::Socket,
        6 => Kind::CharDevice,
        7 => Kind::BlockDevice,
        _ => return None,
    })
}

/// The record of a directory that encoded to `tree`, its entries sorted by name.
pub(super) fn encode<'a>(
    tree: &ObjectMeta,
    entries: impl ExactSizeIterator<Item = (&'a [u8], Now<'a>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 76 + entries.len() * 140);
    out.push(VERSION);
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(&tree.id.0);
    out.extend_from_slice(&tree.sha256.0);
    out.extend_from_slice(&tree.size.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, e) in entries {
        let kind = match &e {
            Now::File(..) => Kind::File,
            Now::Dir(_) => Kind::Dir,
            Now::Link(_) => Kind::Symlink,
            Now::Special(k) => *k,
        };
        out.push(kind_byte(kind));
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name);
        match e {
            Now::File(k, m) => {
                for v in [k.dev, k.ino, k.size] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                for v in [k.mtime_ns, k.ctime_ns] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&k.mode.to_le_bytes());
                out.extend_from_slice(&m.id.0);
                out.extend_from_slice(&m.sha256.0);
            }
            Now::Dir(id) => out.extend_from_slice(&id.0),
            Now::Link(t) => {
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t);
            }
            Now::Special(_) => {}
        }
    }
    let sum = blake3::hash(&out[HEADER..]);
    out[1..HEADER].copy_from_slice(sum.as_bytes());
    out
}

/// Reads what [`encode`] wrote; `None` for anything else (a damaged or older record,
/// which then vouches for nothing). The checksum is what makes damage visible: a flipped
/// bit in a digest still parses, and would vouch for a file or a tree it does not name.
pub(super) fn decode(bytes: &[u8]) -> Option<Record<'_>> {
    if bytes.len() < HEADER
        || bytes[0] != VERSION
        || blake3::hash(&bytes[HEADER..]).as_bytes() != &bytes[1..HEADER]
    {
        return None;
    }
    let mut r = Reader(&bytes[HEADER..]);
    let tree = ObjectMeta {
        id: ObjectId(r.array()?),
        sha256: Sha256Digest(r.array()?),
        size: r.u64()?,
    };
    let n = r.u32()? as usize;
    // Each entry takes at least 5 bytes: a count beyond that is damage, not a reason to
    // reserve gigabytes.
    let mut entries = Vec::with_capacity(n.min(bytes.len() / 5));
    for _ in 0..n {
        let kind = r.take(1)?[0];
        let len = r.u32()? as usize;
        let name = r.take(len)?;
        let was = match kind {
            1 => {
                let (dev, ino, size) = (r.u64()?, r.u64()?, r.u64()?);
                let (mtime_ns, ctime_ns) = (r.u64()? as i64, r.u64()? as i64);
                let mode = r.u32()?;
                let key = StatKey {
                    dev,
                    ino,
                    size,
                    mtime_ns,
                    ctime_ns,
                    mode,
                };
                let meta = ObjectMeta {
                    id: ObjectId(r.array()?),
                    sha256: Sha256Digest(r.array()?),
                    size,
                };
                Was::File(key, meta)
            }
            2 => Was::Dir(ObjectId(r.array()?)),
            3 => {
                let len = r.u32()? as usize;
                Was::Link(r.take(len)?)
            }
            b => Was::Special(special_of_byte(b)?),
        };
        entries.push((name, was));
    }
    r.0.is_empty().then_some(Record { tree, entries })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            a
        })
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_damage_makes_it_vouch_for_nothing() {
        let m = |b| ObjectMeta {
            id: ObjectId([b; 32]),
            sha256: Sha256Digest([b + 1; 32]),
            size: 7,
        };
        let key = StatKey {
            dev: 1,
            ino: 2,
            size: 7,
            mtime_ns: -3,
            ctime_ns: 4,
            mode: 0o100755,
        };
        let (file, sub) = (m(1), ObjectId([9; 32]));
        let entries = vec![
            (&b"a"[..], Now::File(&key, &file)),
            (&b"d"[..], Now::Dir(&sub)),
            (&b"l"[..], Now::Link(b"../x")),
            (&b"p"[..], Now::Special(Kind::Fifo)),
        ];
        let bytes = encode(&m(5), entries.into_iter());
        assert!(trusted(&key, &key, 2 * RACY_NS + 5));
        assert!(
            !trusted(&key, &key, i64::MIN),
            "no overflow into the far future"
        );
        let r = decode(&bytes).expect("parses");
        assert_eq!(r.tree, m(5));
        assert_eq!(r.entries.len(), 4);
        assert!(matches!(&r.entries[0], (b"a", Was::File(k, f)) if *k == key && *f == file));
        assert!(matches!(&r.entries[1], (b"d", Was::Dir(id)) if *id == sub));
        assert!(matches!(&r.entries[2], (b"l", Was::Link(b"../x"))));
        assert!(matches!(&r.entries[3], (b"p", Was::Special(Kind::Fifo))));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        // Any one byte changed, a digest's included (which would still parse), and the
        // record vouches for nothing.
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(decode(&damaged).is_none(), "byte {at} changed");
        }
        let mut other = bytes;
        other[0] = VERSION + 1;
        assert!(decode(&other).is_none());
    }
}
