//! The log's Merkle tree kept as C2SP tlog-tiles hashes (tiles of height 8): the leaves
//! are the journal's hashes (`leaf_hash` of each event's chain hash), and `tlog_nodes`
//! holds, for tile level L >= 1, the root of every complete subtree of 256^L leaves.
//! Written in the transaction that appends journal rows, so the tree is always the
//! journal's; a node that is missing is computed from the level below, so a proof is
//! never wrong, only slower. Any subtree root reads at most 128 hashes of one level, and
//! a proof O(log n) of them.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::sign::merkle::{self, Hash, Subtrees};

/// Hashes per tile row: a tile of height 8.
pub(crate) const WIDTH: u64 = 256;
const HEIGHT: u32 = 8;

fn decode(seq: i64, text: &str) -> Result<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(text, &mut h).map_err(|_| Error::Integrity {
        message: format!("journal event {seq} has a damaged hash, so the log's tree cannot be computed; run `cto-ledger audit`"),
    })?;
    Ok(h)
}

/// The chain hashes of events `start + 1 ..= start + count`, raw: the tree's entries
/// (the one reader of them: leaves, entry bundles and `tlog::leaves` all come from here).
pub(crate) fn entries(c: &Connection, start: u64, count: u64) -> Result<Vec<[u8; 32]>> {
    let mut st = c
        .prepare_cached("SELECT seq, hash FROM journal WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")
        .map_err(Error::sql("read journal"))?;
    let mut rows = st
        .query(params![start as i64, (start + count) as i64])
        .map_err(Error::sql("read journal"))?;
    let mut out = Vec::with_capacity(count as usize);
    while let Some(r) = rows.next().map_err(Error::sql("read journal"))? {
        let seq: i64 = r.get(0).map_err(Error::sql("read journal"))?;
        let text: String = r.get(1).map_err(Error::sql("read journal"))?;
        if seq != (start + out.len() as u64 + 1) as i64 {
            return Err(Error::Integrity {
                message: format!("journal event {} is missing, so the log's tree cannot be computed; run `cto-ledger audit`", start + out.len() as u64 + 1),
            });
        }
        out.push(decode(seq, &text)?);
    }
    if (out.len() as u64) < count {
        return Err(Error::bad_input(
            format!(
                "the journal has {} events, fewer than {}",
                start + out.len() as u64,
                start + count
            ),
            "give a size no larger than the journal (see `cto-ledger checkpoint`)",
        ));
    }
    Ok(out)
}

/// `count` hashes of tile level `level` from index `start`: leaf hashes of the journal's
/// entries at level 0, stored (or, where missing, recomputed) subtree roots above.
pub(crate) fn level_hashes(
    c: &Connection,
    level: u32,
    start: u64,
    count: u64,
) -> Result<Vec<Hash>> {
    if level == 0 {
        return Ok(entries(c, start, count)?
            .iter()
            .map(|e| merkle::leaf_hash(e))
            .collect());
    }
    let mut st = c
        .prepare_cached("SELECT idx, hash FROM tlog_nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx")
        .map_err(Error::sql("read tiles"))?;
    let stored: Vec<(u64, Vec<u8>)> = st
        .query_map(params![level, start as i64, (start + count) as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(Error::sql("read tiles"))?;
    let mut out = Vec::with_capacity(count as usize);
    let mut it = stored.into_iter().peekable();
    for i in start..start + count {
        match it.next_if(|(idx, h)| *idx == i && h.len() == 32) {
            Some((_, h)) => out.push(h.try_into().expect("32 bytes")),
            None => out.push(merkle::root(&level_hashes(c, level - 1, i * WIDTH, WIDTH)?)),
        }
    }
    Ok(out)
}

/// After journal row `seq` was inserted: the subtree roots it completes.
pub(crate) fn extend(c: &Connection, seq: u64) -> Result<()> {
    let (mut level, mut count) = (1u32, seq);
    while count > 0 && count % WIDTH == 0 {
        let idx = count / WIDTH - 1;
        let root = merkle::root(&level_hashes(c, level - 1, idx * WIDTH, WIDTH)?);
        c.prepare_cached(
            "INSERT OR REPLACE INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![level, idx as i64, &root[..]]))
        .map_err(Error::sql("write tiles"))?;
        (level, count) = (level + 1, idx + 1);
    }
    Ok(())
}

/// Before journal rows after `base` are removed: every root that covers one of them.
pub(crate) fn truncate(c: &Connection, base: u64) -> Result<()> {
    for level in 1..8u32 {
        let span = WIDTH.pow(level);
        // Node idx covers leaves [idx * span, (idx + 1) * span): it goes when its last
        // leaf is past `base`.
        c.execute(
            "DELETE FROM tlog_nodes WHERE level = ?1 AND (idx + 1) * ?2 > ?3",
            params![level, span as i64, base as i64],
        )
        .map_err(Error::sql("write tiles"))?;
    }
    Ok(())
}

/// Every node again from the journal.
pub(crate) fn rebuild(c: &Connection) -> Result<()> {
    c.execute("DELETE FROM tlog_nodes", [])
        .map_err(Error::sql("write tiles"))?;
    let head: i64 = c
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
            r.get(0)
        })
        .map_err(Error::sql("read journal"))?;
    let mut seq = WIDTH;
    while seq <= head as u64 {
        extend(c, seq)?;
        seq += WIDTH;
    }
    Ok(())
}

/// The stored nodes that differ from the journal's tree, or are missing: (level, idx,
/// what is wrong).
pub(crate) fn check(c: &Connection) -> Result<Vec<String>> {
    let head: i64 = c
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
            r.get(0)
        })
        .map_err(Error::sql("read journal"))?;
    let mut findings = Vec::new();
    let (mut level, mut count) = (1u32, head as u64 / WIDTH);
    let mut below: Option<Vec<Hash>> = None;
    while count > 0 {
        let mut fresh = Vec::with_capacity(count as usize);
        for idx in 0..count {
            let children = match &below {
                None => level_hashes(c, 0, idx * WIDTH, WIDTH)?,
                Some(b) => b[(idx * WIDTH) as usize..((idx + 1) * WIDTH) as usize].to_vec(),
            };
            let want = merkle::root(&children);
            let have: Option<Vec<u8>> = c
                .query_row(
                    "SELECT hash FROM tlog_nodes WHERE level = ?1 AND idx = ?2",
                    params![level, idx as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::sql("read tiles"))?;
            match have {
                None => findings.push(format!("tile level {level} hash {idx} is missing")),
                Some(h) if h != want => findings.push(format!(
                    "tile level {level} hash {idx} is {} but the journal's tree has {}",
                    hex::encode(&h),
                    hex::encode(want)
                )),
                Some(_) => {}
            }
            fresh.push(want);
        }
        below = Some(fresh);
        (level, count) = (level + 1, count / WIDTH);
    }
    let extra: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM tlog_nodes WHERE level NOT BETWEEN 1 AND 7",
            [],
            |r| r.get(0),
        )
        .map_err(Error::sql("read tiles"))?;
    if extra > 0 {
        findings.push(format!(
            "{extra} tile hashes are at no level a tree of this size has"
        ));
    }
    Ok(findings)
}

/// The tree of the journal as its tiles give it.
pub(crate) struct Tiles<'a>(pub &'a Connection);

impl Subtrees for Tiles<'_> {
    fn range(&self, lo: usize, hi: usize) -> Result<Hash> {
        merkle::range_from(lo, hi, &|start, bits| {
            // A complete subtree of 2^bits leaves: 2^(bits % 8) hashes of tile level
            // bits / 8, hashed up.
            let level = bits / HEIGHT;
            let n = 1u64 << (bits % HEIGHT);
            let first = start as u64 >> (HEIGHT * level);
            Ok(merkle::root(&level_hashes(self.0, level, first, n)?))
        })
    }
}

/// The tile `level`/`index` of the tree of `size` leaves, as C2SP tlog-tiles serves it:
/// its hashes concatenated; full (256) or, at the right edge, partial. `None` past it.
pub(crate) fn tile(c: &Connection, size: u64, level: u32, index: u64) -> Result<Option<Vec<u8>>> {
    let at_level = size / WIDTH.pow(level);
    let start = index * WIDTH;
    if start >= at_level {
        return Ok(None);
    }
    let w = (at_level - start).min(WIDTH);
    Ok(Some(level_hashes(c, level, start, w)?.concat()))
}

/// A tile index as C2SP tlog-tiles writes it in a path: groups of three digits, all but
/// the last prefixed `x` (`1234067` is `x001/x234/067`).
pub(crate) fn index_path(n: u64) -> String {
    let digits = format!("{n:03}");
    let pad = (3 - digits.len() % 3) % 3;
    let digits = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = (0..digits.len() / 3)
        .map(|i| &digits[3 * i..3 * i + 3])
        .collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                g.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `tile/<L>/<N>` or, partial, `tile/<L>/<N>.p/<W>` (`entries` for an entry bundle).
fn tile_path(level: &str, n: u64, w: u64) -> String {
    match w {
        WIDTH => format!("tile/{level}/{}", index_path(n)),
        _ => format!("tile/{level}/{}.p/{w}", index_path(n)),
    }
}

/// Every hash tile and entry bundle of the tree of `size` events that the tree of `from`
/// events did not already have whole, as (path, bytes) under a C2SP tlog-tiles prefix
/// (`from` 0: all of them). Every path names fixed bytes (a partial tile's width is in
/// its path), so what was written once never changes. An entry is the event's 32-byte
/// chain hash (the leaf is its RFC 9162 leaf hash); a bundle holds each entry as a
/// big-endian u16 length and its bytes.
pub(crate) fn tile_files(c: &Connection, from: u64, size: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut level = 0u32;
    while size / WIDTH.pow(level) > 0 {
        // Tiles full at `from` are unchanged.
        let mut n = (from / WIDTH.pow(level)) / WIDTH;
        while let Some(t) = tile(c, size, level, n)? {
            let w = (t.len() / 32) as u64;
            out.push((tile_path(&level.to_string(), n, w), t));
            n += 1;
        }
        level += 1;
    }
    let first = from / WIDTH;
    let hashes = entries(c, first * WIDTH, size.saturating_sub(first * WIDTH))?;
    for (n, chunk) in hashes.chunks(WIDTH as usize).enumerate() {
        let mut bundle = Vec::with_capacity(chunk.len() * 34);
        for h in chunk {
            bundle.extend_from_slice(&32u16.to_be_bytes());
            bundle.extend_from_slice(h);
        }
        out.push((
            tile_path("entries", first + n as u64, chunk.len() as u64),
            bundle,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal of `n` events (only what the tree reads), its tiles kept as rows land.
    fn journal(n: u64) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE journal (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL);")
            .unwrap();
        c.execute_batch(include_str!("../../schema/0011_tlog_tiles.sql"))
            .unwrap();
        for seq in 1..=n {
            let h = blake3::hash(&seq.to_le_bytes()).to_hex().to_string();
            c.execute(
                "INSERT INTO journal VALUES (?1, ?2)",
                params![seq as i64, h],
            )
            .unwrap();
            extend(&c, seq).unwrap();
        }
        c
    }

    fn leaves(c: &Connection, n: u64) -> Vec<Hash> {
        level_hashes(c, 0, 0, n).unwrap()
    }

    #[test]
    fn tiles_give_the_same_roots_and_proofs_as_the_leaves() {
        // Past 256^2 leaves: three tile levels, full and partial tiles at each.
        let n = 65_536 + 256 * 3 + 17;
        let c = journal(n);
        let all = leaves(&c, n);
        let t = Tiles(&c);
        for size in [1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, n] {
            let l = &all[..size as usize];
            assert_eq!(
                t.range(0, size as usize).unwrap(),
                merkle::root(l),
                "root of {size}"
            );
            for index in [0, size / 2, size - 1] {
                assert_eq!(
                    merkle::inclusion_proof_in(&t, size as usize, index as usize).unwrap(),
                    merkle::inclusion_proof(l, index as usize),
                    "inclusion of {index} in {size}"
                );
            }
            for old in [1, size / 3, size - 1] {
                assert_eq!(
                    merkle::consistency_proof_in(&t, size as usize, old as usize).unwrap(),
                    merkle::consistency_proof(l, old as usize),
                    "consistency {old} to {size}"
                );
            }
        }
        assert!(check(&c).unwrap().is_empty());
        let stored: i64 = c
            .query_row("SELECT COUNT(*) FROM tlog_nodes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored as u64, n / 256 + n / 65_536);
    }

    #[test]
    fn a_damaged_or_missing_node_is_found_and_never_changes_a_proof() {
        let c = journal(1_000);
        let all = leaves(&c, 1_000);
        c.execute(
            "UPDATE tlog_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 1",
            [],
        )
        .unwrap();
        c.execute("DELETE FROM tlog_nodes WHERE level = 1 AND idx = 2", [])
            .unwrap();
        let found = check(&c).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("hash 1 is") && found[1].contains("hash 2 is missing"));
        // Missing: computed from below. (A damaged one is what audit reports.)
        c.execute("DELETE FROM tlog_nodes WHERE level = 1 AND idx = 1", [])
            .unwrap();
        assert_eq!(Tiles(&c).range(0, 1_000).unwrap(), merkle::root(&all));
        rebuild(&c).unwrap();
        assert!(check(&c).unwrap().is_empty());
        truncate(&c, 600).unwrap();
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM tlog_nodes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2, "nodes over leaves 0..512 stay");
    }

    #[test]
    fn a_tile_is_its_levels_hashes_full_or_partial() {
        let c = journal(300);
        let t0 = tile(&c, 300, 0, 0).unwrap().unwrap();
        assert_eq!(t0.len(), 256 * 32);
        let p = tile(&c, 300, 0, 1).unwrap().unwrap();
        assert_eq!(p.len(), 44 * 32);
        let t1 = tile(&c, 300, 1, 0).unwrap().unwrap();
        assert_eq!(t1, merkle::root(&leaves(&c, 256)).to_vec());
        assert!(tile(&c, 300, 0, 2).unwrap().is_none());
        assert!(tile(&c, 300, 2, 0).unwrap().is_none());
        let files = tile_files(&c, 0, 300).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "tile/0/000",
                "tile/0/001.p/44",
                "tile/1/000.p/1",
                "tile/entries/000",
                "tile/entries/001.p/44"
            ]
        );
        assert_eq!(files[3].1.len(), 256 * 34);
        // From 256 on: the first level-0 tile and bundle were already whole.
        let newer = tile_files(&c, 256, 300).unwrap();
        let names: Vec<&str> = newer.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["tile/0/001.p/44", "tile/1/000.p/1", "tile/entries/001.p/44"]
        );
        assert_eq!(
            tile_files(&c, 300, 300).unwrap().len(),
            3,
            "the partial ones at the edge"
        );
    }

    #[test]
    fn tile_indexes_are_written_in_groups_of_three_digits() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(7), "007");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(index_path(1_234_067), "x001/x234/067");
    }
}
