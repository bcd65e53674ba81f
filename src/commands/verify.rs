//! `cto-ledger verify PATH|DIGEST [--policy N]...`: exit 0 only if that exact digest is
//! admitted and not revoked, and (with `--policy`) one of its admissions, as the ledger
//! knows it now, is allowed by every policy named.

use std::io::Write;

use serde::Serialize;

use super::{text::shown, text::R, Context, Output};
use crate::admission::{self, VerifyOut};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{AdmissionId, Sha256Digest};
use crate::ledger::Mode;
use crate::policy::engine::Source;
use crate::state::PolicyResult;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A file, or a digest (sha256:, blake3: or a hex prefix of 7+ digits)
    target: String,
    /// A policy in force (by name) or a .rego file that must also allow one of its
    /// admissions (evaluated over the admission's input as the ledger knows it now);
    /// repeat for several
    #[arg(long, value_name = "NAME|FILE")]
    policy: Vec<String>,
}

#[derive(Serialize)]
struct Verified {
    #[serde(flatten)]
    out: VerifyOut,
    /// Each admission's decisions by the policies named (absent without `--policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<Checked>,
    /// Admitted, and (with `--policy`) one admission allowed by every policy named.
    verified: bool,
}

#[derive(Serialize)]
struct Checked {
    admission: AdmissionId,
    policy: String,
    sha256: Sha256Digest,
    result: PolicyResult,
    messages: Vec<String>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    // Every policy named is read before anything is judged: a typo is an error, not a denial.
    let sources = a
        .policy
        .iter()
        .map(|p| named_policy(&home, p))
        .collect::<Result<Vec<_>>>()?;
    let out = admission::verify(&home, &a.target)?;
    let mut policies = Vec::new();
    let mut allowed_by_one = sources.is_empty();
    for v in &out.admissions {
        let id = &v.admission.id;
        let input = crate::policy::input::admission_now(&home.ledger, id)?;
        let plain: Vec<Source> = sources.iter().map(|(s, ..)| s.clone()).collect();
        let decided = crate::policy::evaluate(&plain, &input);
        allowed_by_one |= decided.iter().all(|(r, _)| *r == PolicyResult::Allowed);
        for ((_, name, sha256), (result, messages)) in sources.iter().zip(decided) {
            policies.push(Checked {
                admission: id.clone(),
                policy: name.clone(),
                sha256: *sha256,
                result,
                messages,
            });
        }
    }
    let verified = out.admitted && allowed_by_one;
    let v = Verified {
        out,
        policies,
        verified,
    };
    Ok(Output::doc(v, text).negative_unless(verified))
}

/// `--policy`: a policy in force by name, else a .rego file; with the name to show.
fn named_policy(home: &Home, p: &str) -> Result<(Source, String, Sha256Digest)> {
    let Some(source) = crate::policy::in_force_or_file(home, p)? else {
        return Err(Error::bad_input(
            format!(
                "--policy {}: no policy of that name is in force, and it is not a file",
                shown(p)
            ),
            "name one from `cto-ledger policy list`, or give a .rego file",
        ));
    };
    let sha256 = Sha256Digest::of(source.rego.as_bytes());
    Ok((source, p.to_string(), sha256))
}

fn text(w: &mut dyn Write, v: &Verified) -> R {
    let r = &v.out;
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
    for c in &v.policies {
        let messages = match c.messages.is_empty() {
            true => String::new(),
            false => format!(": {}", shown(&c.messages.join("; "))),
        };
        writeln!(
            w,
            "  policy {} {} admission {}{messages}",
            shown(&c.policy),
            c.result,
            c.admission
        )?;
    }
    if r.admitted && !v.verified {
        writeln!(
            w,
            "NOT VERIFIED: no admission of it is allowed by every policy named"
        )?;
    }
    Ok(())
}
