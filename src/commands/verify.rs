//! `cto-ledger verify PATH|DIGEST`: exit 0 only if that exact digest is admitted and not revoked.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{text::R, Context, Output};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{DigestPrefix, ObjectId, Sha256Digest};
use crate::ledger::query::Node;
use crate::ledger::{AdmissionView, Mode};
use crate::store::hash_file;

#[derive(clap::Args)]
pub(crate) struct Args {
    target: String,
}

#[derive(Serialize)]
pub(crate) struct VerifyOut {
    admitted: bool,
    input: String,
    object: ObjectId,
    sha256: Option<Sha256Digest>,
    size: Option<u64>,
    admissions: Vec<AdmissionView>,
    revoked: Vec<AdmissionView>,
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

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let out = match subject(&home, &a.target)? {
        Subject::UnknownSha256(sha256) => VerifyOut {
            admitted: false,
            input: a.target,
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
                input: a.target,
                object,
                sha256,
                size,
                admissions,
                revoked,
            }
        }
    };
    let admitted = out.admitted;
    Ok(Output::doc(out, text).negative_unless(admitted))
}

fn text(w: &mut dyn Write, r: &VerifyOut) -> R {
    let verdict = if r.admitted {
        "ADMITTED"
    } else {
        "NOT ADMITTED"
    };
    writeln!(w, "{verdict} {}", r.input)?;
    if let Some(s) = &r.sha256 {
        writeln!(w, "  {s}")?;
    }
    writeln!(w, "  {}", r.object)?;
    for v in &r.admissions {
        let a = &v.admission;
        writeln!(
            w,
            "  admission {} name {} pin {} commit {} source {} ({})",
            a.id,
            a.name,
            a.pin.as_deref().unwrap_or(""),
            a.commit_id.as_ref().map(|c| c.as_str()).unwrap_or(""),
            v.url.as_deref().or(v.source_path.as_deref()).unwrap_or("-"),
            a.time
        )?;
    }
    for v in &r.revoked {
        let reason = v
            .revocation
            .as_ref()
            .map(|r| r.reason.as_str())
            .unwrap_or("");
        writeln!(
            w,
            "  revoked admission {} ({}): {reason}",
            v.admission.id, v.admission.name
        )?;
    }
    Ok(())
}
