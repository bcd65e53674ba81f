//! Policies as code: Rego files, stored by digest and journaled (`policy add`), evaluated
//! over the provenance graph before an admission is recorded. Each evaluation is
//! evidence: the policy's digest, the input document (stored, by digest), the result and
//! the messages go into the event it decided.

pub(crate) mod engine;
pub(crate) mod input;
pub(crate) mod required;

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use std::path::Path;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::{ObjectId, Sha256Digest};
use crate::ledger::events::PolicyDecisionRec;
use crate::ledger::Ledger;
use crate::state::{PolicyPoint, PolicyResult};

/// A policy in force: each name's newest `policy` event, when it is not a removal.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PolicyRow {
    pub name: String,
    pub object: ObjectId,
    pub sha256: Sha256Digest,
    pub package: Option<String>,
    pub applies: Vec<PolicyPoint>,
    pub path: Option<String>,
    pub seq: u64,
    pub actor: String,
    pub time: String,
}

/// Points as a list for messages: `admit, run`.
pub(crate) fn points(p: &[PolicyPoint]) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

impl PolicyRow {
    pub(crate) fn applies_to(&self, p: PolicyPoint) -> bool {
        self.applies.contains(&p)
    }
}

/// The policies in force, by name.
pub(crate) fn in_force(l: &Ledger) -> Result<Vec<PolicyRow>> {
    let mut st = l
        .conn()
        .prepare_cached(
            "SELECT p.name, p.object, p.sha256, p.package, p.applies, p.path, p.seq, p.actor, p.time
             FROM policy_events p
             WHERE p.seq = (SELECT MAX(seq) FROM policy_events WHERE name = p.name)
               AND p.removed = 0 ORDER BY p.name",
        )
        .map_err(Error::sql("read policies"))?;
    let rows = st
        .query_map(params![], |r| {
            let applies: String = r.get(4)?;
            // Unreadable points must not quietly take a policy out of force.
            let applies = serde_json::from_str(&applies).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
            Ok(PolicyRow {
                name: r.get(0)?,
                object: r.get(1)?,
                sha256: r.get(2)?,
                package: r.get(3)?,
                applies,
                path: r.get(5)?,
                seq: r.get::<_, i64>(6)? as u64,
                actor: r.get(7)?,
                time: r.get(8)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(Error::sql("read policies"))?;
    Ok(rows)
}

/// A policy file's text: a regular file of at most 1 MiB of UTF-8.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    let bad = |why: String| {
        Error::bad_input(
            format!("policy file {}: {why}", path.display()),
            "give a Rego file (at most 1 MiB of UTF-8)",
        )
    };
    // Not followed: a link named `x.rego` in a hostile folder must not read (and echo
    // in a parse error) whatever it points at; opened without following, then checked.
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => bad("a symbolic link (symbolic links are not followed)".into()),
            _ => bad(e.to_string()),
        })?;
    let m = f.metadata().map_err(|e| bad(e.to_string()))?;
    if !m.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    f.take(engine::POLICY_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > engine::POLICY_MAX {
        return Err(bad(format!(
            "over the 1 MiB bound ({} bytes or more)",
            bytes.len()
        )));
    }
    String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))
}

/// A policy named on the command line: the one in force by that name (a file of the same
/// name in the current folder must not stand in for it), else the .rego file at that
/// path; `None` when it is neither.
pub(crate) fn in_force_or_file(home: &Home, p: &str) -> Result<Option<engine::Source>> {
    if let Some(r) = in_force(&home.ledger)?.into_iter().find(|r| r.name == p) {
        return source_of(home, &r).map(Some);
    }
    if !Path::new(p).is_file() {
        return Ok(None);
    }
    Ok(Some(engine::Source {
        origin: p.to_string(),
        rego: read_file(Path::new(p))?,
    }))
}

/// A policy's Rego, read back from the store (re-hashed on the way).
pub(crate) fn source_of(home: &Home, p: &PolicyRow) -> Result<engine::Source> {
    let bytes = home.store.get_verified(&p.object)?;
    let rego = String::from_utf8(bytes).map_err(|_| Error::Integrity {
        message: format!(
            "policy {}: its stored file {} is not UTF-8",
            p.name, p.object
        ),
    })?;
    Ok(engine::Source {
        origin: format!("policy {}", p.name),
        rego,
    })
}

/// Evaluates every policy in force at `point` over the document `input` makes. Nothing
/// in force and nothing required: no decisions, and neither the document is made nor
/// anything run. `store`: keep the input document as an object (what the decisions
/// name); otherwise it is only digested.
pub(crate) fn decide(
    home: &Home,
    point: PolicyPoint,
    input: impl FnOnce() -> Result<Value>,
    store: bool,
    engine: Option<engine::Warm>,
) -> Result<(Vec<PolicyDecisionRec>, Option<crate::id::ObjectMeta>)> {
    let here = in_force(&home.ledger)?;
    let unmet = required::unmet_at(&home.ledger, &here, point)?;
    let policies: Vec<PolicyRow> = here.into_iter().filter(|p| p.applies_to(point)).collect();
    if policies.is_empty() && unmet.is_empty() {
        return Ok((Vec::new(), None));
    }
    let input = &input()?;
    let doc = serde_jcs::to_vec(input).expect("input documents serialise");
    let meta = match store {
        true => home.store.put_bytes(&doc)?,
        false => crate::store::hash_bytes(&doc),
    };
    let sources = policies
        .iter()
        .map(|p| source_of(home, p))
        .collect::<Result<Vec<_>>>()?;
    let mut decisions: Vec<PolicyDecisionRec> = match sources.is_empty() {
        true => Vec::new(),
        false => policies
            .iter()
            .zip(evaluate_with(engine, &sources, input))
            .map(|(p, (result, messages))| {
                decision(&p.name, p.sha256, &meta, store, result, messages)
            })
            .collect(),
    };
    // A policy a remote requires that is not in force here as required cannot decide.
    decisions.extend(unmet.into_iter().map(|(r, why)| {
        let how = format!(
            "{why}: pull from the remote, or `cto-ledger policy add` the required file at those points"
        );
        decision(&r.name, r.sha256, &meta, store, PolicyResult::Failed, vec![how])
    }));
    Ok((decisions, store.then_some(meta)))
}

/// What each of `sources` decides over `input`, in order. One child for all; when it
/// dies (a policy at its bounds), each policy alone, so the failure is the failing
/// policy's and the others still decide.
pub(crate) fn evaluate(
    sources: &[engine::Source],
    input: &Value,
) -> Vec<(PolicyResult, Vec<String>)> {
    evaluate_with(None, sources, input)
}

/// An engine started ahead, when any policy in force applies at `point`.
pub(crate) fn warm(home: &Home, point: PolicyPoint) -> Result<Option<engine::Warm>> {
    let any = in_force(&home.ledger)?.iter().any(|p| p.applies_to(point));
    Ok(any.then(engine::Warm::start))
}

/// As [`evaluate`], with the shared evaluation in `engine` when one was started.
fn evaluate_with(
    engine: Option<engine::Warm>,
    sources: &[engine::Source],
    input: &Value,
) -> Vec<(PolicyResult, Vec<String>)> {
    let req = engine::Request {
        task: engine::Task::Eval,
        policies: sources.to_vec(),
        input: input.clone(),
    };
    let first = match engine {
        Some(w) => w.finish(&req),
        None => engine::run(&req),
    };
    let outcomes: Vec<std::result::Result<engine::Outcome, Error>> = match first {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(_) if req.policies.len() > 1 => req
            .policies
            .iter()
            .map(|p| {
                engine::run(&engine::Request {
                    task: engine::Task::Eval,
                    policies: vec![p.clone()],
                    input: input.clone(),
                })
                .map(|mut o| o.remove(0))
            })
            .collect(),
        Err(e) => vec![Err(e)],
    };
    outcomes
        .into_iter()
        .map(|o| match o {
            Err(e) => (PolicyResult::Failed, vec![e.to_string()]),
            Ok(o) => match (o.error, o.allow, o.deny.is_empty()) {
                (Some(e), _, _) => (PolicyResult::Failed, vec![e]),
                (None, true, true) => (PolicyResult::Allowed, Vec::new()),
                (None, allow, _) => {
                    let mut m = o.deny;
                    if !allow && m.is_empty() {
                        m.push("`allow` is not true".into());
                    }
                    (PolicyResult::Denied, m)
                }
            },
        })
        .collect()
}

/// The decision of the policy `name` (its file's digest `sha256`) over `input`.
fn decision(
    name: &str,
    sha256: Sha256Digest,
    input: &crate::id::ObjectMeta,
    stored: bool,
    result: PolicyResult,
    messages: Vec<String>,
) -> PolicyDecisionRec {
    PolicyDecisionRec {
        policy: name.to_string(),
        sha256,
        input: input.sha256,
        input_object: stored.then_some(input.id),
        result,
        messages,
    }
}

/// The decisions that did not allow, as one message: `policy NAME denied: M1; M2`.
pub(crate) fn refusal_message(decisions: &[PolicyDecisionRec]) -> Option<String> {
    let not: Vec<String> = decisions
        .iter()
        .filter(|d| d.result != PolicyResult::Allowed)
        .map(|d| {
            let verb = match d.result {
                PolicyResult::Failed => "could not decide",
                _ => "denied",
            };
            format!("policy {} {verb}: {}", d.policy, d.messages.join("; "))
        })
        .collect();
    (!not.is_empty()).then(|| not.join(" | "))
}

/// One line per decision, for an admission's `decisions`.
pub(crate) fn describe(d: &PolicyDecisionRec) -> String {
    format!(
        "policy {} ({}) {} over input {}{}",
        d.policy,
        d.sha256,
        d.result,
        d.input,
        match d.messages.is_empty() {
            true => String::new(),
            false => format!(": {}", d.messages.join("; ")),
        }
    )
}
