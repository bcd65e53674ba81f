//! `cto-ledger revoke REF --reason TEXT`: a later event; nothing is edited.

use std::io::Write;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::{Error, Result};
use crate::id::{Revocable, RevocationId};
use crate::ledger::events::{Body, RevocationRec};
use crate::ledger::query::Node;
use crate::ledger::Mode;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(value_name = "REF")]
    target: String,
    #[arg(long)]
    reason: String,
}

#[derive(Serialize)]
pub(crate) struct RevokeOut {
    revoked: Vec<RevocationRec>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    if a.reason.trim().is_empty() {
        return Err(Error::bad_input(
            "--reason is empty",
            "say why the admission is revoked; the reason is recorded",
        ));
    }
    let mut home = cx.open(Mode::ReadWrite)?;
    let r = &a.target;
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
                reason: a.reason.clone(),
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
    Ok(Output::doc(RevokeOut { revoked: recs }, text))
}

fn text(w: &mut dyn Write, r: &RevokeOut) -> R {
    for v in &r.revoked {
        writeln!(w, "revoked {} ({}): {}", v.target, v.id, v.reason)?;
    }
    Ok(())
}
