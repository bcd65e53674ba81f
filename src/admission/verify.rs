//! `verify PATH|DIGEST`: whether these exact bytes are admitted and not revoked, and by
//! which admissions (pin, commit, source).

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{DigestPrefix, ObjectId, Sha256Digest};
use crate::ledger::query::Node;
use crate::ledger::AdmissionView;
use crate::store::hash_file;

#[derive(Serialize)]
pub(crate) struct VerifyOut {
    pub admitted: bool,
    pub input: String,
    pub object: ObjectId,
    pub sha256: Option<Sha256Digest>,
    pub size: Option<u64>,
    pub admissions: Vec<AdmissionView>,
    pub revoked: Vec<AdmissionView>,
}

/// The bytes a verify asks about: (object, sha256, size), or a definite "never seen".
enum Subject {
    Known(ObjectId, Option<Sha256Digest>, Option<u64>),
    UnknownSha256(Option<Sha256Digest>),
}

fn subject(home: &Home, target: &str) -> Result<Subject> {
    let p = Path::new(target);
    if p.exists() {
        if p.is_dir() {
            return Err(Error::bad_input(
                format!("{target} is a directory"),
                "verify takes one file or a digest",
            ));
        }
        let m = hash_file(p)?;
        return Ok(Subject::Known(m.id, Some(m.sha256), Some(m.size)));
    }
    let Some(dp) = DigestPrefix::parse(target, 7) else {
        return Err(Error::bad_input(
            format!("{target} is neither an existing file nor a digest"),
            "give a file path, sha256:<hex>, blake3:<hex> or a hex prefix of 7+ digits",
        ));
    };
    let full = dp.hex.len() == 64;
    match home.resolve(target) {
        Ok(Node::Object(id)) => {
            let m = home.ledger.object_meta(&id)?;
            Ok(Subject::Known(id, m.map(|m| m.sha256), m.map(|m| m.size)))
        }
        Ok(other) => Err(Error::bad_input(
            format!("{target} names {}, not a file digest", other.label()),
            "give a file path or a file's digest",
        )),
        // A full digest the ledger has never seen is a clear negative verdict.
        Err(Error::NotFound { .. }) if full && dp.algo != Some("sha256") => Ok(Subject::Known(
            ObjectId::parse(&dp.hex).expect("64 hex"),
            None,
            None,
        )),
        Err(Error::NotFound { .. }) if full => {
            Ok(Subject::UnknownSha256(Sha256Digest::parse(&dp.hex).ok()))
        }
        Err(e) => Err(e),
    }
}

/// What the ledger says of the bytes `target` names (a file, or a digest).
pub(crate) fn verify(home: &Home, target: &str) -> Result<VerifyOut> {
    Ok(match subject(home, target)? {
        Subject::UnknownSha256(sha256) => VerifyOut {
            admitted: false,
            input: target.to_string(),
            object: ObjectId([0; 32]),
            sha256,
            size: None,
            admissions: vec![],
            revoked: vec![],
        },
        Subject::Known(object, sha256, size) => {
            let (admissions, revoked): (Vec<_>, Vec<_>) = home
                .ledger
                .admissions_of_object(&object)?
                .into_iter()
                .partition(|a| a.revocation.is_none());
            VerifyOut {
                admitted: !admissions.is_empty(),
                input: target.to_string(),
                object,
                sha256,
                size,
                admissions,
                revoked,
            }
        }
    })
}
