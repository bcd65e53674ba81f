//! The `policy_allowed` gate: every policy in force at `run` (docs/policies.md), over the
//! run as the other gates left it, decides whether the provider starts. Each decision is
//! the run's evidence (report.json's `policies`, the `run` event's); a denial blocks the
//! run with `backend/provider-policy-denied.txt`.

use super::gates::{blocked, Gate, Gated};
use super::Run;
use crate::policy::input::RunFacts;
use crate::state::PolicyPoint;
use crate::store::tree::ObjKind;

impl Run<'_> {
    /// The run input (schema/policy-input.schema.json): the run as the other gates left
    /// it, made only when a policy will read it.
    fn policy_input(&self) -> crate::error::Result<serde_json::Value> {
        let m = &self.fixture.manifest;
        let mut facts = RunFacts {
            fixture_origin: &self.fixture.origin,
            fixture_tree: self.fixture_tree.map(|t| t.id),
            test_command: &m.test_command,
            tampering: m.tampering.as_str(),
            limits: self.limits.named(),
            check: self.dry,
            prospective: None,
        };
        if self.dry && self.report.provider.admission.is_none() && self.opts.runs_shipped_fake() {
            let size = self
                .report
                .provider
                .path_given
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            facts.prospective = Some(crate::policy::input::shipped_fake_admission(
                &self.report,
                size,
            ));
        }
        crate::policy::input::run(&self.home.ledger, &self.report, &facts)
    }

    /// No policy in force at `run`: no gate. Otherwise the gate passes only when every
    /// policy allows; its input document is stored (a `--check` only digests it).
    pub(super) fn policy_gate(&mut self) -> Gated<()> {
        let engine = self.engine.take();
        let (decided, stored) = crate::policy::decide(
            self.home,
            PolicyPoint::Run,
            || self.policy_input(),
            !self.dry,
            engine,
        )?;
        if decided.is_empty() {
            return Ok(());
        }
        if let Some(meta) = stored {
            self.evidence.push((meta, ObjKind::Blob));
        }
        let refused = crate::policy::refusal_message(&decided);
        let first = decided
            .iter()
            .find(|d| d.result != crate::state::PolicyResult::Allowed)
            .map_or(String::new(), |d| d.policy.clone());
        let detail = decided
            .iter()
            .map(crate::policy::describe)
            .collect::<Vec<_>>()
            .join("; ");
        self.report.policies = decided;
        match refused {
            Some(message) if self.dry => blocked(Gate::PolicyAllowed, message),
            Some(message) => blocked(
                Gate::PolicyAllowed,
                format!(
                    "{message}. See what the policy saw with `cto-ledger policy eval {first} --input run:{}`",
                    self.report.run_id
                ),
            ),
            None => {
                self.gate_pass(Gate::PolicyAllowed, detail);
                Ok(())
            }
        }
    }
}
