//! Where a rebuilt output differs from the recorded one: sizes, the first and last
//! differing offsets, how many bytes differ, and hints for the usual causes (an embedded
//! build path, a time stamp). Streams both: a 115 MB binary is never held in memory.

use std::io::{self, Read, Write};

use crate::ledger::events::DifferenceRec;

/// Bytes kept before and after the first difference, to describe it.
const BEFORE: usize = 32;
const AFTER: usize = 96;

/// A `Write` sink for the original's bytes that compares them with `rebuilt` as they come,
/// and (when asked) looks for each side's build path in the same pass.
pub(super) struct Comparer<R: Read> {
    rebuilt: R,
    /// Searches for the original's and the rebuild's build paths.
    paths: Option<(Contains, Contains)>,
    offset: u64,
    rebuilt_len: u64,
    first: Option<u64>,
    last: Option<u64>,
    differing: u64,
    /// The last BEFORE bytes of each side, until the first difference; then the window.
    window: (Vec<u8>, Vec<u8>),
    window_start: u64,
    buf: Vec<u8>,
}

impl<R: Read> Comparer<R> {
    pub(super) fn new(rebuilt: R) -> Self {
        Comparer {
            rebuilt,
            paths: None,
            offset: 0,
            rebuilt_len: 0,
            first: None,
            last: None,
            differing: 0,
            window: (Vec::new(), Vec::new()),
            window_start: 0,
            buf: Vec::new(),
        }
    }

    /// Also notes whether the original holds `original_path` or the rebuild `rebuilt_path`.
    pub(super) fn looking_for(mut self, original_path: &[u8], rebuilt_path: &[u8]) -> Self {
        self.paths = Some((Contains::new(original_path), Contains::new(rebuilt_path)));
        self
    }

    fn search(&mut self, o: &[u8], r: &[u8]) {
        if let Some((in_original, in_rebuilt)) = &mut self.paths {
            in_original.feed(o);
            in_rebuilt.feed(r);
        }
    }

    /// Before the first difference: the last BEFORE bytes of each side.
    fn before(&mut self, o: &[u8], r: &[u8]) {
        let n = o.len().min(r.len());
        for (side, bytes) in [(&mut self.window.0, &o[..n]), (&mut self.window.1, &r[..n])] {
            side.extend_from_slice(bytes);
            let excess = side.len().saturating_sub(BEFORE);
            side.drain(..excess);
        }
    }

    /// From the first difference on: up to AFTER bytes of each side.
    fn after(&mut self, o: &[u8], r: &[u8]) {
        let cap = BEFORE + AFTER;
        for (side, bytes) in [(&mut self.window.0, o), (&mut self.window.1, r)] {
            let room = cap.saturating_sub(side.len()).min(bytes.len());
            side.extend_from_slice(&bytes[..room]);
        }
    }

    /// Reads the rest of the rebuilt side and describes the difference, if there is one
    /// (its `hints` left for the caller, who has the window and the path searches).
    pub(super) fn finish(mut self) -> io::Result<Option<Located>> {
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = self.rebuilt.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            self.rebuilt_len += n as u64;
            self.search(&[], &chunk[..n]);
        }
        let (o_len, r_len) = (self.offset, self.rebuilt_len);
        let first = match self.first {
            Some(f) => f,
            None if o_len != r_len => o_len.min(r_len),
            None => return Ok(None),
        };
        let difference = DifferenceRec {
            original_size: o_len,
            rebuilt_size: r_len,
            first_difference_offset: first,
            last_difference_offset: self.last,
            differing_bytes: self.differing + o_len.abs_diff(r_len),
            hints: Vec::new(),
        };
        let window = Window {
            start: self.window_start,
            original: self.window.0,
            rebuilt: self.window.1,
            first,
            last: self.last,
        };
        let path_found = self.paths.is_some_and(|(o, r)| o.found || r.found);
        Ok(Some(Located {
            difference,
            window,
            path_found,
        }))
    }
}

/// A difference, the bytes around it, and whether a build path was found in an output.
pub(super) struct Located {
    pub difference: DifferenceRec,
    pub window: Window,
    pub path_found: bool,
}

impl<R: Read> Write for Comparer<R> {
    fn write(&mut self, o: &[u8]) -> io::Result<usize> {
        let mut r = std::mem::take(&mut self.buf);
        r.resize(o.len(), 0);
        let mut got = 0;
        while got < o.len() {
            match self.rebuilt.read(&mut r[got..])? {
                0 => break,
                n => got += n,
            }
        }
        self.rebuilt_len += got as u64;
        self.search(o, &r[..got]);
        let seen_before = self.first.is_some();
        for i in (0..got).filter(|&i| o[i] != r[i]) {
            let at = self.offset + i as u64;
            if self.first.is_none() {
                self.before(&o[..i], &r[..i]);
                self.first = Some(at);
                self.window_start = at - self.window.0.len() as u64;
                self.after(&o[i..], &r[i..got]);
            }
            self.last = Some(at);
            self.differing += 1;
        }
        if seen_before {
            self.after(o, &r[..got]);
        } else if self.first.is_none() {
            self.before(o, &r[..got]);
            self.window_start = self.offset + got as u64 - self.window.0.len() as u64;
        }
        self.buf = r;
        self.offset += o.len() as u64;
        Ok(o.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes around the first difference, both sides.
pub(super) struct Window {
    /// The offset of `original[0]` and `rebuilt[0]`.
    pub start: u64,
    pub original: Vec<u8>,
    pub rebuilt: Vec<u8>,
    pub first: u64,
    pub last: Option<u64>,
}

/// Characters a printed date or time is made of.
fn timeish(b: u8) -> bool {
    b.is_ascii_digit() || b":-T.Z/ +".contains(&b)
}

/// Plausible Unix times: 2000-01-01 to 2100-01-01, in seconds, milliseconds or nanoseconds.
fn unix_time(v: u64) -> bool {
    let (lo, hi) = (946_684_800u64, 4_102_444_800u64);
    (lo..hi).contains(&v)
        || (lo * 1000..hi * 1000).contains(&v)
        || (lo * 1_000_000_000..hi.saturating_mul(1_000_000_000)).contains(&v)
}

/// "Looks like a time stamp": the differing span is short, and on both sides it is
/// printed time (a run of digits and separators with at least 6 digits) or an aligned
/// little-endian integer that is a plausible Unix time.
pub(super) fn timestamp_hint(w: &Window) -> Option<String> {
    let last = w.last.unwrap_or(w.first);
    if last - w.first > 40 {
        return None;
    }
    let rel = (w.first - w.start) as usize;
    let run = |side: &[u8]| -> Option<(usize, usize)> {
        if !side.get(rel).copied().is_some_and(timeish) {
            return None;
        }
        let s = (0..rel)
            .rev()
            .take_while(|&i| timeish(side[i]))
            .last()
            .unwrap_or(rel);
        let e = (rel..side.len()).take_while(|&i| timeish(side[i])).last()? + 1;
        // From the first digit: a leading separator belongs to the text around it.
        let s = (s..e).find(|&i| side[i].is_ascii_digit())?;
        let digits = side[s..e].iter().filter(|b| b.is_ascii_digit()).count();
        (digits >= 6 && w.start + e as u64 > last).then_some((s, e))
    };
    if let (Some((s, e)), Some(_)) = (run(&w.original), run(&w.rebuilt)) {
        return Some(format!(
            "bytes {}..{} look like a printed time stamp (`{}` here, `{}` in the rebuild)",
            w.start + s as u64,
            w.start + e as u64,
            String::from_utf8_lossy(&w.original[s..e]),
            String::from_utf8_lossy(&w.rebuilt[s..e.min(w.rebuilt.len())]),
        ));
    }
    for width in [8usize, 4] {
        let at = (w.first as usize / width) * width;
        let Some(i) = at.checked_sub(w.start as usize) else {
            continue;
        };
        let read = |side: &[u8]| {
            side.get(i..i + width).map(|b| {
                let mut x = [0u8; 8];
                x[..width].copy_from_slice(b);
                u64::from_le_bytes(x)
            })
        };
        if let (Some(a), Some(b)) = (read(&w.original), read(&w.rebuilt)) {
            if unix_time(a) && unix_time(b) && (w.last.unwrap_or(w.first) as usize) < at + width {
                return Some(format!("bytes {at}..{} hold a {}-byte integer that reads as a Unix time on both sides ({a} and {b})", at + width, width));
            }
        }
    }
    None
}

/// Notes whether `needle` occurs in the bytes fed to it, across feeds.
pub(super) struct Contains {
    needle: Vec<u8>,
    carry: Vec<u8>,
    pub found: bool,
}

impl Contains {
    pub(super) fn new(needle: &[u8]) -> Contains {
        Contains {
            needle: needle.to_vec(),
            carry: Vec::new(),
            found: false,
        }
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) {
        if self.found || self.needle.is_empty() {
            return;
        }
        self.carry.extend_from_slice(bytes);
        let n = self.needle.len();
        self.found = self.carry.windows(n).any(|w| w == self.needle.as_slice());
        let keep = self.carry.len().min(n - 1);
        self.carry.drain(..self.carry.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(a: &[u8], b: &[u8]) -> Option<DifferenceRec> {
        let mut c = Comparer::new(b);
        // Feed in odd pieces, as a store would in chunks.
        for piece in a.chunks(7) {
            c.write_all(piece).unwrap();
        }
        c.finish().unwrap().map(|l| DifferenceRec {
            hints: timestamp_hint(&l.window).into_iter().collect(),
            ..l.difference
        })
    }

    #[test]
    fn equal_streams_have_no_difference_and_a_prefix_differs_at_its_end() {
        assert_eq!(diff(b"same bytes", b"same bytes"), None);
        let d = diff(b"abc", b"abcdef").unwrap();
        assert_eq!(
            (
                d.first_difference_offset,
                d.differing_bytes,
                d.original_size,
                d.rebuilt_size
            ),
            (3, 3, 3, 6)
        );
    }

    #[test]
    fn a_printed_time_is_located_and_named() {
        let a = b"built at 2026-11-26T05:49:26Z by ci\n".repeat(3);
        let mut b = a.clone();
        b[20..25].copy_from_slice(b"50:01");
        let d = diff(&a, &b).unwrap();
        assert_eq!(d.first_difference_offset, 20);
        assert_eq!(d.last_difference_offset, Some(24));
        assert_eq!(d.differing_bytes, 4);
        assert!(d.hints[0].contains("time stamp"), "{:?}", d.hints);
    }

    #[test]
    fn a_binary_unix_time_is_named_and_other_bytes_are_not() {
        let mut a = vec![0u8; 64];
        a[16..24].copy_from_slice(&1_795_000_000u64.to_le_bytes());
        let mut b = a.clone();
        b[16..24].copy_from_slice(&1_795_000_123u64.to_le_bytes());
        let d = diff(&a, &b).unwrap();
        assert!(
            d.hints.iter().any(|h| h.contains("Unix time")),
            "{:?}",
            d.hints
        );
        let mut c = a.clone();
        c[40] = 7;
        assert!(diff(&a, &c).unwrap().hints.is_empty());
    }

    #[test]
    fn contains_finds_a_needle_across_feed_edges() {
        let mut hay = vec![b'x'; 1000];
        hay.extend_from_slice(b"/tmp/build-path/node_modules");
        for needle in [&b"/tmp/build-path"[..], b"/elsewhere"] {
            let mut c = Contains::new(needle);
            for piece in hay.chunks(5) {
                c.feed(piece);
            }
            assert_eq!(c.found, needle == b"/tmp/build-path");
        }
    }

    #[test]
    fn the_comparing_pass_also_finds_build_paths_on_either_side() {
        let original = b"prefix /src/app/node_modules/x suffix".to_vec();
        let mut rebuilt = b"prefix /tmp/chk/node_modules/x suffix".to_vec();
        rebuilt.extend_from_slice(&[b'y'; 3000]); // read by finish, past the original's end
        for (o_path, r_path, found) in [
            (&b"/src/app"[..], &b"/nowhere"[..], true),
            (b"/nowhere", b"/tmp/chk", true),
            (b"/nowhere", b"/elsewhere", false),
        ] {
            let mut c = Comparer::new(&rebuilt[..]).looking_for(o_path, r_path);
            c.write_all(&original).unwrap();
            assert_eq!(c.finish().unwrap().unwrap().path_found, found);
        }
    }
}
