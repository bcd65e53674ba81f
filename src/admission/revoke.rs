//! `revoke REF --reason TEXT`: a revocation is a later event; nothing is edited.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{Revocable, RevocationId};
use crate::ledger::events::{Body, RevocationRec};
use crate::ledger::query::Node;

#[derive(Serialize)]
pub(crate) struct RevokeOut {
    pub revoked: Vec<RevocationRec>,
}

/// Revokes what `r` names: an admission, a model admission, or every live admission of
/// an object.
pub(crate) fn revoke(home: &mut Home, r: &str, reason: &str) -> Result<RevokeOut> {
    if reason.trim().is_empty() {
        return Err(Error::bad_input(
            "--reason is empty",
            "say why the admission is revoked; the reason is recorded",
        ));
    }
    let targets: Vec<Revocable> = match home.resolve(r)? {
        Node::Admission(id) => vec![Revocable::Admission(id)],
        Node::ModelAdmission(id) => vec![Revocable::Model(id)],
        Node::Object(obj) => home
            .ledger
            .admissions_of_object(&obj)?
            .into_iter()
            .map(|v| Revocable::Admission(v.admission.id))
            .collect(),
        other => {
            return Err(Error::bad_input(
                format!("{r} names {}, which cannot be revoked", other.label()),
                "give an admission (name or id), a model admission, or an admitted digest",
            ))
        }
    };
    let mut recs = Vec::new();
    for t in targets {
        if home.ledger.revocation_of(&t)?.is_none() {
            recs.push(RevocationRec {
                id: RevocationId::new(),
                target: t,
                reason: reason.to_string(),
            });
        }
    }
    if recs.is_empty() {
        return Err(Error::bad_input(
            format!("{r} has no admission left to revoke (already revoked or never admitted)"),
            "see `cto-ledger show` for its admissions",
        ));
    }
    home.commit(recs.iter().cloned().map(Body::Revocation).collect())?;
    Ok(RevokeOut { revoked: recs })
}
