//! `audit`'s look at the store itself: names that are not objects, temp files, objects
//! no event names (re-hashed too), and packed copies that are not what they are filed as.

use std::collections::BTreeSet;

use super::{AuditCheck, AuditOut, Finding};
use crate::error::Result;
use crate::home::Home;
use crate::id::ObjectId;

/// The store holds nothing that pretends to be an object.
pub(super) fn check_store(home: &Home, known: &BTreeSet<String>, out: &mut AuditOut) -> Result<()> {
    let listing = home.store.backend().list()?;
    for (name, why) in listing.anomalies {
        out.findings
            .push(Finding::new(AuditCheck::Store, name, why));
    }
    if listing.temps > 0 {
        out.notes.push(format!("{} temporary file(s) beside objects (being written, or left by a killed command; `cto-ledger recover` removes old ones)", listing.temps));
    }
    let strays: Vec<&ObjectId> = listing
        .objects
        .iter()
        .filter(|id| !known.contains(id.to_string().as_str()))
        .collect();
    // Objects no event names are re-hashed too (every object in every pack): a damaged
    // one is named, though nothing depends on it yet.
    for id in &strays {
        match home.store.rehash(id) {
            Ok(Some(m)) if m.id == **id => {}
            Ok(None) => {}
            Ok(Some(m)) => out.findings.push(Finding::new(
                AuditCheck::Store,
                home.store.backend().locate(id),
                format!(
                    "object {id}, named by no event, is damaged: its bytes hash to {}",
                    m.id
                ),
            )),
            Err(e) => out.findings.push(Finding::new(
                AuditCheck::Store,
                home.store.backend().locate(id),
                format!("object {id}, named by no event, cannot be read: {e}"),
            )),
        }
    }
    for (at, why) in home.store.backend().damaged_copies()? {
        out.findings.push(Finding::new(AuditCheck::Store, at, why));
    }
    let stray = strays.len();
    if stray > 0 {
        out.notes.push(format!("{stray} object(s) in the store are named by no event (left by an interrupted or refused-before-commit command); harmless"));
    }
    Ok(())
}
