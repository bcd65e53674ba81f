//! The in-toto statements `attest` signs: SLSA Provenance v1 for an artifact, and for a
//! Stage 2 run a test-result statement and a SLSA Verification Summary v1 whose
//! `inputAttestations` name the other statements by digest.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::export::{object_digests, BUILDER_ID, STATEMENT_TYPE};
use crate::error::{Error, Result};
use crate::id::RunId;
use crate::ledger::query::Node;
use crate::ledger::{Ledger, RunRow};
use crate::report::Report;
use crate::state::{TestResult, Verdict};
use crate::store::Store;

pub(crate) const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
pub(crate) const VSA: &str = "https://slsa.dev/verification_summary/v1";
pub(crate) const PROVENANCE: &str = super::export::SLSA_PROVENANCE;

/// How the statements name a run (a VSA's `resourceUri`, a test result's `url`).
pub(crate) fn run_uri(id: &RunId) -> String {
    format!("urn:cto-ledger:run:{id}")
}

/// A statement's payload bytes: canonical JSON (RFC 8785), so the same claim is the
/// same bytes, and its digest can name it.
pub(crate) fn payload(statement: &Value) -> Vec<u8> {
    serde_jcs::to_vec(statement).expect("statements serialise")
}

/// Every statement `attest` makes for `node`.
pub(crate) fn statements(l: &Ledger, store: &Store, node: &Node) -> Result<Vec<Value>> {
    match node {
        Node::Run(id) => run_statements(l, store, id),
        other => Ok(vec![super::export_in_toto(l, other)?]),
    }
}

fn run_statements(l: &Ledger, store: &Store, id: &RunId) -> Result<Vec<Value>> {
    let run = l.run(id)?.ok_or_else(|| Error::NotFound {
        what: "run",
        input: id.to_string(),
        hint: None,
    })?;
    let report_object = run.report_object.ok_or_else(|| {
        Error::bad_input(
            format!("run {id} recorded no report.json"),
            "attest a run that finished (see `cto-ledger runs`)",
        )
    })?;
    let report: Report =
        serde_json::from_slice(&store.get_verified(&report_object)?).map_err(|e| {
            Error::Integrity {
                message: format!(
                    "run {id}: its report.json ({report_object}) is not a report: {e}"
                ),
            }
        })?;
    let mut out = Vec::new();
    let provenance = match &run.provider_admission {
        Some(a) => {
            let s = super::export_in_toto(l, &Node::Admission(a.clone()))?;
            out.push(s.clone());
            Some((a.to_string(), s))
        }
        None => None,
    };
    let tests = test_result(l, &run, &report)?;
    out.push(tests.clone());
    if let Some(object) = &run.provider_object {
        let mut inputs = vec![input(&format!("{}:test-result", run_uri(id)), &tests)];
        if let Some((adm, s)) = &provenance {
            inputs.push(input(
                &format!("urn:cto-ledger:admission:{adm}:provenance"),
                s,
            ));
        }
        let name = report
            .provider
            .admission_name
            .clone()
            .or(report.provider.path_given.clone())
            .unwrap_or_else(|| object.to_string());
        // What the run's policies decided counts as much as the verdict.
        let verified = run.verdict == Verdict::Pass && policies_allowed(&report.policies);
        let mut levels: Vec<String> = report
            .gates
            .iter()
            .filter(|g| g.passed)
            .map(|g| {
                format!(
                    "CTO_LEDGER_GATE_{}",
                    g.name.to_ascii_uppercase().replace(['-', ' '], "_")
                )
            })
            .collect();
        levels.extend(
            report
                .policies
                .iter()
                .filter(|d| d.result == crate::state::PolicyResult::Allowed)
                .map(|d| format!("CTO_LEDGER_POLICY_{}_ALLOWED", level_name(&d.policy))),
        );
        if verified {
            levels.push("CTO_LEDGER_STAGE2_PASSED".into());
        }
        let model = report
            .model
            .as_ref()
            .map(|m| json!({"provider": m.provider, "model": m.model, "admission": m.admission}));
        let gates: Vec<&str> = report.gates.iter().map(|g| g.name.as_str()).collect();
        let judge = report.judge.as_ref().map(
            |j| json!({"tests": j.tests_tree, "protected": j.protected, "tampering": j.tampering}),
        );
        let policy = json!({"fixture": run.fixture, "lane": run.lane, "gates": gates,
                            "model": model, "judge": judge});
        let policy = vsa_policy(&run.fixture, &policy, &report.policies);
        out.push(json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": name, "digest": object_digests(l, object)?}],
            "predicateType": VSA,
            "predicate": {
                "verifier": {"id": BUILDER_ID},
                "timeVerified": run.finished,
                "resourceUri": run_uri(id),
                "policy": policy,
                "inputAttestations": inputs,
                "verificationResult": if verified { "PASSED" } else { "FAILED" },
                "verifiedLevels": levels,
                "slsaVersion": "1.0",
            }
        }));
    }
    Ok(out)
}

/// Whether every policy decision of a run allowed it (none: nothing to deny).
pub(crate) fn policies_allowed(d: &[crate::ledger::events::PolicyDecisionRec]) -> bool {
    d.iter()
        .all(|d| d.result == crate::state::PolicyResult::Allowed)
}

/// A policy name as part of a verified level, one to one: lower-case letters and digits
/// upper-cased, every other byte `_` and its two hex digits (`team-a` is `TEAM_2DA`,
/// `team_a` is `TEAM_5FA`, `Team` is `_54EAM`).
fn level_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' => (b.to_ascii_uppercase() as char).to_string(),
            _ => format!("_{b:02X}"),
        })
        .collect()
}

/// VSA v1's `policy`, a URI and a digest only. A run its Rego policies decided names
/// them: one by `urn:cto-ledger:policy:rego:NAME` and its file's SHA-256 (what `policy
/// show NAME` prints), several by their names joined with `,` and the SHA-256 of the
/// canonical JSON list of `{name, sha256}`. Otherwise the policy is the harness's own
/// (fixture, lane, the gates in order, the model, the judge), by the SHA-256 of its
/// canonical JSON; either way the gates that held are verified levels.
fn vsa_policy(
    fixture: &str,
    stage2: &Value,
    decided: &[crate::ledger::events::PolicyDecisionRec],
) -> Value {
    let hex_of =
        |d: &crate::id::Sha256Digest| d.to_string().trim_start_matches("sha256:").to_string();
    match decided {
        [] => json!({"uri": format!("urn:cto-ledger:policy:stage2:{fixture}"),
                     "digest": {"sha256": hex::encode(Sha256::digest(payload(stage2)))}}),
        [one] => json!({"uri": format!("urn:cto-ledger:policy:rego:{}", one.policy),
                        "digest": {"sha256": hex_of(&one.sha256)}}),
        all => {
            let names: Vec<&str> = all.iter().map(|d| d.policy.as_str()).collect();
            let list: Vec<Value> = all
                .iter()
                .map(|d| json!({"name": d.policy, "sha256": d.sha256}))
                .collect();
            json!({"uri": format!("urn:cto-ledger:policy:rego:{}", names.join(",")),
                   "digest": {"sha256": hex::encode(Sha256::digest(payload(&Value::Array(list))))}})
        }
    }
}

/// A statement as an input of another: its URI and the SHA-256 of its payload bytes.
fn input(uri: &str, statement: &Value) -> Value {
    json!({"uri": uri, "digest": {"sha256": hex::encode(Sha256::digest(payload(statement)))}})
}

fn test_result(l: &Ledger, run: &RunRow, report: &Report) -> Result<Value> {
    let mut subject = vec![
        json!({"name": "report.json", "digest": object_digests(l, run.report_object.as_ref().expect("checked"))?}),
    ];
    if let Some(t) = &run.tree_object {
        subject.push(json!({"name": "workspace", "digest": object_digests(l, t)?}));
    }
    let mut configuration =
        vec![json!({"name": "fixture", "uri": format!("urn:cto-ledger:fixture:{}", run.fixture)})];
    if let Some(c) = &run.config_object {
        configuration.push(json!({"name": "config.json", "digest": object_digests(l, c)?}));
    }
    // The tests that ran (always the fixture's) and the tree they ran in.
    if let Some(j) = &report.judge {
        configuration
            .push(json!({"name": "fixture-tree", "digest": object_digests(l, &j.fixture_tree)?}));
        if let Some(t) = &j.tests_tree {
            configuration.push(json!({"name": "tests", "digest": object_digests(l, t)?}));
        }
        if let Some(t) = &j.judged_tree {
            configuration.push(json!({"name": "judged-tree", "digest": object_digests(l, t)?}));
        }
    }
    // PASSED only when the tests passed and the verdict is a pass (a provider that
    // tampered with what judges it fails whatever its tests said).
    let (result, passed, failed) = match &report.tests {
        Some(t) => {
            let name = t.command.join(" ");
            if t.result == TestResult::Passed && run.verdict == Verdict::Pass {
                ("PASSED", vec![name], vec![])
            } else {
                ("FAILED", vec![], vec![name])
            }
        }
        None => ("FAILED", vec![], vec![]),
    };
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": TEST_RESULT,
        "predicate": {
            "result": result,
            "configuration": configuration,
            "url": run_uri(&run.id),
            "passedTests": passed,
            "warnedTests": [],
            "failedTests": failed,
        }
    }))
}
