//! The attestations of a bundle: each DSSE envelope's signature, its Sigstore twin
//! byte for byte, and what it claims against the proven run and provider.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Checker;
use crate::bundle::*;
use crate::ledger::events::RunRec;
use crate::lineage::attest;
use crate::report::Report;
use crate::sign::dsse::Envelope;
use crate::state::Verdict;

/// Every attestation: its signature, its Sigstore twin, and what it claims against the
/// proven run (subjects, verdict) and provider digest.
pub(super) fn check_attestations(
    c: &mut Checker,
    run: Option<(&RunRec, Option<&Report>)>,
    provider: Option<String>,
) {
    let dsse: Vec<String> = c
        .manifest
        .values()
        .filter(|m| m.role == Role::Attestation)
        .map(|m| m.path.clone())
        .collect();
    let twins = c
        .manifest
        .values()
        .filter(|m| m.role == Role::SigstoreBundle)
        .count();
    if twins != dsse.len() {
        c.fail(
            MANIFEST,
            format!("{} DSSE envelopes but {twins} Sigstore bundles", dsse.len()),
        );
    }
    let mut kinds = BTreeSet::new();
    for path in dsse {
        let Some(statement) = signed_statement(c, &path) else {
            continue;
        };
        let kind = statement["predicateType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        check_claims(c, &path, &statement, run.map(|r| r.0), provider.as_deref());
        c.out.attestations.push(kind.clone());
        kinds.insert(kind);
    }
    let mut wanted = vec![];
    match run {
        Some((r, report)) => {
            if report.is_some() {
                wanted.push(attest::TEST_RESULT);
            }
            if r.provider_object.is_some() {
                wanted.push(attest::VSA);
            }
            if r.provider_admission.is_some() {
                wanted.push(attest::PROVENANCE);
            }
        }
        None => wanted.push(attest::PROVENANCE),
    }
    for w in wanted {
        if !kinds.contains(w) {
            c.fail("attestations/", format!("no valid {w} statement"));
        }
    }
}

/// The statement in the envelope at `path`, once its signature (and its Sigstore twin)
/// hold.
fn signed_statement(c: &mut Checker, path: &str) -> Option<Value> {
    let bytes = c.need(path)?;
    let env: Envelope = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            c.fail(path, format!("not a DSSE envelope: {e}"));
            return None;
        }
    };
    let statement = match env
        .verify(c.key)
        .map(|p| serde_json::from_slice::<Value>(&p))
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            c.fail(path, format!("its payload is not JSON: {e}"));
            return None;
        }
        Err(e) => {
            c.fail(path, e);
            return None;
        }
    };
    check_twin(c, path, &env);
    Some(statement)
}

/// What a statement claims, against the proven run and the provider's SHA-256.
fn check_claims(
    c: &mut Checker,
    path: &str,
    statement: &Value,
    run: Option<&RunRec>,
    provider: Option<&str>,
) {
    let subjects: Vec<&str> = statement["subject"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s["digest"]["sha256"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let names_provider = provider
        .map(|p| p.trim_start_matches("sha256:"))
        .is_some_and(|p| subjects.contains(&p));
    let agrees = |c: &mut Checker, said: &Value, run: &RunRec| {
        if (*said == "PASSED") != (run.verdict == Verdict::Pass) {
            c.fail(
                path,
                format!(
                    "it says {said}, the run's verdict is {}",
                    run.verdict.as_str()
                ),
            );
        }
    };
    let predicate = &statement["predicate"];
    match statement["predicateType"].as_str().unwrap_or_default() {
        attest::TEST_RESULT => {
            let Some(run) = run else { return };
            let report = c
                .manifest
                .get(REPORT)
                .map(|m| m.sha256.trim_start_matches("sha256:").to_string());
            if report.as_deref().is_none_or(|r| !subjects.contains(&r)) {
                c.fail(path, "its subjects do not include the bundle's report.json");
            }
            if predicate["url"] != attest::run_uri(&run.id) {
                c.fail(path, "it is about another run");
            }
            agrees(c, &predicate["result"], run);
        }
        attest::VSA => {
            if let Some(run) = run {
                if predicate["resourceUri"] != attest::run_uri(&run.id) {
                    c.fail(path, "it is about another run");
                }
                agrees(c, &predicate["verificationResult"], run);
                let allowed = attest::policies_allowed(&run.policies);
                if predicate["verificationResult"] == "PASSED" && !allowed {
                    c.fail(
                        path,
                        "it says PASSED, but a policy the run was held to did not allow it",
                    );
                }
            }
            if !names_provider {
                c.fail(path, "its subject is not the run's provider");
            }
        }
        _ => {
            if !names_provider {
                c.fail(path, "its subject is not the admitted provider");
            }
            // Signed when the bundle was made: a revocation the ledger knew of then is
            // here, whatever was stripped from the proofs beside it.
            let revocation =
                &predicate["buildDefinition"]["internalParameters"]["admission"]["revocation"];
            if !revocation.is_null() {
                c.fail(
                    path,
                    format!(
                        "the signed provenance says the admission was revoked (event {}): {}",
                        revocation["seq"],
                        crate::commands::text::shown(revocation["reason"].as_str().unwrap_or("?"))
                    ),
                );
            }
        }
    }
}

/// The Sigstore bundle beside a DSSE envelope: v0.3, the key's hint, the same envelope.
fn check_twin(c: &mut Checker, dsse: &str, env: &Envelope) {
    let path = dsse.replace(".dsse.json", ".sigstore.json");
    let Some(bytes) = c.need(&path) else { return };
    let b: Value = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return c.fail(&path, format!("not JSON: {e}")),
    };
    if b != sigstore_bundle(env, &c.key.keyid()) {
        c.fail(
            &path,
            format!(
                "it is not a Sigstore bundle v0.3 of the envelope in {dsse} under the key's hint"
            ),
        );
    }
}
