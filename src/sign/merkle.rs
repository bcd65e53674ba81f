//! The Merkle tree over the journal, as RFC 9162 (Certificate Transparency v2) defines
//! it: leaf `i` is `SHA-256(0x00 || entry hash of event i+1)`, an interior node is
//! `SHA-256(0x01 || left || right)`, and a tree of `n` leaves splits at the largest
//! power of two below `n`. Inclusion and consistency proofs are generated and checked
//! as sections 2.1.3 and 2.1.4 describe.

use sha2::{Digest as _, Sha256};

pub(crate) type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`; the journal's leaves hash an event's 32-byte entry hash.
/// `KEY N` with N a decimal without leading zeroes (the proof and witness text formats).
pub(crate) fn number_line(line: Option<&str>, key: &str) -> Option<u64> {
    line?
        .strip_prefix(key)?
        .strip_prefix(' ')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter(|n| *n == "0" || !n.starts_with('0'))?
        .parse()
        .ok()
}

/// Proof lines, one base64 SHA-256 hash each.
pub(crate) fn hash_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> std::result::Result<Vec<Hash>, String> {
    use base64::Engine as _;
    lines
        .map(|l| {
            base64::engine::general_purpose::STANDARD
                .decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("proof line {l:?} is not a base64 SHA-256 hash"))
        })
        .collect()
}

pub(crate) fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub(crate) fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root over `leaves` (leaf hashes), computed level by level in O(n) time.
pub(crate) fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        // Pairing left to right and carrying an odd last node up unchanged gives the
        // same tree as RFC 9162's split at the largest power of two.
        let next = level
            .chunks(2)
            .map(|c| match c {
                [l, r] => node_hash(l, r),
                [one] => *one,
                _ => unreachable!(),
            })
            .collect();
        level = next;
    }
    level[0]
}

/// Where a proof's hashes come from: the root of any subtree `[lo, hi)` of leaves that
/// RFC 9162's recursion asks for (a complete, aligned subtree, or one at the right edge).
/// A slice of leaf hashes is one; the ledger's tiles are another, read in O(log n).
pub(crate) trait Subtrees {
    fn range(&self, lo: usize, hi: usize) -> crate::error::Result<Hash>;
}

impl Subtrees for [Hash] {
    fn range(&self, lo: usize, hi: usize) -> crate::error::Result<Hash> {
        Ok(root(&self[lo..hi]))
    }
}

/// The audit path for leaf `index` in the tree of the first `leaves.len()` leaves
/// (RFC 9162 2.1.3.1), leaf side first.
#[cfg(test)]
pub(crate) fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    assert!(index < leaves.len(), "leaf {index} is outside the tree");
    inclusion_proof_in(leaves, leaves.len(), index).expect("a slice always answers")
}

/// The same, for the tree of `size` leaves of `tree`.
pub(crate) fn inclusion_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    size: usize,
    index: usize,
) -> crate::error::Result<Vec<Hash>> {
    assert!(index < size, "leaf {index} is outside the tree");
    let mut path = Vec::new();
    inclusion_into(tree, 0, size, index, &mut path)?;
    Ok(path)
}

fn inclusion_into<T: Subtrees + ?Sized>(
    tree: &T,
    lo: usize,
    hi: usize,
    m: usize,
    path: &mut Vec<Hash>,
) -> crate::error::Result<()> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        inclusion_into(tree, lo, lo + k, m, path)?;
        path.push(tree.range(lo + k, hi)?);
    } else {
        inclusion_into(tree, lo + k, hi, m - k, path)?;
        path.push(tree.range(lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `old` leaves and all of
/// `leaves` (RFC 9162 2.1.4.1). Empty when `old` is 0 or equals the size.
#[cfg(test)]
pub(crate) fn consistency_proof(leaves: &[Hash], old: usize) -> Vec<Hash> {
    assert!(old <= leaves.len(), "old size {old} is past the tree");
    consistency_proof_in(leaves, leaves.len(), old).expect("a slice always answers")
}

/// The same, between the trees of `old` and `size` leaves of `tree`.
pub(crate) fn consistency_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    size: usize,
    old: usize,
) -> crate::error::Result<Vec<Hash>> {
    assert!(old <= size, "old size {old} is past the tree");
    let mut path = Vec::new();
    if old > 0 && old < size {
        subproof(tree, old, 0, size, true, &mut path)?;
    }
    Ok(path)
}

fn subproof<T: Subtrees + ?Sized>(
    tree: &T,
    m: usize,
    lo: usize,
    hi: usize,
    complete: bool,
    path: &mut Vec<Hash>,
) -> crate::error::Result<()> {
    let n = hi - lo;
    if m == n {
        if !complete {
            path.push(tree.range(lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(tree, m, lo, lo + k, complete, path)?;
        path.push(tree.range(lo + k, hi)?);
    } else {
        subproof(tree, m - k, lo + k, hi, false, path)?;
        path.push(tree.range(lo, lo + k)?);
    }
    Ok(())
}

/// The root of `[lo, hi)` from the roots of complete aligned subtrees (`complete`):
/// RFC 9162's split, recursing only down the right edge.
pub(crate) fn range_from(
    lo: usize,
    hi: usize,
    complete: &dyn Fn(usize, u32) -> crate::error::Result<Hash>,
) -> crate::error::Result<Hash> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return complete(lo, n.trailing_zeros());
    }
    let k = split(n);
    Ok(node_hash(
        &range_from(lo, lo + k, complete)?,
        &range_from(lo + k, hi, complete)?,
    ))
}

/// Checks an inclusion proof (RFC 9162 2.1.3.2): that `leaf` is leaf `index` of the
/// tree of `size` leaves whose root is `root`.
pub(crate) fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), String> {
    if index >= size {
        return Err(format!(
            "leaf index {index} is not inside a tree of {size} leaves"
        ));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err("the proof has more hashes than the tree has levels".into());
        }
        if fnode % 2 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode % 2 == 0 {
                while fnode % 2 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err("the proof has fewer hashes than the tree has levels".into());
    }
    if r != *root {
        return Err(format!(
            "the proof leads to root {} but the checkpoint's root is {}",
            hex::encode(r),
            hex::encode(root)
        ));
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 2.1.4.2): that the tree of `old` leaves with
/// root `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
pub(crate) fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), String> {
    if old > new {
        return Err(format!("old size {old} is larger than new size {new}"));
    }
    if old == new {
        return match (path.is_empty(), old_root == new_root) {
            (true, true) => Ok(()),
            (false, _) => Err("a proof between equal sizes must be empty".into()),
            (true, false) => Err(format!(
                "both trees have {old} leaves but their roots differ"
            )),
        };
    }
    if old == 0 {
        return if path.is_empty() {
            Ok(())
        } else {
            Err("a proof from the empty tree must be empty".into())
        };
    }
    if path.is_empty() {
        return Err("the proof is empty".into());
    }
    let mut path = path.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode % 2 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err("the proof has more hashes than the trees need".into());
        }
        if fnode % 2 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode % 2 == 0 {
                while fnode % 2 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err("the proof has fewer hashes than the trees need".into());
    }
    if fr != *old_root {
        return Err(format!(
            "the proof leads to old root {} but the old checkpoint's root is {}",
            hex::encode(fr),
            hex::encode(old_root)
        ));
    }
    if sr != *new_root {
        return Err(format!(
            "the proof leads to new root {} but the new checkpoint's root is {}",
            hex::encode(sr),
            hex::encode(new_root)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's recursive definition, word for word: the reference the fast root is
    /// checked against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32)
            .map(|i| leaf_hash(&Sha256::digest(i.to_le_bytes())))
            .collect()
    }

    #[test]
    fn roots_proofs_and_their_checks_agree_for_every_size_up_to_70() {
        for n in 0..70 {
            let l = leaves(n);
            let r = root(&l);
            assert_eq!(r, mth(&l), "root of {n}");
            for i in 0..n {
                let p = inclusion_proof(&l, i);
                verify_inclusion(i as u64, n as u64, &l[i], &p, &r).unwrap();
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_inclusion(i as u64, n as u64, &l[i], &bad, &r).is_err());
                    let _ = first;
                }
                if n > 1 {
                    assert!(
                        verify_inclusion(((i + 1) % n) as u64, n as u64, &l[i], &p, &r).is_err()
                    );
                }
            }
            for m in 0..=n {
                let p = consistency_proof(&l, m);
                let old = mth(&l[..m]);
                verify_consistency(m as u64, n as u64, &old, &r, &p).unwrap();
                if 0 < m && m < n {
                    let mut bad_old = old;
                    bad_old[5] ^= 1;
                    assert!(verify_consistency(m as u64, n as u64, &bad_old, &r, &p).is_err());
                    let mut bad = p.clone();
                    let last = bad.len() - 1;
                    bad[last][0] ^= 1;
                    assert!(verify_consistency(m as u64, n as u64, &old, &r, &bad).is_err());
                }
            }
        }
    }

    fn h(hex: &str) -> Hash {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).unwrap();
        out
    }

    /// transparency-dev/merkle's testonly/constants.go: the eight leaves' hashes and the
    /// root of every tree of them, and its testdata proofs (RFC 6962 and 9162 agree).
    const LEAVES: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn hashes_and_roots_are_the_reference_known_answers() {
        // rfc6962_test.go: HashLeaf("") and HashLeaf("L123456").
        assert_eq!(leaf_hash(b""), h(LEAVES[0]));
        assert_eq!(
            leaf_hash(b"L123456"),
            h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
        );
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let l: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(l, LEAVES.map(h));
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(root(&l[..n]), h(want), "root of {n}");
        }
    }

    fn reference_leaves() -> Vec<Hash> {
        LEAVES.iter().map(|x| h(x)).collect()
    }

    #[test]
    fn inclusion_proofs_are_the_reference_known_answers() {
        let l = reference_leaves();
        let inclusion: [(usize, usize, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    LEAVES[1],
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    LEAVES[4],
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, &[ROOTS[2]]),
            (
                1,
                5,
                &[
                    LEAVES[0],
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    LEAVES[4],
                ],
            ),
        ];
        for (i, n, want) in inclusion {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            assert_eq!(inclusion_proof(&l[..n], i), want, "inclusion of {i} in {n}");
            verify_inclusion(i as u64, n as u64, &l[i], &want, &h(ROOTS[n])).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_are_the_reference_known_answers() {
        let l = reference_leaves();
        let consistency: [(usize, usize, &[&str]); 4] = [
            (
                1,
                8,
                &[
                    LEAVES[1],
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    LEAVES[4],
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    LEAVES[6],
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (m, n, want) in consistency {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            assert_eq!(
                consistency_proof(&l[..n], m),
                want,
                "consistency {m} to {n}"
            );
            verify_consistency(m as u64, n as u64, &h(ROOTS[m]), &h(ROOTS[n]), &want).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        /// Random tree sizes up to 5,000: the fast root is RFC 9162's, and every proof
        /// generated for a random leaf and a random older size verifies.
        #[test]
        fn random_trees_prove_and_verify(n in 1usize..5000, i in 0usize..5000, m in 0usize..5000) {
            let l = leaves(n);
            let r = root(&l);
            proptest::prop_assert_eq!(r, mth(&l));
            let i = i % n;
            let p = inclusion_proof(&l, i);
            proptest::prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &r).is_ok());
            let m = m % (n + 1);
            let c = consistency_proof(&l, m);
            proptest::prop_assert!(verify_consistency(m as u64, n as u64, &mth(&l[..m]), &r, &c).is_ok());
        }
    }
}
