//! The journal's chain, row by row: each row's own hash, and its link to the row before.

use super::events::Event;
use super::{chain_hash, Head, JournalRow};

/// Walks a journal in order, checking each row against the one before it: the one chain
/// walk that the local audit, the remote audit and `pull` share.
pub(crate) struct ChainCheck {
    expected: i64,
    prev: String,
}

impl ChainCheck {
    /// A walk from the first event.
    pub(crate) fn new() -> ChainCheck {
        ChainCheck::after(&Head::EMPTY)
    }

    /// A walk that continues after `head`.
    pub(crate) fn after(head: &Head) -> ChainCheck {
        ChainCheck {
            expected: head.seq as i64 + 1,
            prev: head.hash.to_string(),
        }
    }

    /// What is wrong with the next row (nothing when it links), then moves past it.
    pub(crate) fn next(&mut self, row: &JournalRow) -> Vec<String> {
        let bad = check_row(row, self.expected, &self.prev);
        self.expected += 1;
        self.prev = row.hash.clone();
        bad
    }

    /// Moves past a row that could not be read: the next one cannot be shown to link.
    pub(crate) fn skip(&mut self) {
        self.expected += 1;
        self.prev.clear();
    }
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck::new()
    }
}

/// Checks one journal row against its predecessor's hash; returns what is wrong.
pub(crate) fn check_row(row: &JournalRow, expected_seq: i64, prev_hash: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if row.seq != expected_seq {
        bad.push(format!(
            "sequence gap: expected event {expected_seq}, found {}",
            row.seq
        ));
    }
    if row.prev_hash != prev_hash {
        bad.push(format!(
            "event {}: prev_hash {} does not match the previous event's hash {}",
            row.seq,
            short(&row.prev_hash),
            short(prev_hash)
        ));
    }
    let computed = chain_hash(&row.prev_hash, row.event.as_bytes()).to_string();
    if computed != row.hash {
        bad.push(format!(
            "event {}: stored hash {} but its bytes hash to {} (the event was altered)",
            row.seq,
            short(&row.hash),
            short(&computed)
        ));
    }
    match serde_json::from_str::<Event>(&row.event) {
        Ok(e) => {
            if serde_jcs::to_vec(&e).ok().as_deref() != Some(row.event.as_bytes()) {
                bad.push(format!("event {}: not in canonical form", row.seq));
            }
            if e.seq as i64 != row.seq || e.body.kind() != row.kind || e.time != row.time {
                bad.push(format!(
                    "event {}: row columns disagree with the event it holds",
                    row.seq
                ));
            }
        }
        Err(err) => bad.push(format!("event {}: cannot be decoded: {err}", row.seq)),
    }
    bad
}

fn short(h: &str) -> String {
    h.chars().take(16).collect()
}
